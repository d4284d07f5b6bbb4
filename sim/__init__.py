"""Simulated MVP-style tasks (MuJoCo): Franka/Kuka pick and cabinet, experts, recording.

Importing `sim` registers the gymnasium ids `toto_robot/FrankaPick-v0`, `FrankaCabinet-v0`,
`KukaPick-v0` and `KukaCabinet-v0`.
"""
from __future__ import annotations

from sim.gl import choose_backend

choose_backend()

import gymnasium as gym  # noqa: E402

from sim.tasks import TASKS, EnvConfig, TaskSpec, get_task  # noqa: E402

for _spec in TASKS.values():
    if _spec.env_id not in gym.registry:
        gym.register(id=_spec.env_id, entry_point="sim.env:TotoTaskEnv", kwargs={"task": _spec.name})


def make_env(task: str, **options):
    """gymnasium.make for a task name ('franka_pick') or id, with EnvConfig options."""
    return gym.make(get_task(task).env_id, **options)


def make_vec(task: str, num_envs: int, vectorization_mode: str = "async", **options):
    """gymnasium.make_vec for a task. Async workers are spawned, not forked: a worker forked from a
    process that has already rendered with EGL hangs."""
    vector_kwargs = {"context": "spawn"} if vectorization_mode == "async" else {}
    return gym.make_vec(
        get_task(task).env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization_mode,
        vector_kwargs=vector_kwargs,
        **options,
    )


__all__ = ["TASKS", "EnvConfig", "TaskSpec", "get_task", "make_env", "make_vec"]
