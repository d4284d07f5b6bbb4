"""Where runs go when no `out` is given: every default run folder in one place.

Entry points, configs and the policy's encoder spec read these, so moving the default layout is one edit.
"""
from __future__ import annotations

# The objective `python pretrain/run.py` trains unless told otherwise (pretrain/config.py, RunConfig.objective):
# patch_dvae, 8x8 pixel patches in and the next patch's stable FSQ code out, by the representation study's
# rule (docs/results.md, section 4). Its run owns PRETRAIN_OUT; every other objective writes beside it.
DEFAULT_OBJECTIVE = "patch_dvae"
PRETRAIN_OUT = "runs/pretrain"  # `python pretrain/run.py` (the default objective)


def pretrain_out(objective: str = DEFAULT_OBJECTIVE) -> str:
    """`python pretrain/run.py objective=<objective>`'s out: a run of another objective (the MAE, the paper's
    next-token Toto) goes beside, never over, the default run."""
    return PRETRAIN_OUT if objective == DEFAULT_OBJECTIVE else f"{PRETRAIN_OUT}_{objective}"


def encoder_export(objective: str = DEFAULT_OBJECTIVE) -> str:
    """The frozen encoder that run exports: what policies, probes and tracking read by default."""
    return f"{pretrain_out(objective)}/encoder"
