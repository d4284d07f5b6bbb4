"""Model presets: the paper's sizes (docs/design.md section 8) and `nano`, the one this CPU can train.

FFN width. LLaMA's default rule (SwiGLU hidden = 2/3 * 4 * dim, rounded up to 256) does not give
the paper's totals for base and large (97.5M and 222M, not 120M and 280M), and a 4 * dim SwiGLU
width does not give 1b (1.51B, not 1.1B); no single width ratio fits all three. What reproduces
them is 4 * dim for base and large (125.9M, 285.3M: the GPT/ViT MLP width) and LLaMA's rule for
1b (hidden 5632, i.e. TinyLlama-1.1B's exact shape: 2048 wide, 22 layers; 1.164B).

The a1..a6 scaling family (paper Table 15, appendix A.5). Table 15's counts fit
18.2 * layers * dim^2 + 1794 * dim within 1.4%: 18 dim^2 a layer is attention (4 dim^2) plus a
SwiGLU MLP of width 14/3 * dim (3 * dim * 14/3 dim), and 1794 * dim is an untied embedding and
head of ~900 rows each, the size of VQGAN's 1024-code vocabulary the paper's scaling runs used.
So the rule here: SwiGLU hidden = 14/3 * dim rounded up to a multiple of 64 (`A_FFN_MULTIPLE`).
With VQGAN's vocabulary (1028 rows) it gives Table 15 within 2.3%:
    a1 14.9M (+0.6%), a2 77.6M (+0.5%), a3 213.9M (-0.5%), a4 456.7M (-0.3%), a5 1.192B (-0.6%), a6 1.857B (-2.3%)
(a6 is the table's outlier: 18.5 dim^2 a layer where the others have 18.2 +- 0.1; a4's 4800 is
4.69 * dim after rounding). With our 8196-row vocabulary (FSQ's 8192 codes + 4 special ids) the
totals carry 2 * 7168 * dim more embedding and head: a1 18.6M (+25%), a2 85.0M (+10%), a3 225.0M
(+4.6%), a4 471.4M (+2.9%), a5 1.214B (+1.2%), a6 1.883B (-0.9%). Counts include the untied
embedding and head; `PAPER_PARAMS` holds the paper's totals.
"""
from __future__ import annotations

import math

from encoder.model import TotoConfig

A_FFN_RATIO, A_FFN_MULTIPLE = 14 / 3, 64  # the a1..a6 MLP width rule (module docstring)
VQGAN_VOCAB = 1024 + 4  # the vocabulary Table 15's counts imply (module docstring): 1024 codes + our 4 special ids


def _mlp4(dim: int, n_heads: int, n_layers: int) -> TotoConfig:
    return TotoConfig(dim=dim, n_heads=n_heads, n_layers=n_layers, ffn_hidden=4 * dim)


def _table15(dim: int, n_layers: int, n_heads: int = 16) -> TotoConfig:
    """An a1..a6 (or s1..s4) size: SwiGLU width 14/3 * dim rounded up to 64 (module docstring)."""
    hidden = A_FFN_MULTIPLE * math.ceil(A_FFN_RATIO * dim / A_FFN_MULTIPLE)
    return TotoConfig(dim=dim, n_heads=n_heads, n_layers=n_layers, ffn_hidden=hidden)


PRESETS: dict[str, TotoConfig] = {
    # Pre-trainable on a CPU in minutes at 4098-token sequences: the smallest of the widths and depths
    # measured (docs/benchmarks.md, measurements behind defaults). Attention over 4098 tokens is about
    # half the FLOPs, so depth and width both cost; ~1.8M tokens favour the smaller model anyway
    # (compute-optimal size for that budget is far below).
    "nano": TotoConfig(dim=192, n_heads=3, n_layers=4),
    # The scaling study this CPU runs (experiment=scaling, pretrain/scaling.py): Table 15's rule,
    # width and depth growing linearly, a constant 4 heads (Table 15 keeps 16 constant; 16 heads of
    # 4 to 10 dimensions would be a different network)
    "s1": _table15(64, 2, 4),
    "s2": _table15(96, 3, 4),
    "s3": _table15(128, 4, 4),
    "s4": _table15(160, 5, 4),
    "a1": _table15(256, 12),
    "a2": _table15(512, 16),
    "a3": _table15(768, 20),
    "a4": _table15(1024, 24),
    "a5": _table15(1536, 28),
    "a6": _table15(1792, 32),
    "base": _mlp4(768, 12, 12),
    "large": _mlp4(1024, 16, 16),
    "1b": TotoConfig(dim=2048, n_heads=16, n_layers=22),
}

# Total parameters the paper states: section 4 (docs/design.md section 8) and Table 15 (a1..a6)
PAPER_PARAMS: dict[str, float] = {"base": 120e6, "large": 280e6, "1b": 1.1e9, "a1": 14.8e6, "a2": 77.2e6,
                                  "a3": 215e6, "a4": 458e6, "a5": 1.2e9, "a6": 1.9e9}


def preset_config(name: str, **overrides) -> TotoConfig:
    """A fresh copy of preset `name` with fields replaced, e.g. preset_config("base", rope_base=5e4)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid: {', '.join(PRESETS)}")
    return TotoConfig.from_dict({**PRESETS[name].to_dict(), **overrides})
