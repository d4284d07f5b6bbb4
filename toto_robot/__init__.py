"""toto-robot: Toto video pre-training for robot learning.

The public facade; heavy subpackages are imported only when a function needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"


def make_env(task: str, **options):
    """A simulated task env: `make_env("franka_pick", image_size=224)` (see sim.EnvConfig)."""
    import sim

    return sim.make_env(task, **options)
