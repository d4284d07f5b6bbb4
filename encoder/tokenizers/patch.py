"""Continuous patch tokens: each non-overlapping p x p x 3 patch (p=8: 192 values) is one token.

The paper compares discrete dVAE tokens with raw patches regressed directly. This tokenizer only
cuts frames into patches scaled to [-1, 1] and pastes them back (decode is the exact inverse for
uint8 frames). The regression target normalisation (per-patch mean/variance, as in MAE) lives in
`encoder/objectives.py` (`next_patch_loss`), not here, so the tokens stay an invertible view of
the pixels.
"""
from __future__ import annotations

import torch

from encoder.tokenizers.base import Tokenizer


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, H, W, C) -> (N, H/p, W/p, p*p*C), each token ordered (row, column, channel) within its patch."""
    n, h, w, c = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    x = images.reshape(n, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // p, w // p, p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """Exact inverse of `patchify`: (N, gh, gw, p*p*C) -> (N, gh*p, gw*p, C)."""
    n, gh, gw, dim = patches.shape
    p = patch_size
    if dim != p * p * channels:
        raise ValueError(f"patch dim {dim} != {p}*{p}*{channels} for patch size {p} and {channels} channels")
    x = patches.reshape(n, gh, gw, p, p, channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, gh * p, gw * p, channels)


class PatchTokenizer(Tokenizer):
    """uint8 frames (N, H, W, 3) <-> float patch tokens (N, H/p, W/p, 3p^2) in [-1, 1]; no weights."""

    kind = "patch"
    checkpoint_kind = "patch_tokenizer"
    discrete = False
    codebook_size = None

    def __init__(self, patch_size: int = 8):
        super().__init__()
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.patch_size = self.downsample = int(patch_size)
        self.patch_dim = 3 * self.patch_size**2

    def checkpoint(self) -> tuple[dict, dict]:
        return {"patch_size": self.patch_size}, {}

    @classmethod
    def from_checkpoint(cls, config: dict, state: dict, where: str) -> PatchTokenizer:
        return cls(int(config.get("patch_size", 8)))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.check_frames(frames).float() / 127.5 - 1
        return patchify(x, self.patch_size)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or not tokens.is_floating_point():
            raise ValueError(f"patch tokens must be a float torch.Tensor (N, g, g, {self.patch_dim})")
        if tokens.ndim != 4 or tokens.shape[1] != tokens.shape[2] or tokens.shape[-1] != self.patch_dim:
            raise ValueError(f"patch tokens must have shape (N, g, g, {self.patch_dim}), got {tuple(tokens.shape)}")
        x = unpatchify(tokens.detach().float().cpu(), self.patch_size)
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
