"""The "patch-patch" setting (paper Table 3) through the one training loop: pixel shards in,
normalized next-patch regression out; learning, checkpoints, exact resume, and the pipeline glue."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.model import TotoConfig
from encoder.tokenizers import load_tokenizer
from encoder.tokenizers.patch import patchify
from pretrain.batches import TokenBatches, patch_sequences, validation_batches
from pretrain.metrics import read_jsonl
from pretrain.shards import ShardSet, write_shard
from pretrain.train import TrainConfig, train
from tests.pretrain.train_worker import make_data

DRIFT = 0.5  # phase advance a frame (radians)
T, R, P = 4, 16, 8  # 4 frames of 16x16 pixels, 8x8 patches: 2x2 patches a frame, 16 a sequence
PATCH_MODEL = dict(dim=32, n_layers=2, n_heads=2, max_seq_len=T * (R // P) ** 2, multiple_of=16, patch_dim=3 * P * P)
# constant lr after warm-up, so a run stopped early follows a longer run's schedule exactly
PATCH_TRAIN = dict(micro_batch=4, grad_accum=2, lr=3e-3, warmup_steps=5, min_lr_ratio=1.0, precision="fp32",
                   val_every=10, val_batches=2, ckpt_every=10, log_every=1, progress=False)


def smooth_clips(rows: int, seed: int) -> np.ndarray:
    """uint8 (rows, T, R, R, 3): plane waves of a random direction, phase and colour that drift a
    fixed amount per frame, so each patch follows from the patches before it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:R, 0:R] / R
    angle, phase = rng.uniform(0, 2 * np.pi, (2, rows, 1, 1, 1))
    colour = rng.uniform(0.3, 1.0, (rows, 1, 1, 1, 3))
    t = np.arange(T)[None, :, None, None]
    wave = np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y) + phase + DRIFT * t)
    return (127.5 + 120 * wave[..., None] * colour).round().astype(np.uint8)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pixels")
    for name, rows, seed in (("a", 64, 0), ("val", 16, 1)):
        clips = smooth_clips(rows, seed)
        for i, part in enumerate(np.array_split(clips, 2 if name == "a" else 1)):
            write_shard(root / name, f"shard_{i:03d}", part, content="pixels")
    return root


def run(pixels: Path, out: Path, model: dict | None = None, patches="patch", codes=None, **overrides) -> dict:
    patches = patch_sequences(load_tokenizer(f"patch:{P}")) if patches == "patch" else patches
    cfg = TrainConfig(**{**PATCH_TRAIN, **overrides})
    return train(TotoConfig(**(model or PATCH_MODEL)), [(ShardSet(pixels / "a"), 1.0)], [ShardSet(pixels / "val")], cfg, out,
                 patchify=patches, codes=codes, frame_tokens=(R // P) ** 2)


def test_pixel_batches_become_patch_sequences_in_frame_then_raster_order(pixels):
    batches = TokenBatches([(ShardSet(pixels / "a"), 1.0)], seed=0, micro_batch=3, grad_accum=1)
    rows = batches.micro_batch_tokens(0, 0, 0)
    assert batches.pixels and batches.row_shape == (T, R, R, 3) and rows.dtype == torch.uint8
    patches = patch_sequences(load_tokenizer(f"patch:{P}"))(rows)
    assert patches.shape == (3, T * 4, 3 * P * P) and patches.dtype == torch.float32
    frame = rows[1, 2].float() / 127.5 - 1  # row 1, frame 2, grid cell (1, 0): patch 2 * 4 + 1 * 2 + 0
    assert torch.equal(patches[1, 2 * 4 + 2], frame[P:, :P].reshape(-1))
    assert [b.dtype for b in validation_batches([ShardSet(pixels / "val")], 4, 2)] == [torch.uint8] * 2


def test_patch_model_learns_checkpoints_and_resumes_exactly(pixels, tmp_path):
    reference = run(pixels, tmp_path / "ref", steps=30)
    records = read_jsonl(tmp_path / "ref/metrics.jsonl")
    val = [r["val_loss"] for r in records if "val_loss" in r]
    losses = [r["loss"] for r in records]
    assert np.mean(losses[:5]) > 0.9  # normalized targets: a model that knows nothing scores ~1
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])
    assert len(val) == 3 and val[0] > val[1] > val[2] and val[-1] < 0.7
    assert (reference["seq_len"], reference["tokens_seen"]) == (16, 30 * 8 * 16)
    assert reference["checkpoint_dir"].endswith("step_0000030")

    first = run(pixels, tmp_path / "run", steps=20)
    assert first["resumed_from"] is None and (tmp_path / "run/checkpoints/step_0000020/toto.safetensors").exists()
    resumed = run(pixels, tmp_path / "run", steps=30)  # a second call with more steps continues
    assert resumed["resumed_from"].endswith("step_0000020") and resumed["steps"] == 30
    ran = read_jsonl(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in ran] == list(range(1, 31))
    assert [(r["loss"], r.get("val_loss")) for r in ran] == [(r["loss"], r.get("val_loss")) for r in records]
    assert resumed["final_val_loss"] == reference["final_val_loss"]


def test_mismatched_rows_model_and_patchify_are_one_line_errors(pixels, tmp_path):
    with pytest.raises(ValueError, match="pixel rows need patchify") as error:
        run(pixels, tmp_path / "a", patches=None, steps=1)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"hold pixel rows .*\(set patch_dim\)"):
        run(pixels, tmp_path / "b", model={**PATCH_MODEL, "patch_dim": None, "vocab_size": 20}, steps=1)
    with pytest.raises(ValueError, match="patch_dim is 48"):
        run(pixels, tmp_path / "c", model={**PATCH_MODEL, "patch_dim": 48}, steps=1)
    with pytest.raises(ValueError, match="patch rows hold 16 tokens but the model's max_seq_len is 8"):
        run(pixels, tmp_path / "d", model={**PATCH_MODEL, "max_seq_len": 8}, steps=1)
    tokens = make_data(tmp_path / "tokens")
    with pytest.raises(ValueError, match="patch_dim set but the train sets hold token rows"):
        train(TotoConfig(**PATCH_MODEL), [(ShardSet(tokens / "a"), 1.0)], [], TrainConfig(**PATCH_TRAIN, steps=1), tmp_path / "e",
              patchify=patch_sequences(load_tokenizer("patch")))
    with pytest.raises(ValueError, match="continuous tokenizer"):
        patch_sequences(type("Discrete", (), {"discrete": True, "kind": "fsq"})())


def test_pipeline_builds_a_patch_model_and_patchify_for_pixel_shards():
    from pretrain.config import RunConfig, TokenizerSettings
    from pretrain.pipeline import model_config, patchify

    ar = dict(objective="ar")  # the paper's objective: what reads codes and what reads patches follows tokenizer.kind

    index = {"content": "pixels", "frames": 16, "grid": 16, "seq_len": 16 * 256 + 2, "vocab_size": None,
             "settings": {"resolution": 128}}
    cfg = RunConfig(**ar, tokenizer=TokenizerSettings(kind="patch"))
    config = model_config(cfg, index)
    assert (config.patch_dim, config.max_seq_len) == (192, 16 * 256)
    rows = torch.zeros(1, 16, 128, 128, 3, dtype=torch.uint8)
    assert patchify(cfg, index)(rows).shape == (1, 16 * 256, 192)
    with pytest.raises(ValueError, match="holds pixel rows .* tokenizer.kind='fsq'"):
        patchify(RunConfig(**ar), index)
    with pytest.raises(ValueError, match="shards were made for 16"):
        patchify(RunConfig(**ar, tokenizer=TokenizerSettings(kind="patch", path="patch:16")), index)
    tokens = {"content": "tokens", "vocab_size": 68, "seq_len": 34}
    assert patchify(RunConfig(**ar), tokens) is None and model_config(RunConfig(**ar), tokens).patch_dim is None


class BrightnessCodes(torch.nn.Module):
    """A stand-in discrete tokenizer: each 8x8 patch's code is its mean brightness in 8 bins, so the
    next patch's code follows from the drifting waves before it."""

    discrete, kind, codebook_size, downsample = True, "bins", 8, P

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a device to follow, as a real tokenizer's weights

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        patches = patchify(frames.float(), P)  # (N, g, g, 3P^2)
        return (patches.mean(-1) / 256 * self.codebook_size).long().clamp(0, self.codebook_size - 1).cpu()


def test_patch_dvae_reads_patches_predicts_codes_and_resumes_exactly(pixels, tmp_path):
    """Table 3's patch-dVAE: patches in, the next patch's code out; the loss falls below chance,
    the loss by position has one value a frame (the first patch unpredicted), resume is exact."""
    from pretrain.batches import code_sequences

    model = {**PATCH_MODEL, "code_head": True, "vocab_size": 8}
    reference = run(pixels, tmp_path / "ref", model=model, codes=code_sequences(BrightnessCodes()), steps=30)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "ref/metrics.jsonl")]
    val_codes = BrightnessCodes().encode(torch.from_numpy(smooth_clips(16, 1)).flatten(0, 1)).flatten()
    frequency = torch.bincount(val_codes, minlength=8).double() / val_codes.numel()
    marginal = float(-(frequency[frequency > 0] * frequency[frequency > 0].log()).sum())  # ~1.56 nats: no context used
    assert np.mean(losses[:3]) > marginal and reference["final_val_loss"] < 0.9 * marginal  # 1.34 nats at 30 steps
    positions = json.loads((tmp_path / "ref/val_positions.json").read_text())
    (val_set,) = positions["sets"].values()
    per_frame = val_set["per_frame"]
    assert positions["frame_tokens"] == 4 and len(per_frame) == T and all(np.isfinite(per_frame))
    assert np.isnan(val_set["per_position"][0]) and len(val_set["per_position"]) == T * 4  # the first patch is nobody's target

    run(pixels, tmp_path / "run", model=model, codes=code_sequences(BrightnessCodes()), steps=20)
    resumed = run(pixels, tmp_path / "run", model=model, codes=code_sequences(BrightnessCodes()), steps=30)
    assert resumed["resumed_from"].endswith("step_0000020") and resumed["final_val_loss"] == reference["final_val_loss"]


def test_patch_dvae_mismatches_are_one_line_errors(pixels, tmp_path):
    from pretrain.batches import code_sequences

    with pytest.raises(ValueError, match="code_head model .* trains with `codes`"):
        run(pixels, tmp_path / "a", model={**PATCH_MODEL, "code_head": True, "vocab_size": 8}, steps=1)
    with pytest.raises(ValueError, match="code_head model .* trains with `codes`"):
        run(pixels, tmp_path / "b", codes=code_sequences(BrightnessCodes()), steps=1)
    with pytest.raises(ValueError, match="outside the model's vocab_size 4"):
        run(pixels, tmp_path / "c", model={**PATCH_MODEL, "code_head": True, "vocab_size": 4},
            codes=code_sequences(BrightnessCodes()), steps=1)
    with pytest.raises(ValueError, match="code_head=True: a bool, true only with patch_dim"):
        TotoConfig(code_head=True)
    with pytest.raises(ValueError, match="needs a discrete tokenizer"):
        code_sequences(load_tokenizer("patch"))
