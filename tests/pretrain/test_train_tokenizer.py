"""train_tokenizer: a tiny run writes the tokenizer, metrics and PNG, beats the untrained model, resumes."""
import json

import numpy as np
import pytest

from encoder.tokenizers import load_tokenizer
from encoder.tokenizers.fsq import FSQConfig
from pretrain.train_tokenizer import TokenizerTrainConfig, train_tokenizer


def smooth_frames(n, size=32, seed=0):
    """Colour gradients plus a bright square: structure a tiny autoencoder can learn in a few steps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.float64)
    for i in range(n):
        a = rng.uniform(-1, 1, (3, 3))
        out[i] = np.stack([0.5 + 0.4 * (a[c, 0] * xx + a[c, 1] * yy) * 0.5 + 0.1 * a[c, 2] for c in range(3)], -1)
        y, x = rng.integers(0, size - 8, 2)
        out[i, y:y + 8, x:x + 8] = rng.uniform(0.6, 1.0, 3)
    return (out.clip(0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    cfg = TokenizerTrainConfig(steps=100, batch_size=8, lr=3e-3, warmup_steps=5, progress=False,
                               model=FSQConfig(channels=(16, 32, 32)))
    train, val = smooth_frames(300), smooth_frames(16, seed=1)
    return out, cfg, train, val, train_tokenizer(train, val, cfg, out)


def test_train_tokenizer_writes_files_and_improves(tiny_run):
    out, cfg, train, val, metrics = tiny_run
    for name in ("tokenizer.safetensors", "tokenizer.json", "reconstructions.png", "metrics.json"):
        assert (out / name).is_file(), name
    assert not metrics["skipped"]
    assert metrics["psnr_db"] > metrics["psnr_init_db"] + 1
    assert 0 < metrics["codebook_usage"] <= metrics["codebook_usage_bound"] == 16 * 4 * 4 / 8192
    meta = json.loads((out / "tokenizer.json").read_text())
    assert meta["kind"] == "fsq_tokenizer" and meta["metrics"]["psnr_db"] == pytest.approx(metrics["psnr_db"])
    tok = load_tokenizer(str(out))
    assert tok.encode(__import__("torch").from_numpy(val[:2])).shape == (2, 4, 4)


def test_train_tokenizer_skips_finished_run(tiny_run):
    out, cfg, train, val, metrics = tiny_run
    # the same settings as a plain dict (as from a config file); the progress bar does not count
    as_dict = {**cfg.to_dict(), "progress": True}
    again = train_tokenizer(train, val, as_dict, out)
    assert again["skipped"] and again["psnr_db"] == pytest.approx(metrics["psnr_db"])
    assert TokenizerTrainConfig.coerce(as_dict).model == cfg.model


def test_train_tokenizer_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        train_tokenizer(np.zeros((4, 32, 32, 3), np.float32), smooth_frames(2), TokenizerTrainConfig(steps=1), tmp_path)
    with pytest.raises(ValueError, match="precision"):
        TokenizerTrainConfig(precision="fp16")


def test_colour_permutation_reorders_channels_and_nothing_else():
    import torch

    from pretrain.train_tokenizer import permute_channels

    x = torch.rand(64, 3, 4, 4)
    same = permute_channels(x, np.random.default_rng(0), 0.0)
    assert torch.equal(same, x)
    mixed = permute_channels(x, np.random.default_rng(0), 1.0)
    assert torch.equal(mixed.sort(1).values, x.sort(1).values)  # each pixel keeps its three values
    moved = (mixed != x).flatten(1).any(1)
    assert 0.6 < moved.float().mean() < 0.95  # 5 of the 6 orders move something
