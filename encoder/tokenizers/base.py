"""One interface for every tokenizer: uint8 frames in, codes (or patch vectors) out.

The transformer, offline tokenization (pretrain/) and the frozen encoder only ever see this
interface, so swapping our FSQ tokenizer for the official DALL-E dVAE or continuous patches is a
config change (`tokenizer=fsq|dalle|patch`), never a code change.
"""
from __future__ import annotations

import torch
from torch import nn


class Tokenizer(nn.Module):
    """Frames (N, H, W, 3) uint8 -> tokens on a (H/downsample) x (W/downsample) grid.

    Discrete tokenizers return LongTensor codes (N, g, g) in [0, codebook_size); continuous ones
    (patch) return float vectors (N, g, g, dim). Tokens stay on the device they were computed on (the
    tokenizer's; for patches the frames'): a model on a GPU reads them without a round trip through
    the host, and a caller that stores them calls .cpu(). `decode` inverts `encode` where a decoder exists.
    """

    downsample: int = 8
    codebook_size: int | None = None
    discrete: bool = True
    kind: str = ""  # the `tokenizer=` name: fsq, dalle, patch
    checkpoint_kind: str = ""  # the "kind" its tokenizer.json records (encoder/tokenizers/registry.py)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"the {self.kind or type(self).__name__} tokenizer has no decoder")

    def checkpoint(self) -> tuple[dict, dict]:
        """(config, state dict) to save: `from_checkpoint` rebuilds the tokenizer from them."""
        raise NotImplementedError(f"cannot save a tokenizer of kind {self.kind!r}")

    @classmethod
    def from_checkpoint(cls, config: dict, state: dict, where: str) -> Tokenizer:
        """The tokenizer saved as (config, state) in `where` (a path named in errors)."""
        raise NotImplementedError

    def check_frames(self, frames) -> torch.Tensor:
        """Validate uint8 (N, H, W, 3) square frames, H a multiple of `downsample`; one-line errors."""
        if not isinstance(frames, torch.Tensor):
            raise ValueError(f"frames must be a torch.Tensor, got {type(frames).__name__} (use torch.from_numpy)")
        if frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got dtype {frames.dtype}")
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must have shape (N, H, W, 3), got {tuple(frames.shape)}")
        h, w = frames.shape[1:3]
        if h != w or h == 0 or h % self.downsample:
            raise ValueError(f"frames must be square with a side that is a positive multiple of {self.downsample}, got {h}x{w}")
        return frames

    def check_codes(self, codes) -> torch.Tensor:
        """Validate integer codes (N, g, g) in [0, codebook_size)."""
        if not isinstance(codes, torch.Tensor) or codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"codes must be an integer torch.Tensor (N, g, g), got {getattr(codes, 'dtype', type(codes).__name__)}")
        if codes.ndim != 3 or codes.shape[1] != codes.shape[2]:
            raise ValueError(f"codes must have shape (N, g, g), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        return codes.long()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, downsample={self.downsample}, codebook_size={self.codebook_size}"


def frames_to_float(frames: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return frames.to(device).permute(0, 3, 1, 2).float().div_(255)


def float_to_frames(images: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), rounded and clamped."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()
