"""Data-parallel training under torchrun (gloo, 2 CPU processes), DDP and FSDP.

The claim under test: with the batch layout of pretrain/batches.py and token-weighted loss
averaging, 2 ranks x accumulation A train exactly the model 1 rank x accumulation 2A trains
(same sequences, same averaged gradient); and a DDP checkpoint resumes under FSDP (state dicts
are gathered to full, name-keyed form), accumulating without gradient sync. After either, no thread of
the group is left (scripts/count_dist_aborts.py runs this test's launches many times and counts aborts).
Tolerance 1e-5 relative: only the order of the float additions in the gradient all-reduce differs.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.metrics import read_jsonl
from tests.pretrain.train_worker import ROOT, WORKER, make_data, run_inline, worker_env, write_spec
from toto_robot.checkpoint import load_weights

# constant lr after warm-up, so a run stopped at step 5 follows the 8-step schedule exactly
COMMON = dict(warmup_steps=3, min_lr_ratio=1.0, ckpt_every=3, val_every=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("tokens"))


# the two launches of the test: DDP for 5 steps, then FSDP resuming it to step 8 with another split of the
# same global batch of 8 (2 ranks x 2 micro-steps x 2 sequences); scripts/count_dist_aborts.py repeats them
DDP = dict(steps=5, grad_accum=1, strategy="ddp", **COMMON)
FSDP = dict(steps=8, micro_batch=2, grad_accum=2, val_batches=4, strategy="fsdp", **COMMON)


def launch(spec: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """torchrun of the worker on `spec`: 2 gloo ranks on a free port (concurrent runs do not collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={port}", str(WORKER), str(spec)]
    return subprocess.run(cmd, env=worker_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def torchrun(spec: Path) -> dict:
    done = launch(spec)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((Path(json.loads(spec.read_text())["out_dir"]) / "summary.json").read_text())


def close(a: dict, b: dict, rel: float = 1e-5) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=rel, atol=rel * b[k].abs().max().item()) for k in b)


def test_two_ranks_match_one_rank_with_twice_the_accumulation_ddp_then_fsdp(data, tmp_path):
    reference = run_inline(data, tmp_path / "one", steps=8, grad_accum=2, **COMMON)
    ddp = torchrun(write_spec(data, tmp_path / "two", tmp_path / "ddp.json", **DDP))
    assert (ddp["strategy"], ddp["world_size"], ddp["global_batch"]) == ("ddp", 2, reference["global_batch"])
    ddp_weights, _ = load_weights(tmp_path / "two/checkpoints/step_0000005", "toto")

    fsdp = torchrun(write_spec(data, tmp_path / "two", tmp_path / "fsdp.json", **FSDP))
    assert fsdp["strategy"] == "fsdp" and fsdp["resumed_from"].endswith("step_0000005")
    # leaving the group really ends it: its gloo threads are joined before the interpreter shuts down
    # (pretrain/distributed.py: what kept the group alive, and the rare abort at exit it caused)
    assert ddp["gloo_threads_after_teardown"] == [] and fsdp["gloo_threads_after_teardown"] == []

    one, two = read_jsonl(tmp_path / "one/metrics.jsonl"), read_jsonl(tmp_path / "two/metrics.jsonl")
    assert [r["step"] for r in two] == list(range(1, 9))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        if "val_loss" in a:  # (the DDP run also validated at its last step, 5)
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["tokens_seen"] == a["tokens_seen"]
    assert fsdp["final_val_loss"] == pytest.approx(reference["final_val_loss"], rel=1e-5)
    # rank 0 saved full, unsharded weights identical (to tolerance) to the one-process run's
    one_w = load_weights(tmp_path / "one/checkpoints/step_0000008", "toto")[0]
    assert close(load_weights(tmp_path / "two/checkpoints/step_0000008", "toto")[0], one_w)
    assert all(ddp_weights[k].shape == one_w[k].shape for k in one_w) and set(ddp_weights) == set(one_w)
