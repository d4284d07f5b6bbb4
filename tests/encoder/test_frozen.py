"""The frozen encoder: layer stop, layer choice, pooling, freezing, streaming, input and path errors.

Every test builds a tiny checkpoint (16x16 frames, 4x4 tokens of 16 codes, a 4-block Toto) in a
tmp dir, so the whole file runs in seconds.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch

import toto_robot
from encoder.frozen import TotoEncoder, load_encoder, resolve_layer
from encoder.model import Toto, TotoConfig
from encoder.pooling import AttentionPool, average_pool
from encoder.tokenizers import save_tokenizer
from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
from encoder.tokenizers.patch import PatchTokenizer
from encoder.tokens import IMAGE_START, VIDEO_START
from toto_robot.checkpoint import CheckpointError, save_weights

RES, FRAMES, GRID = 16, 4, 4  # 16 px, 4 frames a clip, 4x4 tokens a frame


def tiny_toto(seed=0, **overrides) -> Toto:
    """A random 4-block Toto with weights large enough that attention and RoPE matter."""
    torch.manual_seed(seed)
    config = dict(dim=32, n_layers=4, n_heads=2, vocab_size=20, max_seq_len=FRAMES * GRID**2 + 2)
    model = Toto(TotoConfig(**{**config, **overrides}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.normal_(0, 0.3)
    return model


def save_encoder_dir(directory, model, tokenizer):
    save_tokenizer(tokenizer, directory)
    save_weights(directory, "toto", model.state_dict(), kind="toto", config=model.config.to_dict(),
                 tokenizer="tokenizer", resolution=RES, frames=FRAMES, grid=GRID, seq_len=model.config.max_seq_len)
    return directory


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = FSQTokenizer(FSQConfig(levels=(4, 4), channels=(8, 8)))  # 16 codes, 4x downsampling
    return save_encoder_dir(tmp_path_factory.mktemp("encoder"), tiny_toto(), tokenizer)


def frames(*shape, seed=0):
    return torch.randint(0, 256, (*shape, RES, RES, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def count_blocks(encoder):
    calls = []
    for i, block in enumerate(encoder.model.layers):
        block.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    return calls


def test_runs_only_the_blocks_it_needs(encoder_dir):
    encoder = load_encoder(encoder_dir, layer=2, dtype="fp32")
    calls = count_blocks(encoder)
    assert encoder(frames(2)).shape == (2, 32) and calls == [0, 1]
    calls.clear()
    feats = encoder.token_features(frames(2), layers=[1, 3])
    assert calls == [0, 1, 2] and sorted(feats) == [1, 3]
    assert list(encoder.token_features(frames(2), layers="mid")) == list(encoder.token_features(frames(2), -3)) == [2]
    assert all(f.shape == (2, GRID**2, 32) and f.dtype == torch.float32 for f in feats.values())
    full = encoder.model(encoder.token_ids(frames(2)), output_hidden_states=True).hidden_states
    for n in (1, 3):  # the hooked layer and the last one run equal the full model's hidden states
        torch.testing.assert_close(feats[n], full[n][:, 1:], rtol=0, atol=0)


def test_token_ids_frames_are_images_clips_are_videos(encoder_dir):
    encoder = load_encoder(encoder_dir, dtype="fp32")
    ids = encoder.token_ids(frames(3))
    assert ids.shape == (3, 1 + GRID**2) and (ids[:, 0] == IMAGE_START).all() and (ids[:, 1:] >= 4).all()
    clip = frames(2, 3)
    ids = encoder.token_ids(clip)
    assert ids.shape == (2, 1 + 3 * GRID**2) and (ids[:, 0] == VIDEO_START).all()
    torch.testing.assert_close(ids[:, 1 + GRID**2:1 + 2 * GRID**2], encoder.token_ids(clip[:, 1])[:, 1:])


def test_resolve_layer():
    assert [resolve_layer(x, 12) for x in ("mid", 0.5, 1.0, 0.01, 1, 12, -1, -12, np.int64(3))] == [6, 6, 12, 1, 1, 12, 12, 1, 3]
    assert resolve_layer("mid", 1) == 1 and resolve_layer("mid", 4) == 2
    for bad in (0, 13, -13, 1.5, 0.0, -0.5, "top", None, True, "6"):
        with pytest.raises(ValueError, match=r"layer=.*block 1\.\.12"):
            resolve_layer(bad, 12)


@pytest.mark.parametrize("pool", ["avg", "attn"])
def test_pooling_shapes(encoder_dir, pool):
    encoder = load_encoder(encoder_dir, pool=pool, dtype="fp32")
    assert encoder(frames(3)).shape == (3, 32)
    assert encoder(frames(2, 3)).shape == (2, 32)
    assert encoder.frame_features(frames(2, 3)).shape == (2, 3, 32)
    if pool == "avg":
        tokens = encoder.token_features(frames(2, 3))[encoder.layer]
        torch.testing.assert_close(encoder(frames(2, 3)), average_pool(tokens))


def test_grid_pool_keeps_where_tokens_are(encoder_dir):
    from encoder.pooling import GridPool

    tokens = torch.zeros(1, 16, 2)  # a 4x4 token grid, raster order
    tokens[0, 3, 0] = 4.0  # row 0, column 3: the top-right 2x2 cell
    tokens[0, 12, 1] = 8.0  # row 3, column 0: the bottom-left cell
    cells = GridPool(2)(tokens).view(2, 2, 2)  # (row, column, dim)
    assert cells[0, 1].tolist() == [1.0, 0.0] and cells[1, 0].tolist() == [0.0, 2.0] and cells[0, 0].abs().sum() == 0
    torch.testing.assert_close(GridPool(2)(tokens).view(4, 2).mean(0, keepdim=True), average_pool(tokens))
    encoder = load_encoder(encoder_dir, pool="grid2", dtype="fp32")  # 32 px frames: 4x4 tokens
    assert encoder.feature_dim == 4 * 32 and encoder(frames(3)).shape == (3, 128)
    assert encoder.frame_features(frames(2, 3)).shape == (2, 3, 128)
    for bad in ("grid0", "grid", "gridx", "max"):
        with pytest.raises(ValueError, match="pool="):
            load_encoder(encoder_dir, pool=bad, dtype="fp32")
    with pytest.raises(ValueError, match="divisible by 3"):
        GridPool(3)(tokens)


def test_attention_pool_trains_and_loads_into_the_encoder(encoder_dir):
    pool = AttentionPool(32, n_heads=2)
    tokens = torch.randn(5, 7, 32)
    out = pool(tokens)
    assert out.shape == (5, 32)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pool.parameters())
    with pytest.raises(ValueError, match="n_heads=3"):
        AttentionPool(32, n_heads=3)
    encoder = load_encoder(encoder_dir, pool="attn", dtype="fp32")  # untrained, one head; a probe's trained pool loads into it
    pool = AttentionPool(32)
    encoder.pool_module.load_state_dict(pool.state_dict())
    x = frames(2)
    torch.testing.assert_close(encoder(x), pool(encoder.token_features(x)[encoder.layer]).detach())


def test_frozen(encoder_dir):
    encoder = load_encoder(encoder_dir, pool="attn", dtype="fp32")
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not encoder.model.training
    head = torch.nn.Linear(32, 1)
    loss = head(encoder(frames(2))).sum() + head(encoder.frame_features(frames(1, 2))).sum()
    loss.backward()
    assert head.weight.grad is not None
    assert all(p.grad is None for p in encoder.parameters())


@pytest.mark.parametrize("dtype, tol", [(None, 1e-4), ("bf16", 3e-2)])
def test_stream_equals_frame_features(encoder_dir, dtype, tol):
    encoder = load_encoder(encoder_dir, dtype=dtype)
    clip = frames(2, FRAMES)
    reference = encoder.frame_features(clip)
    for context in (FRAMES - 1, 15):  # T = context + 1, and a window longer than the clip
        stream = encoder.stream(context_frames=context)
        streamed = torch.stack([stream(clip[:, t]) for t in range(FRAMES)], dim=1)
        assert streamed.dtype == torch.float32
        scale = reference.abs().max()
        torch.testing.assert_close(streamed, reference, rtol=tol, atol=tol * scale)
    stream.reset()
    torch.testing.assert_close(stream(clip[:, 0]), reference[:, 0], rtol=tol, atol=tol * scale)
    with pytest.raises(ValueError, match="call reset"):
        stream(clip[:1, 1])


def test_sliding_window_with_one_block_equals_a_fresh_clip(encoder_dir):
    """Block 1's keys depend on each token alone, so past the window the stream must give exactly
    what a fresh clip of the last context + 1 frames gives: this checks the window, the start token
    kept in front of it and the re-basing of positions (forced often here)."""
    encoder, context, n = load_encoder(encoder_dir, layer=1, dtype="fp32"), 2, 12
    clip = frames(2, n, seed=3)
    stream = encoder.stream(context_frames=context)
    stream.rebase_at = stream.window + 2 * GRID**2  # re-base every other frame
    positions = []
    for t in range(n):
        out = stream(clip[:, t])
        positions.append(stream.cache.position)
        fresh = encoder.frame_features(clip[:, max(0, t - context):t + 1])[:, -1]
        torch.testing.assert_close(out, fresh, rtol=1e-4, atol=1e-5)
    assert max(positions) <= stream.rebase_at and any(b < a for a, b in zip(positions, positions[1:]))  # re-based


def test_long_stream_is_finite_and_stable(encoder_dir):
    """100 frames of one repeated image: once the window is full every step sees the same layout,
    so the features must settle to one value (no drift from positions or re-basing)."""
    encoder = load_encoder(encoder_dir, dtype="fp32")
    stream = encoder.stream(context_frames=3)
    frame = frames(1)
    out = torch.cat([stream(frame) for _ in range(100)])
    assert torch.isfinite(out).all() and stream.cache.position <= stream.rebase_at
    assert stream.cache.length == 3 * GRID**2 + 1 and encoder.model.rope_cos.shape[0] <= 2 * stream.rebase_at
    settled = out[20:]
    assert (settled - settled[0]).abs().max() <= 1e-4 * settled.abs().max()


def test_patch_encoder_streams_too(tmp_path):
    model = tiny_toto(patch_dim=48, max_seq_len=FRAMES * GRID**2)  # 4x4x3 patches, no start token
    encoder = load_encoder(save_encoder_dir(tmp_path, model, PatchTokenizer(4)), layer=3, dtype="fp32")
    clip = frames(2, FRAMES)
    stream = encoder.stream(context_frames=2)
    streamed = torch.stack([stream(clip[:, t]) for t in range(3)], dim=1)
    torch.testing.assert_close(streamed, encoder.frame_features(clip[:, :3]), rtol=1e-4, atol=1e-5)
    assert encoder(clip[:, 0]).shape == (2, 32)
    with pytest.raises(ValueError, match="no token ids"):
        encoder.token_ids(clip[:, 0])


def test_bad_inputs_fail_in_one_line(encoder_dir):
    encoder = load_encoder(encoder_dir, dtype="fp32")
    x = frames(2)
    torch.testing.assert_close(encoder(x.numpy()), encoder(x))  # numpy is accepted
    cases = [
        (torch.zeros(1, 24, 24, 3, dtype=torch.uint8), r"encoder expects 16x16 frames .*got 24x24: render at image_size=16"),
        (x.float() / 255, "uint8"),
        (x[0], r"got shape \(16, 16, 3\)"),
        (x.permute(0, 3, 1, 2), "got shape"),
        (frames(1, FRAMES + 1), "clips of 1..4 frames"),
        ([1, 2], "got list"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match) as error:
            encoder(bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"clips \(B, T, H, W, 3\)"):
        encoder.frame_features(x)
    with pytest.raises(ValueError, match=r"frames \(B, H, W, 3\)"):
        encoder.stream()(frames(1, 2))


def test_bad_paths_and_options_fail_in_one_line(encoder_dir, tmp_path):
    tokenizer_only = tmp_path / "tok"
    save_tokenizer(PatchTokenizer(4), tokenizer_only)
    train_ckpt = tmp_path / "step_0000010"  # what the training loop writes: Toto weights, no tokenizer
    model = tiny_toto()
    save_weights(train_ckpt, "toto", model.state_dict(), kind="toto", config=model.config.to_dict())
    cases = [
        (dict(path=tmp_path / "missing"), CheckpointError, "not found: pass the encoder directory"),
        (dict(path=tokenizer_only), CheckpointError, "holds a tokenizer checkpoint, not an encoder"),
        (dict(path=train_ckpt), CheckpointError, "without a tokenizer"),
        (dict(path=encoder_dir, layer=5), ValueError, r"layer=5: .*block 1\.\.4"),
        (dict(path=encoder_dir, pool="max"), ValueError, "pool='max': use one of avg, attn"),
        (dict(path=encoder_dir, dtype="fp16"), ValueError, "dtype='fp16'"),
    ]
    for kwargs, kind, match in cases:
        with pytest.raises(kind, match=match) as error:
            load_encoder(**kwargs)
        assert "\n" not in str(error.value)
    assert load_encoder(encoder_dir / "toto.json", dtype="fp32").layer == 2  # naming a file of the directory works


def test_facade(encoder_dir):
    encoder = toto_robot.load_encoder(encoder_dir, layer=-1, pool="attn", dtype="bf16")
    assert isinstance(encoder, TotoEncoder) and (encoder.layer, encoder.pool) == (4, "attn")
    assert next(encoder.model.parameters()).dtype == torch.bfloat16
    assert encoder(frames(1)).dtype == torch.float32
    lazy = "import sys, toto_robot; assert 'torch' not in sys.modules and 'encoder.frozen' not in sys.modules"
    subprocess.run([sys.executable, "-c", lazy], check=True)
