"""Probe heads trained on frozen Toto features (paper Fig. 4 and Table 5).

    linear         average-pooled tokens -> BatchNorm (no affine) -> Linear. The classic linear
                   probe (MAE recipe): the parameter-free BatchNorm only rescales the features,
                   which matters here because the residual stream of a decoder grows with depth,
                   so one learning rate suits every layer.
    attention      tokens -> AttentionPool (LayerNorm, learned query, Wk, Wv) -> Linear: the
                   paper's attention probe, which Table 5 finds 7.9 points better than average
                   pooling because a causal model's tokens are not alike (early ones saw little).
    attention_mlp  the same pooled vector through a 2-layer MLP instead of one Linear.

`linear` reads (B, dim) vectors, the attention heads (B, N, dim) token features.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from encoder.pooling import AttentionPool

PROBES = ("linear", "attention", "attention_mlp")
TOKEN_PROBES = ("attention", "attention_mlp")  # read token features, not pooled vectors


def check_probes(probes) -> list[str]:
    """The requested probe types, validated (one-line error naming the valid ones)."""
    probes = list(probes)
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise ValueError(f"unknown probe type(s) {', '.join(map(repr, unknown)) or '(none given)'}; valid: {', '.join(PROBES)}")
    return list(dict.fromkeys(probes))


class LinearProbe(nn.Module):
    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.head(self.norm(x))


def attention_pool(pool: AttentionPool, tokens: torch.Tensor) -> torch.Tensor:
    """`pool(tokens)` computed without projecting every token: same result, same gradients.

    With one learned query, q . Wk x = (Wk^T q) . x (the key bias adds the same to every logit,
    which softmax ignores), and sum_i a_i (Wv x_i + bv) = Wv (sum_i a_i x_i) + bv because the
    weights sum to 1. So a head costs O(N dim) instead of O(N dim^2): 30-100x less for the
    64-256 cached tokens of a probe, which is what makes training 2 heads x every layer cheap.
    The weights stay those of `encoder.pooling.AttentionPool`, so a trained pool deploys into
    `TotoEncoder.pool_module` as is.
    """
    b, n, d = tokens.shape
    tokens = torch.nn.functional.layer_norm(tokens, (d,))  # as AttentionPool.forward does
    h = pool.n_heads
    hd = d // h
    q = pool.query.to(tokens.dtype).view(h, 1, hd)
    keys = (q @ pool.wk.weight.view(h, hd, d)).squeeze(1)  # (h, d): Wk_h^T q_h
    weights = torch.softmax(tokens @ keys.T / math.sqrt(hd), dim=1)  # (b, n, h)
    mixed = weights.transpose(1, 2) @ tokens  # (b, h, d): attention-weighted tokens per head
    out = torch.einsum("bhd,hed->bhe", mixed, pool.wv.weight.view(h, hd, d))  # Wv_h per head
    return out.reshape(b, d) + pool.wv.bias


class AttentionProbe(nn.Module):
    def __init__(self, dim: int, n_classes: int, n_heads: int = 1, mlp_hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.pool = AttentionPool(dim, n_heads=n_heads)
        if mlp_hidden:
            self.head = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_hidden, n_classes))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, tokens):
        return self.head(attention_pool(self.pool, tokens))


def make_probe(kind: str, dim: int, n_classes: int, n_heads: int = 1, mlp_hidden: int | None = None,
               dropout: float = 0.0) -> nn.Module:
    """A fresh head of type `kind` (one of PROBES); mlp_hidden None -> 2 * dim."""
    check_probes([kind])
    if kind == "linear":
        return LinearProbe(dim, n_classes)
    hidden = (mlp_hidden or 2 * dim) if kind == "attention_mlp" else None
    return AttentionProbe(dim, n_classes, n_heads=n_heads, mlp_hidden=hidden, dropout=dropout)
