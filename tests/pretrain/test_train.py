"""The training loop on a tiny model: learning, metrics, checkpoints, exact resume after SIGKILL."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.model import TotoConfig
from pretrain import checkpoints
from pretrain.batches import TokenBatches, validation_batches
from pretrain.metrics import read_jsonl
from pretrain.schedule import lr_at
from pretrain.shards import ShardSet
from pretrain import distributed
from pretrain.train import Trainer, TrainConfig, train
from tests.pretrain.train_worker import QUICK_TRAIN, ROOT, TINY_MODEL, WORKER, make_data, run_inline, worker_env, write_spec
from toto_robot.checkpoint import CheckpointError, load_weights



@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("tokens"))


def test_lr_schedule_warms_up_then_cosines_to_the_floor():
    lrs = [lr_at(s, lr=1.0, warmup_steps=10, total_steps=111, min_lr_ratio=0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert np.all(np.diff(lrs[:10]) > 0) and np.all(np.diff(lrs[10:111]) < 0)
    assert lrs[60] == pytest.approx(0.55)  # half-way through the cosine: midpoint of lr and floor
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert lr_at(0, lr=1.0, warmup_steps=0, total_steps=5) == 1.0
    with pytest.raises(ValueError, match="min_lr_ratio"):
        lr_at(0, lr=1.0, warmup_steps=1, total_steps=5, min_lr_ratio=2)


def test_batches_are_pure_and_independent_of_the_rank_split(data):
    sets = [(ShardSet(data / "a"), 0.7), (ShardSet(data / "b"), 0.3)]
    one = TokenBatches(sets, seed=3, micro_batch=2, grad_accum=4, world_size=1)
    two = [TokenBatches(sets, seed=3, micro_batch=2, grad_accum=2, world_size=2) for _ in range(2)]
    for step in (0, 7):
        single = torch.cat([one.micro_batch_tokens(step, m, 0) for m in range(4)])
        split = torch.cat([two[r].micro_batch_tokens(step, m, r) for m in range(2) for r in range(2)])
        assert torch.equal(single, split)
        assert torch.equal(single, torch.cat([one.micro_batch_tokens(step, m, 0) for m in range(4)]))
    assert not torch.equal(one.micro_batch_tokens(0, 0, 0), one.micro_batch_tokens(1, 0, 0))
    share_a = np.mean([one.mixture.draw(i) == 0 for i in range(2000)])
    assert 0.65 < share_a < 0.75
    val = validation_batches([ShardSet(data / "val")], micro_batch=4, batches_per_set=3)
    assert [tuple(b.shape) for b in val] == [(4, 34)] * 3


def test_bad_config_is_one_line_error():
    with pytest.raises(ValueError, match="precision='fp16'.*fp32, bf16"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="zero3")


def test_loss_decreases_and_metrics_are_written(data, tmp_path):
    summary = run_inline(data, tmp_path, steps=40, precision="bf16", log_every=5, frame_tokens=4)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(5, 41, 5))
    assert {"step", "loss", "lr", "grad_norm", "tokens_seen", "tokens_per_s"} <= set(records[0])
    assert records[-1]["tokens_seen"] == 40 * 8 * 34 == summary["tokens_seen"]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(val) == 4 and val[-1] < val[0] - 0.5
    assert summary["final_train_loss"] < np.log(20) - 1.0 and summary["final_val_loss"] == val[-1]
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert summary["checkpoint_dir"].endswith("step_0000040") and summary["steps"] == 40
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json", "step_0000030", "step_0000040"]
    # loss by position (Fig. 10): rows [start, c0, c0+k, ...] are fixed by their first two codes, so
    # the first "frame" (4 tokens here) is predicted far worse than the rest; the positions average to val_loss
    positions = json.loads((tmp_path / "val_positions.json").read_text())
    assert positions["step"] == 40 and positions["frame_tokens"] == 4 and len(positions["sets"]) == 1
    (one,) = positions["sets"].values()
    per_position, per_frame = one["per_position"], one["per_frame"]
    assert len(per_position) == 33 and len(per_frame) == 8
    assert per_frame[0] > max(per_frame[1:]) + 0.5 and per_position[0] > 2.0
    assert np.mean(per_position) == pytest.approx(val[-1], rel=2e-2)  # every position has the same number of targets
    assert (tmp_path / "val_positions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_inline(data, tmp_path, steps=40, precision="bf16", log_every=5)  # finished: nothing left to do
    assert again["resumed_from"].endswith("step_0000040") and len(read_jsonl(tmp_path / "metrics.jsonl")) == 8
    assert again["final_val_loss"] == pytest.approx(val[-1], rel=1e-3) and again["final_train_loss"] == summary["final_train_loss"]


def test_failed_save_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    reference = run_inline(data, tmp_path / "ref", steps=6, ckpt_every=2)
    save_state = checkpoints.save_state

    def disk_full_at_step_6(path, state):  # the weights of step 6 are written, then the disk is full
        if "step_0000006" in str(path):
            raise OSError(28, "No space left on device")
        save_state(path, state)

    monkeypatch.setattr(checkpoints, "save_state", disk_full_at_step_6)
    with pytest.raises(OSError, match="No space"):
        run_inline(data, tmp_path / "run", steps=6, ckpt_every=2, keep_checkpoints=1)
    assert checkpoints.latest_checkpoint(tmp_path / "run").name == "step_0000004"
    assert (tmp_path / "run/checkpoints/step_0000006/toto.safetensors").exists()
    monkeypatch.undo()
    resumed = run_inline(data, tmp_path / "run", steps=6, ckpt_every=2, keep_checkpoints=1)
    assert resumed["resumed_from"].endswith("step_0000004")
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run/metrics.jsonl")]
    assert losses == [r["loss"] for r in read_jsonl(tmp_path / "ref/metrics.jsonl")]
    assert resumed["final_train_loss"] == reference["final_train_loss"]
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["latest.json", "step_0000006"]


def test_resume_refuses_another_model_size(data, tmp_path):
    first = run_inline(data, tmp_path, steps=1, grad_accum=None, batch_tokens=8 * 34)  # 4 sequences x 2 micro-steps
    assert (first["grad_accum"], first["global_batch"]) == (2, 8)
    with pytest.raises(CheckpointError) as error:
        run_inline(data, tmp_path, model={**TINY_MODEL, "dim": 64}, steps=2)
    message = str(error.value)
    assert "\n" not in message and "dim=32" in message and "dim=64" in message and "resume=false" in message
    assert run_inline(data, tmp_path, model={**TINY_MODEL, "dim": 64}, steps=1, resume=False)["resumed_from"] is None
    with pytest.raises(ValueError, match="max_seq_len is 16: set max_seq_len >= 34"):
        run_inline(data, tmp_path / "short", model={**TINY_MODEL, "max_seq_len": 16}, steps=1)


def test_a_checkpoint_saved_before_code_head_existed_resumes(data, tmp_path):
    """A config field added later (TotoConfig.ADDED_FIELDS) is read as its default, not as a change of model."""
    run_inline(data, tmp_path, steps=1)
    meta_path = checkpoints.latest_checkpoint(tmp_path) / "toto.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["code_head"]
    meta_path.write_text(json.dumps(meta))
    assert run_inline(data, tmp_path, steps=2)["resumed_from"].endswith("step_0000001")


def test_init_weights_carry_over_to_a_longer_context(data, tmp_path):
    run_inline(data, tmp_path / "coarse", steps=2)
    weights, _ = load_weights(tmp_path / "coarse/checkpoints/step_0000002", "toto")
    fine = {**TINY_MODEL, "max_seq_len": 128, "rope_base": 50000.0}
    sets = [(ShardSet(data / "a"), 1.0)]
    cfg = TrainConfig(**{**QUICK_TRAIN, "steps": 1, "lr": 0.0, "warmup_steps": 0})
    train(TotoConfig(**fine), sets, [], cfg, tmp_path / "fine", init_weights=weights)
    after, _ = load_weights(tmp_path / "fine/checkpoints/step_0000001", "toto")
    assert all(torch.equal(after[k], weights[k]) for k in weights)  # lr 0: the step leaves them as loaded
    with pytest.raises(ValueError, match="init_weights do not fit"):
        train(TotoConfig(**{**TINY_MODEL, "dim": 64}), sets, [], cfg, tmp_path / "bad", init_weights=weights)


def test_sigkill_then_resume_gives_the_uninterrupted_losses(data, tmp_path):
    """CPU fp32 with one thread is deterministic, and batches, lr, weights, AdamW moments and RNG
    are all restored, so the resumed losses must be bitwise equal, not merely close."""
    steps = dict(steps=30, ckpt_every=5, val_every=10)
    reference = subprocess.Popen([sys.executable, str(WORKER), str(write_spec(data, tmp_path / "ref", tmp_path / "ref.json", **steps))],
                                 env=worker_env(), cwd=ROOT, stderr=subprocess.PIPE)
    spec = json.loads(write_spec(data, tmp_path / "run", tmp_path / "run.json", **steps).read_text())
    (tmp_path / "slow.json").write_text(json.dumps({**spec, "step_delay": 0.05}))
    victim = subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "slow.json")], env=worker_env(), cwd=ROOT,
                              stderr=subprocess.PIPE)
    pointer, deadline = tmp_path / "run/checkpoints/latest.json", time.monotonic() + 60
    while True:  # kill three steps after the first checkpoint
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        if pointer.exists():
            saved = json.loads(pointer.read_text())["step"]
            if max((r["step"] for r in read_jsonl(tmp_path / "run/metrics.jsonl")), default=0) >= saved + 3:
                break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = max(r["step"] for r in read_jsonl(tmp_path / "run/metrics.jsonl"))
    assert killed_at < 30
    resumed = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "run.json")], env=worker_env(), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert reference.wait(timeout=120) == 0, reference.stderr.read()[-2000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["resumed_from"] is not None and int(summary["resumed_from"][-7:]) < killed_at
    ran, ref = read_jsonl(tmp_path / "run/metrics.jsonl"), read_jsonl(tmp_path / "ref/metrics.jsonl")
    assert [r["step"] for r in ran] == list(range(1, 31))
    assert [(r["loss"], r["grad_norm"], r.get("val_loss")) for r in ran] == [(r["loss"], r["grad_norm"], r.get("val_loss")) for r in ref]
    final, _ = load_weights(tmp_path / "run/checkpoints/step_0000030", "toto")
    expected, _ = load_weights(tmp_path / "ref/checkpoints/step_0000030", "toto")
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_the_trainer_object_steps_saves_resumes_and_validates(data, tmp_path):
    """Trainer's parts one by one, as train() runs them: a resumed trainer takes up the step, tokens and
    weights the first one saved, and validates to the same loss."""
    sets = [(ShardSet(data / "a"), 0.7), (ShardSet(data / "b"), 0.3)]
    cfg = TrainConfig(**{**QUICK_TRAIN, "steps": 4})
    info = distributed.setup("cpu")

    def trainer() -> Trainer:
        return Trainer(TotoConfig(**TINY_MODEL), sets, [ShardSet(data / "val")], cfg, tmp_path, info)

    first = trainer()
    assert first.resume() is None and first.start_step == 0
    losses = [first.step(step)[0] for step in range(2)]
    assert all(np.isfinite(losses)) and first.tokens_seen == 2 * first.step_tokens
    saved = first.save(2)
    first.writer.wait()
    second = trainer()
    assert second.resume() == saved and (second.start_step, second.tokens_seen, second.loss) == (2, first.tokens_seen, losses[-1])
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    assert second.validate(2)["val_loss"] == pytest.approx(first.validate(2)["val_loss"], rel=1e-6)
