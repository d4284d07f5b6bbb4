"""The MAE baseline the paper compares Toto with on robots (section 4.6: MVP's MAE-base, frozen).

MVP's recipe (Xiao et al. 2022, after He et al. 2022): a ViT over 8x8 pixel patches with fixed 2-D
sin-cos positions and a CLS token; 75% of each frame's patches are masked at random, the encoder
sees the rest, a light decoder (2 blocks, half width) fills in mask tokens and regresses the
masked patches' normalized pixels (`normalize_patches`, MAE's norm_pix_loss).

For a fair comparison the trunk is Toto's own: the same `Block` (RMSNorm, SwiGLU) with the same
width, depth and heads, attention bidirectional and RoPE switched off (positions come from the
sin-cos table). At 128 px an 8-px patch grid is 16 x 16 = 256 tokens a frame, as Toto's tokenizer
gives, so reading layer L costs both models the same per frame. Only the pre-training objective
differs (and what it implies: masking, bidirectional attention, absolute positions).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from encoder.layers import Block, RMSNorm, init_parameters
from encoder.objectives import normalize_patches

__all__ = ["MAE", "MAEConfig", "sincos_2d"]


@dataclass
class MAEConfig:
    dim: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ffn_hidden: int | None = None  # None: Toto's SwiGLU width for `dim` (TotoConfig.hidden_dim)
    multiple_of: int = 256
    norm_eps: float = 1e-5
    patch_dim: int = 192  # 3 x 8 x 8 pixels
    grid: int = 16  # patches per side (128 px / 8)
    mask_ratio: float = 0.75
    decoder_dim: int | None = None  # None: dim // 2 (MVP's decoder is light)
    decoder_layers: int = 2
    decoder_heads: int = 4

    def __post_init__(self):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"MAEConfig.mask_ratio={self.mask_ratio}: must be in (0, 1)")
        if self.dim % self.n_heads or self.decoder_width % self.decoder_heads:
            raise ValueError(f"MAEConfig: dim {self.dim} / {self.n_heads} heads and decoder {self.decoder_width} / "
                             f"{self.decoder_heads} heads must divide evenly")

    @property
    def hidden_dim(self) -> int:
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        return self.multiple_of * math.ceil(int(2 * 4 * self.dim / 3) / self.multiple_of)

    @property
    def decoder_width(self) -> int:
        return self.decoder_dim or self.dim // 2

    @property
    def tokens(self) -> int:
        return self.grid**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MAEConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def like(cls, toto_config, patch_dim: int, grid: int, **overrides) -> MAEConfig:
        """The MAE whose trunk matches a Toto's (width, depth, heads, SwiGLU width)."""
        t = toto_config
        return cls(dim=t.dim, n_layers=t.n_layers, n_heads=t.n_heads, ffn_hidden=t.hidden_dim, norm_eps=t.norm_eps,
                   patch_dim=patch_dim, grid=grid, **overrides)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sin-cos positions (MAE): half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = [f(axis.reshape(-1, 1) * omega) for axis in (rows, cols) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()


class MAEOutput(NamedTuple):
    loss: torch.Tensor  # mean squared error over the masked patches' normalized pixels (fp32)
    pred: torch.Tensor  # (N, L, patch_dim) the decoder's output for every patch
    mask: torch.Tensor  # (N, L) True where the patch was hidden from the encoder


def _no_rope(n: int, head_dim: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos = 1, sin = 0: `Block`'s rotary embedding becomes the identity (positions are added instead)."""
    return like.new_ones(n, head_dim, dtype=torch.float32), like.new_zeros(n, head_dim, dtype=torch.float32)


class MAE(nn.Module):
    """`MAE(config)(patches)` -> MAEOutput with the masked-patch loss; `hidden(patches, n)` -> the
    unmasked encoder's tokens after block n (CLS first), what the frozen encoder reads."""

    def __init__(self, config: MAEConfig):
        super().__init__()
        self.config = c = config
        self.patch_in = nn.Linear(c.patch_dim, c.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.layers = nn.ModuleList(Block(c.dim, c.n_heads, c.hidden_dim, c.norm_eps) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.dim, c.norm_eps)
        d = c.decoder_width
        self.decoder_in = nn.Linear(c.dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder = nn.ModuleList(Block(d, c.decoder_heads, 4 * d, c.norm_eps) for _ in range(c.decoder_layers))
        self.decoder_norm = RMSNorm(d, c.norm_eps)
        self.decoder_out = nn.Linear(d, c.patch_dim)
        self.register_buffer("pos", sincos_2d(c.grid, c.dim), persistent=False)
        self.register_buffer("decoder_pos", sincos_2d(c.grid, d), persistent=False)
        self.checkpoint_blocks = False  # the training loop's flag (unused: MAE's sequences are short)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MAE's init: Xavier-uniform linears, zero biases, N(0, 0.02) for the CLS and mask tokens."""
        init_parameters(self, lambda name, p: nn.init.normal_(p, std=0.02) if name in ("cls", "mask_token")
                        else nn.init.xavier_uniform_(p))

    def _check(self, patches: torch.Tensor) -> None:
        c = self.config
        if patches.ndim != 3 or patches.shape[1:] != (c.tokens, c.patch_dim) or not patches.is_floating_point():
            raise ValueError(f"expected float patches (N, {c.tokens}, {c.patch_dim}), got {patches.dtype} {tuple(patches.shape)}")

    def _blocks(self, blocks, x: torch.Tensor) -> torch.Tensor:
        head_dim = x.shape[-1] // blocks[0].attention.n_heads
        cos, sin = _no_rope(x.shape[1], head_dim, x)
        for block in blocks:
            x = block(x, cos, sin, False)  # mask False: every token sees every token
        return x

    def hidden(self, patches: torch.Tensor, num_layers: int | None = None) -> torch.Tensor:
        """(N, 1 + L, dim): CLS and every patch after `num_layers` blocks, nothing masked, no final norm."""
        self._check(patches)
        n = self.config.n_layers if num_layers is None else num_layers
        x = self.patch_in(patches) + self.pos.to(patches.dtype)
        x = torch.cat([self.cls.expand(len(x), -1, -1).to(x.dtype), x], dim=1)
        return self._blocks(self.layers[:n], x)

    def forward(self, patches: torch.Tensor) -> MAEOutput:
        """Mask `mask_ratio` of each frame's patches at random (torch's global RNG), encode the rest,
        decode all, and score the masked ones against their normalized pixels."""
        self._check(patches)
        c, (N, L, _) = self.config, patches.shape
        keep = max(1, round(L * (1 - c.mask_ratio)))
        order = torch.rand(N, L, device=patches.device).argsort(dim=1)  # MAE's per-sample shuffle
        visible = order[:, :keep]
        x = self.patch_in(patches) + self.pos.to(patches.dtype)
        x = torch.gather(x, 1, visible[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([self.cls.expand(N, -1, -1).to(x.dtype), x], dim=1)
        x = self.norm(self._blocks(self.layers, x))
        y = self.decoder_in(x[:, 1:])
        full = self.mask_token.to(y.dtype).expand(N, L, -1).clone()
        full.scatter_(1, visible[..., None].expand(-1, -1, y.shape[-1]), y)
        y = torch.cat([self.decoder_in(x[:, :1]), full + self.decoder_pos.to(y.dtype)], dim=1)
        pred = self.decoder_out(self.decoder_norm(self._blocks(self.decoder, y)))[:, 1:]
        mask = torch.ones(N, L, dtype=torch.bool, device=patches.device)
        mask.scatter_(1, visible, False)
        error = (pred.float() - normalize_patches(patches)).pow(2).mean(-1)
        return MAEOutput(error[mask].mean(), pred, mask)
