"""What every frozen encoder shares, Toto's (`encoder/frozen.py`) and the MAE's (`encoder/frozen_mae.py`).

The layer rule, the device/dtype choice, the check of incoming frames and the freeze live here once,
so the policy features, real BC and the probes can take either encoder through one surface
(call, `token_features`, `feature_dim`, `compute`).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from toto_robot.compute import Compute, resolve

DEFAULT_LAYER = "mid"  # the paper's robotics protocol: the best probing layer sits near 50% depth

__all__ = ["DEFAULT_LAYER", "FrozenEncoder", "encoder_compute", "resolve_layer"]


def resolve_layer(layer, n_layers: int) -> int:
    """The number of blocks to run for `layer`: "mid" -> n_layers // 2, a fraction f in (0, 1] ->
    round(f * n_layers), an int 1..n_layers as is, -k -> n_layers + 1 - k (-1 = last); at least 1."""
    if isinstance(layer, str):
        if layer == "mid":
            return max(1, n_layers // 2)
    elif isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if 1 <= layer <= n_layers:
            return int(layer)
        if -n_layers <= layer <= -1:
            return n_layers + 1 + int(layer)
    elif isinstance(layer, numbers.Real) and not isinstance(layer, bool) and 0 < layer <= 1:
        return max(1, round(float(layer) * n_layers))
    raise ValueError(f"layer={layer!r}: use 'mid', a fraction in (0, 1], or a block 1..{n_layers} "
                     f"(negative counts from the end, -1 = {n_layers})")


def encoder_compute(dtype, device) -> Compute:
    """The encoder's device and transformer dtype: "auto" (bf16 where native), "fp32" (or None), "bf16"."""
    try:
        return resolve(device, "fp32" if dtype is None else dtype)
    except ValueError as error:
        raise ValueError(f"dtype={dtype!r}, device={device!r}: {error}; dtype is auto, fp32 (or None) or bf16") from None


class FrozenEncoder(nn.Module):
    """The frozen surface: subclasses set `resolution`, `grid`, `frames` and their modules, then call `_freeze`."""

    kind = ""  # "toto" or "mae": which encoder a result came from
    resolution: int
    grid: int
    frames: int

    def _freeze(self, compute: Compute) -> None:
        """No parameter trains, everything sits on the compute's device, eval mode for good."""
        self.requires_grad_(False)
        self.to(compute.device)
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Always eval mode: a frozen encoder inside a probe or policy must not follow its .train()."""
        return super().train(False)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid**2

    def check(self, x, ndim: tuple[int, ...] = (4, 5)) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) / clips (B, T, H, W, 3) at the checkpoint's size, as a tensor."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        shapes = " or ".join({4: "frames (B, H, W, 3)", 5: "clips (B, T, H, W, 3)"}[n] for n in ndim)
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected uint8 {shapes} as a tensor or numpy array, got {type(x).__name__}")
        if x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 RGB {shapes} in 0..255, got dtype {x.dtype}")
        if x.ndim not in ndim or x.shape[-1] != 3 or x.shape[0] == 0:
            raise ValueError(f"expected uint8 {shapes}, got shape {tuple(x.shape)}")
        h, w, r = x.shape[-3], x.shape[-2], self.resolution
        if (h, w) != (r, r):
            raise ValueError(f"encoder expects {r}x{r} frames (its tokenizer's training size); got {h}x{w}: render at image_size={r}")
        if x.ndim == 5 and not 1 <= x.shape[1] <= self.frames:
            raise ValueError(f"clips of 1..{self.frames} frames (the checkpoint's clip length); got {x.shape[1]}: "
                             "use stream() for longer videos")
        return x
