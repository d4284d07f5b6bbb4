"""Learning-rate schedule: linear warm-up, then cosine decay to a floor (paper: 2000 warm-up steps).

The rate is a pure function of the step, so a resumed run needs no scheduler state and a run
resumed with more `steps` follows the new cosine from where it is. The floor `min_lr_ratio` x lr
(default 0.1, the LLaMA recipe the paper builds on) keeps late steps from stalling.
"""
from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Learning rate of optimizer step `step` (0-based).

    Warm-up: lr * (step + 1) / warmup_steps, so step 0 already moves and step warmup_steps-1 is
    at the peak. Then cosine from lr at step warmup_steps to lr * min_lr_ratio at the last step
    (total_steps - 1); steps past the end stay at the floor.
    """
    if lr < 0 or warmup_steps < 0 or total_steps < 1 or not 0 <= min_lr_ratio <= 1:
        raise ValueError(
            f"lr={lr}, warmup_steps={warmup_steps}, total_steps={total_steps}, min_lr_ratio={min_lr_ratio}: "
            "need lr >= 0, warmup_steps >= 0, total_steps >= 1 and 0 <= min_lr_ratio <= 1"
        )
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    progress = 1.0 if decay_steps <= 0 else min(1.0, (step - warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
