"""Weighted source mixtures with counter-based draws.

Draw i depends only on (seed, i), never on what was drawn before, so a resumed run, another
rank or a re-run of one step sees exactly the same sources (the paper mixes sources per batch:
20% ImageNet, 10% Ego4D, 10% Kinetics, 60% HowTo100M).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class Mixture:
    """Pick source indices with probabilities proportional to `weights`."""

    def __init__(self, weights: Sequence[float], seed: int = 0):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0:
            raise ValueError("a mixture needs at least one source weight")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"mixture weights {weights.tolist()} must be finite, >= 0 and not all 0")
        self.probs = weights / weights.sum()
        self.cumulative = np.cumsum(self.probs)
        self.seed = int(seed)

    def draw(self, index: int) -> int:
        """The source of draw number `index` (any non-negative int)."""
        u = np.random.default_rng([self.seed, int(index)]).random()
        return int(min(np.searchsorted(self.cumulative, u, side="right"), len(self.probs) - 1))

    def draws(self, start: int, count: int) -> np.ndarray:
        return np.array([self.draw(i) for i in range(start, start + count)], dtype=np.int64)
