"""Shared pieces for policy tests: the fast state-only franka_pick env and its expert."""
from __future__ import annotations

import pytest


@pytest.fixture
def pick_env():
    """franka_pick without rendering (proprio+state): ~1,800 steps/s with the expert."""
    import sim

    env = sim.make_env("franka_pick", obs_mode="proprio+state")
    yield env
    env.close()


@pytest.fixture
def pick_expert(pick_env):
    from sim.experts import make_expert

    return make_expert("franka_pick", pick_env.unwrapped.config)
