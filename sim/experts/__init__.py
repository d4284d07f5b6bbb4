"""Scripted privileged experts for the four tasks (feedback policies on the `state` observation).

    expert = make_expert("franka_pick")
    action = expert(obs["state"])  # in [-1, 1], same space as the env's actions
"""
from __future__ import annotations

from sim.experts.base import Expert
from sim.robots import ROBOTS
from sim.tasks import CABINET, PICK, EnvConfig, get_task
from sim.experts.cabinet import CabinetExpert
from sim.experts.pick import PickExpert


def make_expert(task: str, config: EnvConfig | None = None) -> Expert:
    """The expert of a task (name or gymnasium id), for an env built with the same EnvConfig."""
    spec = get_task(task)
    classes = {PICK: PickExpert, CABINET: CabinetExpert}
    return classes[spec.kind](spec, ROBOTS[spec.robot], config or EnvConfig())


__all__ = ["Expert", "make_expert"]
