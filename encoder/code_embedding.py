"""A starting point for the token embedding that knows the FSQ code geometry (issue 24, part 3a).

An FSQ code is d digits, each one of L_i levels; most codes a still patch flips to differ from
the old one by one level in one digit. A plain N(0, 0.02) embedding table puts such neighbours
at cosine ~0, like random pairs, so a flip reads as a new object. Here row c starts as
ẑ(c) W + r_c: ẑ(c) in [-1, 1]^d is the code's quantized latent (what the tokenizer's decoder
reads), W a random d x dim map and r_c a smaller per-code residual, scaled so each row keeps the
usual 0.02 standard deviation. Training then moves the rows freely (it is still an ordinary
nn.Embedding: the Hugging Face export and every loader are unchanged).
"""
from __future__ import annotations

import math

import torch

RESIDUAL = 0.25  # share of each row's variance in the per-code residual
STD = 0.02  # the model's init std (encoder/model.py reset_parameters)


def fsq_code_embedding(code_values: torch.Tensor, dim: int, generator: torch.Generator,
                       residual: float = RESIDUAL, std: float = STD) -> torch.Tensor:
    """(K, d) quantized latents of every code -> (K, dim) initial embedding rows."""
    if code_values.ndim != 2 or not 0 <= residual <= 1:
        raise ValueError(f"code_values must be (K, d) and residual in [0, 1], got {tuple(code_values.shape)}, {residual}")
    z = code_values.float()
    z = z - z.mean(0)
    scale = z.pow(2).sum(-1).mean().sqrt().clamp_min(1e-6)  # rms row norm of z
    w = torch.randn(z.shape[1], dim, generator=generator)
    structured = (z / scale) @ w  # rows of std ~1
    noise = torch.randn(len(z), dim, generator=generator)
    return std * (math.sqrt(1 - residual) * structured + math.sqrt(residual) * noise)
