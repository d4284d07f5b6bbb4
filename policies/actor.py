"""Policy networks on frozen features, as in MVP (docs/design.md section 9).

MVP's actor: image embedding -> Linear(->128), proprioception -> Linear(->128), concatenated,
then an MLP (256, 128, 64) with SELU to the action. Only these layers train; the encoder that
made the image embedding stays frozen and never sees a gradient (features arrive as plain
arrays, computed once when a sample was stored: policies/features.py).

`Actor.for_state(state_dim, action_dim)` is the privileged upper bound: the task's true state
vector replaces (image feature, proprio) as one input, projected straight to the MLP's 256-wide
input. It bounds what any image encoder could reach with the same head and budget.

Feature scale: the input features are standardized by per-dimension statistics held in the actor
(buffers `feat_mean`, `feat_std`, saved with its weights), set once from the first round's data
(`set_feature_stats`). Frozen Toto mid-layer features are far from unit scale (the nano
checkpoint's avg-pooled features have norm ~0.09 and vary by ~0.003 across images), so an
unnormalized Linear would see near-constant inputs. The statistics are not re-estimated later:
a warm-started actor must keep seeing its inputs on the same scale.

Bounding actions to the env's [-1, 1]:
- bound="tanh" (default): the output goes through tanh, so the actor never emits an action the env
  would clip, wherever it is deployed (sim, real robot node, PPO). MSE to an expert action of
  exactly +-1 (the experts saturate) pulls the pre-activation up without end but with a vanishing
  gradient, which costs nothing in practice (the output ends within ~0.05 of the bound).
- bound="clip": a linear output during training (plain regression, full gradient on saturated
  targets); `act()` clips it to [-1, 1] for execution.
"""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from torch import nn

from encoder.pooling import AttentionPool

BOUNDS = ("tanh", "clip")


def feature_stats(features, eps: float = 1e-6, floor: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per dimension of `features` (N, feat_dim): the one standardization rule of every
    trainer (DAgger, BC, PPO, real BC).

    Each std is floored at `floor` x the median std (1 if every dim is constant). Why: the stats
    come from the first data (the expert's round, random actions), and a dim that barely moved there
    (a hand joint the pick expert never opens: std 1e-5) blows up once the student visits states
    where it does move (measured on kuka_pick's state: 160,000x its round-0 std, and the state policy failed).
    """
    f = torch.as_tensor(np.asarray(features, dtype=np.float32))
    std = f.std(0) if len(f) > 1 else torch.ones(f.shape[1])
    median = std.median()
    return f.mean(0), (std.clamp_min(floor * median) if median > eps else torch.ones_like(std))


def mlp(sizes: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear+SELU for each consecutive pair of `sizes`, then a linear output layer."""
    layers: list[nn.Module] = []
    for a, b in pairwise(sizes):
        layers += [nn.Linear(a, b), nn.SELU()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """(features (B, feat_dim), proprio (B, proprio_dim)) -> action (B, action_dim).

    proprio_dim=0 builds the one-input variant (`for_state`): `features` alone -> Linear(->256).
    """

    def __init__(self, feat_dim: int, proprio_dim: int, action_dim: int, embed_dim: int = 128,
                 hidden: tuple[int, ...] = (256, 128, 64), bound: str = "tanh", attn_tokens: int = 0):
        super().__init__()
        if bound not in BOUNDS:
            raise ValueError(f"bound={bound!r}: use one of {BOUNDS}")
        if min(feat_dim, action_dim) < 1 or proprio_dim < 0:
            raise ValueError(f"feat_dim={feat_dim}, action_dim={action_dim} must be >= 1 and proprio_dim={proprio_dim} >= 0")
        if attn_tokens < 0 or (attn_tokens and feat_dim % attn_tokens):
            raise ValueError(f"attn_tokens={attn_tokens} must be 0 or split feat_dim={feat_dim} into equal tokens")
        self.feat_dim, self.proprio_dim, self.action_dim, self.bound = feat_dim, proprio_dim, action_dim, bound
        self.config = {"feat_dim": feat_dim, "proprio_dim": proprio_dim, "action_dim": action_dim,
                       "embed_dim": embed_dim, "hidden": list(hidden), "bound": bound,
                       "attn_tokens": attn_tokens}  # rebuilds it: Actor(**config)
        # attn_tokens > 0: the features are that many tokens (flattened), pooled by a learned query
        # (the paper's attentive pooling, Table 5) that trains with the actor and saves with it
        self.pool = AttentionPool(feat_dim // attn_tokens) if attn_tokens else None
        pooled = feat_dim // attn_tokens if attn_tokens else feat_dim
        if proprio_dim:
            self.feat_proj = nn.Linear(pooled, embed_dim)
            self.proprio_proj = nn.Linear(proprio_dim, embed_dim)
            in_dim = 2 * embed_dim
        else:
            self.feat_proj, self.proprio_proj, in_dim = nn.Linear(pooled, hidden[0]), None, hidden[0]
        self.mlp = mlp((in_dim, *hidden), action_dim)
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))

    @torch.no_grad()
    def set_feature_stats(self, features) -> None:
        """Standardize inputs by `feature_stats(features)` (N, feat_dim)."""
        mean, std = feature_stats(features)
        self.feat_mean.copy_(mean.to(self.feat_mean.device))
        self.feat_std.copy_(std.to(self.feat_std.device))

    @classmethod
    def for_state(cls, state_dim: int, action_dim: int, **kwargs) -> Actor:
        """The privileged-state variant: the state vector is the only input (upper bound)."""
        return cls(state_dim, 0, action_dim, **kwargs)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        """Raw training output: tanh-bounded for bound="tanh", unbounded for bound="clip"."""
        x = (features - self.feat_mean) / self.feat_std
        if self.pool is not None:
            x = self.pool(x.view(len(x), self.config["attn_tokens"], -1))
        x = self.feat_proj(x)
        if self.proprio_proj is not None:
            if proprio is None:
                raise ValueError("this actor reads proprioception: pass proprio (B, proprio_dim)")
            x = torch.cat([x, self.proprio_proj(proprio)], dim=-1)
        out = self.mlp(x)
        return torch.tanh(out) if self.bound == "tanh" else out

    @torch.no_grad()
    def act(self, features, proprio=None) -> np.ndarray:
        """Actions to execute, float32 numpy (B, action_dim) in [-1, 1], from numpy or torch inputs."""
        device = next(self.parameters()).device
        f = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
        p = None if proprio is None else torch.as_tensor(np.asarray(proprio, dtype=np.float32), device=device)
        return self(f, p).clamp(-1.0, 1.0).cpu().numpy()
