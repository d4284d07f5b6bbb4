"""Where runs go when no `out` is given: every default run folder in one place.

Entry points, configs and the policy's encoder spec read these, so moving the default layout is one edit.
"""
from __future__ import annotations

PRETRAIN_OUT = "runs/pretrain"  # `python pretrain/run.py` (objective=ar)


def pretrain_out(objective: str = "ar") -> str:
    """`python pretrain/run.py objective=<objective>`'s out: an MAE run goes beside, never over, the Toto run."""
    return PRETRAIN_OUT if objective == "ar" else f"{PRETRAIN_OUT}_{objective}"


def encoder_export(objective: str = "ar") -> str:
    """The frozen encoder that run exports: what policies, probes and tracking read by default."""
    return f"{pretrain_out(objective)}/encoder"
