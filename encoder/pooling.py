"""Token features (B, N, dim) -> one vector (B, dim): average or attention pooling (paper Table 5).

Average pooling is what the robotics protocol uses (MVP: tokens of an intermediate layer, average
pooled, then a learned linear layer). Attention pooling, a learned query attending over the
tokens through learned key and value maps, beat it by 7.9 points in the paper's probes; it has
weights, so something (a probe) must train it first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("avg", "attn")


def average_pool(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, dim) -> (B, dim): mean over the tokens."""
    return tokens.mean(dim=1)


class AvgPool(nn.Module):
    """`average_pool` as a module, so an encoder always holds a `pool_module` of either kind."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return average_pool(tokens)


class AttentionPool(nn.Module):
    """A learned query token cross-attending to the tokens: softmax(q Wk(x)^T / sqrt(d)) Wv(x).

    As in the paper (learned query, Wk, Wv) there is no output projection: the result stays in
    the model's feature space (dim), so a linear head on top is the same size as for `AvgPool`.
    Tokens are layer-normalized first (no parameters: an affine would fold into Wk/Wv): the
    residual stream grows with depth, and normalizing lets one learning rate train a pool on any
    layer, in probes and in deployment alike.
    With n_heads > 1 the query, keys and values split into heads that attend independently and
    their outputs are concatenated back to dim.
    """

    def __init__(self, dim: int, n_heads: int = 1):
        super().__init__()
        if n_heads < 1 or dim % n_heads:
            raise ValueError(f"AttentionPool: dim={dim} must split into n_heads={n_heads} equal heads")
        self.dim, self.n_heads = dim, n_heads
        self.query = nn.Parameter(torch.randn(dim) * 0.02)
        self.wk = nn.Linear(dim, dim)
        self.wv = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, D = tokens.shape
        if D != self.dim:
            raise ValueError(f"AttentionPool(dim={self.dim}) got tokens of width {D}")
        tokens = F.layer_norm(tokens, (D,))
        heads = (B, N, self.n_heads, D // self.n_heads)
        q = self.query.to(tokens.dtype).view(1, self.n_heads, 1, -1).expand(B, -1, -1, -1)
        k = self.wk(tokens).view(heads).transpose(1, 2)
        v = self.wv(tokens).view(heads).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v).reshape(B, D)  # (B, heads, 1, head_dim) -> (B, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_heads={self.n_heads}"


def make_pool(pool: str, dim: int, n_heads: int = 1) -> nn.Module:
    """`AvgPool()` for "avg", an untrained `AttentionPool(dim, n_heads)` for "attn"."""
    if pool == "avg":
        return AvgPool()
    if pool == "attn":
        return AttentionPool(dim, n_heads)
    raise ValueError(f"pool={pool!r}: use one of {', '.join(POOLS)}")
