"""Shared helpers for encoder tests: a tiny exported encoder directory made on the spot.

`make_encoder_dir(path)` writes what `python pretrain/run.py` exports to runs/pretrain/encoder
(toto.safetensors/.json + tokenizer.safetensors/.json), but for a random tiny Toto and a random
small FSQ tokenizer, so frozen-encoder and probe tests run in seconds with no pre-training.
Extend this file rather than copying the helper: probe and frozen-encoder tests both use it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encoder import tokens
from encoder.model import Toto, TotoConfig
from encoder.tokenizers import save_tokenizer
from encoder.tokenizers.base import frames_to_float
from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
from toto_robot.checkpoint import save_weights


@torch.no_grad()
def spread_codes(tokenizer: FSQTokenizer, resolution: int) -> FSQTokenizer:
    """Rescale a random FSQ encoder's last conv so its latents have unit spread on noise images.

    Freshly initialised, its latents are tiny and every patch rounds to the same code, so every
    image would give identical tokens; standardised, codes follow the image content.
    """
    noise = torch.randint(0, 256, (16, resolution, resolution, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    z = tokenizer.encoder(frames_to_float(noise))
    mean, std = z.mean((0, 2, 3)), z.std((0, 2, 3))
    last = tokenizer.encoder.net[-1]
    last.weight.div_(std[:, None, None, None])
    last.bias.sub_(mean).div_(std)
    return tokenizer


def make_encoder_dir(
    path: str | Path,
    dim: int = 32,
    n_layers: int = 4,
    n_heads: int = 2,
    resolution: int = 32,
    frames: int = 16,
    levels: tuple[int, ...] = (4, 4, 4),
    seed: int = 0,
) -> Path:
    """A random tiny encoder checkpoint in `path` (created); returns `path`.

    The FSQ tokenizer downsamples 8x (three stages), so the grid is resolution // 8 (4 at 32px)
    and it has prod(levels) codes (64 by default), spread so that codes follow image content
    (`spread_codes`). The Toto's context holds `frames` frames.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = spread_codes(FSQTokenizer(FSQConfig(levels=levels, channels=(8, 16, 16), res_blocks=1)).eval(), resolution)
    save_tokenizer(tokenizer, path)
    grid = resolution // tokenizer.downsample
    seq_len = tokens.sequence_length(frames, grid)
    config = TotoConfig(dim=dim, n_layers=n_layers, n_heads=n_heads, vocab_size=tokens.vocab_size(tokenizer.codebook_size),
                        ffn_hidden=2 * dim, max_seq_len=seq_len)
    model = Toto(config)
    save_weights(path, "toto", model.state_dict(), kind="toto", config=config.to_dict(), frames=frames, grid=grid,
                 seq_len=seq_len, resolution=resolution, tokenizer="tokenizer")
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """One tiny encoder (dim 32, 4 layers, 32px, 4x4 grid, 64 codes) shared by the session."""
    return make_encoder_dir(tmp_path_factory.mktemp("tiny_encoder"))
