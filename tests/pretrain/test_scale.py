"""What GPU users rely on, checked on CPU: the dry run's sizing, activation checkpointing, FSDP's
bf16 policy, the efficiency metrics and checkpoints written off the training thread."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from encoder.model import Toto, TotoConfig
from pretrain import checkpoints, distributed
from pretrain.metrics import read_jsonl
from pretrain.sizing import _saved_bytes, activation_bytes, count_params, flops_per_token
from tests.pretrain.train_worker import ROOT, TINY_MODEL, make_data, run_inline

SMALL = TotoConfig(dim=64, n_layers=2, n_heads=4, vocab_size=40, max_seq_len=130, multiple_of=16)


def saved_by_a_real_forward(config: TotoConfig, tokens: torch.Tensor) -> int:
    """Bytes autograd keeps in a real CPU forward (CPU SDPA is a flash kernel: it keeps what a GPU's keeps)."""
    torch.manual_seed(0)
    model = Toto(config).train()
    state, saved = {id(t) for t in (*model.parameters(), *model.buffers())}, {}

    def pack(tensor):
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in state:
            saved.setdefault(id(base), base)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(tokens[:, :-1], targets=tokens[:, 1:], return_logits=False)
    return sum(t.numel() * t.element_size() for t in saved.values())


def test_activation_estimate_on_meta_matches_a_real_forward():
    tokens = torch.randint(3, 40, (2, 130))
    assert _saved_bytes(SMALL, 2, 130, torch.float32, False) == saved_by_a_real_forward(SMALL, tokens)
    # the estimate grows with the micro-batch and the depth as activations do, and checkpointing cuts it
    assert activation_bytes(SMALL, 4, 130, torch.float32, False) > 1.9 * activation_bytes(SMALL, 2, 130, torch.float32, False)
    assert activation_bytes(SMALL, 2, 130, torch.float32, True) < 0.7 * activation_bytes(SMALL, 2, 130, torch.float32, False)
    assert activation_bytes(SMALL, 2, 130, torch.bfloat16, False) < 0.75 * activation_bytes(SMALL, 2, 130, torch.float32, False)


def test_flops_per_token_is_six_n_plus_causal_attention():
    d, h, v, layers = SMALL.dim, SMALL.hidden_dim, SMALL.vocab_size, SMALL.n_layers
    n = layers * (4 * d * d + 3 * d * h) + v * d  # attention and SwiGLU matrices, and the output head
    assert count_params(SMALL) == n + v * d + (2 * layers + 1) * d  # plus the embedding and the norm gains
    assert flops_per_token(SMALL, 130) == 6 * n + 6 * SMALL.n_layers * 130 * SMALL.dim


def test_activation_checkpointing_trains_the_same_model():
    tokens = torch.randint(3, 40, (2, 60))

    def step(checkpointing: bool):
        torch.manual_seed(0)
        model = Toto(SMALL).train()
        model.checkpoint_blocks = checkpointing
        loss = model(tokens[:, :-1], targets=tokens[:, 1:], return_logits=False).loss
        loss.backward()
        return loss.item(), [p.grad for p in model.parameters()]

    (loss_a, grads_a), (loss_b, grads_b) = step(False), step(True)
    assert loss_a == loss_b and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def dry_run(*args: str, tmp_path) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "pretrain" / "run.py"), "model=1b", "train.strategy=fsdp", "dry_run=true",
                           f"out={tmp_path}", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = {name.strip(): float(value) for name, value in re.findall(r"^    ([A-Za-z ()0-9]+?)\s+([\d.]+) GiB", done.stdout, re.M)}
    return {"text": done.stdout, **figures}


def test_dry_run_sizes_1b_on_8_and_16_ranks(tmp_path):
    eight, sixteen = dry_run(tmp_path=tmp_path), dry_run("dry_run_world_size=16", tmp_path=tmp_path)
    assert "Toto 1b (1,164.0M parameters) on 8 ranks, fsdp, bf16" in eight["text"]
    assert "1,049,088 = 32 accumulation x 1 sequences x 8 ranks x 4,098 tokens" in eight["text"]
    assert "16 accumulation x 1 sequences x 16 ranks" in sixteen["text"]
    # weights, gradients and moments are sharded: 16 bytes a parameter over the ranks
    assert eight["AdamW moments (fp32)"] == pytest.approx(8 * 1.164e9 / 8 / 2**30, abs=0.006)  # printed to 0.01 GiB
    for part in ("weights (fp32)", "gradients (fp32)", "AdamW moments (fp32)"):
        assert sixteen[part] == pytest.approx(eight[part] / 2, abs=0.01)
    assert sixteen["activations"] == eight["activations"] > 5  # per micro-batch, not sharded
    assert eight["total"] == pytest.approx(sum(v for k, v in eight.items() if k not in ("text", "total")), abs=0.03)
    assert not (tmp_path / "train").exists() and not (tmp_path / "tokens").exists()  # nothing trained or written


def test_metrics_report_model_flops_and_mfu(tmp_path):
    data = make_data(tmp_path / "data")
    run_inline(data, tmp_path / "run", steps=3, log_every=1, peak_tflops=0.5)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 3 and all(r["tflops_per_device"] > 0 for r in rows)
    assert all(r["mfu"] == pytest.approx(r["tflops_per_device"] / 0.5) for r in rows)
    step_tokens = rows[0]["tokens_seen"]
    expected = flops_per_token(TotoConfig(**TINY_MODEL), 34) * step_tokens * 1 / (step_tokens / rows[1]["tokens_per_s"]) / 1e12
    assert rows[1]["tflops_per_device"] == pytest.approx(expected, rel=1e-6)


def test_background_writer_saves_a_snapshot_and_reports_its_error(tmp_path):
    weights = {"w": torch.ones(3)}
    snapshot = checkpoints.host_copy(weights)
    weights["w"].add_(1)  # training moves on
    assert torch.equal(snapshot["w"], torch.ones(3))
    writer = checkpoints.BackgroundWriter()
    writer.submit(checkpoints.save_checkpoint, tmp_path, 1, snapshot, dict(TINY_MODEL), {"step": 1}, 2)
    writer.wait()
    assert checkpoints.latest_checkpoint(tmp_path).name == "step_0000001"

    def fail():
        raise OSError("No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()  # reported once


def test_fsdp_gathers_and_computes_in_bf16_with_fp32_shards(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setitem(os.environ, key, value)
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = Toto(TotoConfig(**TINY_MODEL))
        distributed.wrap(model, "fsdp", distributed.DistInfo(), precision="bf16")
        seen = []
        model.layers[0].register_forward_pre_hook(lambda module, args: seen.append(module.attention.wq.weight.dtype))
        tokens = torch.randint(3, 20, (1, 9))
        model(tokens[:, :-1], targets=tokens[:, 1:], return_logits=False).loss.backward()
        assert seen == [torch.bfloat16]
        assert all(p.dtype == p.grad.dtype == torch.float32 for p in model.parameters())  # the shards AdamW updates
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("name, peak", [("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A10", 125.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA L40S", 362.0), ("NVIDIA L4", 121.0),
                                        ("Some other GPU", None)])
def test_mfu_peak_of_a_known_gpu_by_its_name(monkeypatch, name, peak):
    from pretrain.sizing import peak_tflops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: name)
    assert peak_tflops(torch.device("cuda"), "bf16") == peak
    assert peak_tflops(torch.device("cuda"), "fp32") is None and peak_tflops(torch.device("cpu"), "bf16", 0.5) == 0.5
