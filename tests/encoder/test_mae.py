"""The MAE baseline (encoder/mae.py, encoder/frozen_mae.py): masking, targets, export, frozen features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.mae import MAE, MAEConfig, sincos_2d
from encoder.objectives import normalize_patches
from encoder.tokenizers import load_tokenizer, save_tokenizer
from toto_robot.checkpoint import CheckpointError, save_weights

TINY = dict(dim=32, n_layers=4, n_heads=2, ffn_hidden=64, patch_dim=192, grid=4, decoder_dim=16, decoder_heads=2)


def make_mae_dir(path: Path, seed: int = 0, **config) -> Path:
    """A random tiny MAE export (32 px frames, 8 px patches: a 4x4 grid) as `pretrain/run.py objective=mae` writes it."""
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = MAEConfig(**{**TINY, **config})
    save_tokenizer(load_tokenizer("patch"), path)
    save_weights(path, "mae", MAE(config).state_dict(), kind="mae", config=config.to_dict(), tokenizer="tokenizer",
                 resolution=32)
    return path


def tiny_mae() -> MAE:
    """The TINY MAE with seed-0 weights."""
    torch.manual_seed(0)
    return MAE(MAEConfig(**TINY))


def test_three_quarters_of_each_frame_are_masked_and_only_they_are_scored():
    model = tiny_mae()
    patches = torch.randn(5, 16, 192)
    torch.manual_seed(1)
    out = model(patches)
    assert out.mask.shape == (5, 16) and out.mask.sum(1).tolist() == [12] * 5  # 75% of 16, per frame
    error = (out.pred.float() - normalize_patches(patches)).pow(2).mean(-1)  # normalized-pixel targets
    assert torch.allclose(out.loss, error[out.mask].mean())
    assert not torch.allclose(out.loss, error.mean())


def test_the_encoder_never_sees_a_masked_patch():
    """Same mask (same RNG), masked patches replaced by noise: every prediction is unchanged."""
    model = tiny_mae()
    patches = torch.randn(3, 16, 192)
    torch.manual_seed(7)
    first = model(patches)
    changed = torch.where(first.mask[..., None], torch.randn_like(patches) * 10, patches)
    torch.manual_seed(7)
    second = model(changed)
    assert torch.equal(first.mask, second.mask)
    assert torch.allclose(first.pred, second.pred, atol=1e-6)
    assert not torch.allclose(first.loss, second.loss)  # the targets did change


def test_positions_are_fixed_2d_sin_cos():
    pos = sincos_2d(4, 8)
    assert pos.shape == (16, 8)
    assert torch.allclose(pos[0], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]))
    assert torch.equal(pos[1, :4], pos[0, :4]) and not torch.equal(pos[1, 4:], pos[0, 4:])  # same row, next column
    assert len({tuple(p.tolist()) for p in pos}) == 16


def test_export_round_trips_through_load_encoder_with_mvps_cls_feature(tmp_path):
    import toto_robot
    from encoder.frozen_mae import MAEEncoder

    path = make_mae_dir(tmp_path / "mae")
    encoder = toto_robot.load_encoder(path, layer=-1, dtype="fp32")
    assert isinstance(encoder, MAEEncoder) and encoder.pool == "cls" and encoder.feature_dim == 32
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    model = tiny_mae()
    patches = load_tokenizer("patch").encode(torch.from_numpy(frames)).flatten(1, 2)
    assert torch.allclose(encoder(frames), model.hidden(patches)[:, 0], atol=1e-5)  # the CLS token, all blocks
    mid = toto_robot.load_encoder(path, layer="mid", pool="grid2", dtype="fp32")
    assert mid(frames).shape == (3, 4 * 32)
    tokens = mid.token_features(frames, [1, 2, 4])
    assert sorted(tokens) == [1, 2, 4] and tokens[2].shape == (3, 16, 32)
    assert torch.allclose(tokens[4], model.hidden(patches)[:, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="image model"):
        mid.token_features(frames[None], 1)


def test_the_frozen_mae_never_receives_a_gradient(tmp_path):
    import toto_robot

    encoder = toto_robot.load_encoder(make_mae_dir(tmp_path / "mae"), pool="avg", dtype="fp32")
    head = torch.nn.Linear(encoder.feature_dim, 2)
    frames = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    encoder.train()
    head(encoder(frames)).sum().backward()
    assert not encoder.training and head.weight.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in encoder.parameters())


def test_a_policy_asking_for_one_kind_is_refused_the_other_in_one_line(tmp_path):
    from policies.configuration import EncoderSpec
    from policies.features import make_features
    from tests.encoder.conftest import make_encoder_dir

    mae, toto = make_mae_dir(tmp_path / "mae"), make_encoder_dir(tmp_path / "toto")
    with pytest.raises(CheckpointError, match="holds an MAE encoder, not the toto features asked for: use encoder=mae"):
        make_features(EncoderSpec(kind="toto", path=str(mae)))
    with pytest.raises(CheckpointError, match="holds a Toto encoder, not the mae features asked for: use encoder=toto"):
        make_features(EncoderSpec(kind="mae", path=str(toto)))
    with pytest.raises(CheckpointError, match="objective=mae"):
        make_features(EncoderSpec(kind="mae", path=str(tmp_path / "none")))
    assert EncoderSpec(kind="mae").path == "runs/pretrain_mae/encoder"  # not the Toto default
    with pytest.raises(ValueError, match="encoder kind 'dino'"):
        EncoderSpec(kind="dino")


def test_random_trunk_keeps_the_trained_tokenizer_and_randomizes_the_transformer(tmp_path):
    from encoder.frozen import load_encoder
    from policies.features import random_encoder
    from tests.encoder.conftest import make_encoder_dir

    path = make_encoder_dir(tmp_path / "toto", seed=3)
    trained = load_encoder(path, dtype="fp32")
    trunk = random_encoder(path, pool="avg", seed=5, dtype="fp32", trained_tokenizer=True)
    full = random_encoder(path, pool="avg", seed=5, dtype="fp32")
    frames = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert torch.equal(trunk.token_ids(frames), trained.token_ids(frames))
    assert not torch.equal(full.token_ids(frames), trained.token_ids(frames))
    assert not torch.allclose(trunk.model.layers[0].attention.wq.weight, trained.model.layers[0].attention.wq.weight)


def test_random_baselines_on_a_patch_input_export_read_the_same_patches_through_a_random_transformer(tmp_path):
    """patch-dVAE exports: no tokenizer weights to draw, so random and random_trunk are one control (seeded)."""
    from encoder import tokens
    from encoder.frozen import load_encoder
    from encoder.model import Toto, TotoConfig
    from encoder.tokenizers import save_tokenizer
    from encoder.tokenizers.patch import PatchTokenizer
    from policies.features import random_encoder
    from toto_robot.checkpoint import save_weights

    save_tokenizer(PatchTokenizer(8), tmp_path)
    seq_len = tokens.sequence_length(16, 4)
    config = TotoConfig(dim=32, n_layers=4, n_heads=2, vocab_size=64, ffn_hidden=64, max_seq_len=seq_len, patch_dim=192,
                        code_head=True)
    torch.manual_seed(1)
    save_weights(tmp_path, "toto", Toto(config).state_dict(), kind="toto", config=config.to_dict(), frames=16, grid=4,
                 seq_len=seq_len, resolution=32, tokenizer="tokenizer")
    frames = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    trained = load_encoder(tmp_path, pool="avg", dtype="fp32")(frames)
    trunk = random_encoder(tmp_path, pool="avg", seed=5, dtype="fp32", trained_tokenizer=True)(frames)
    full = random_encoder(tmp_path, pool="avg", seed=5, dtype="fp32")(frames)
    assert torch.equal(trunk, full) and not torch.allclose(trunk, trained, atol=1e-3)
    assert not torch.equal(random_encoder(tmp_path, pool="avg", seed=6, dtype="fp32")(frames), full)
