"""What a task kind adds to the shared env: its objects, their reset, goal, failure, reward and state.

One class a kind (pick, cabinet). `sim/env.py` holds everything the kinds share (the robot, the
controller, cameras, observations) and calls these at the points where the kinds differ, so a new
task kind is one class here and a scripted expert (sim/experts), not branches through the env.
Kinds take MuJoCo's model and data as arguments and do not import mujoco, so this module
(`state_layout`, read by the experts) stays MuJoCo-free.
"""
from __future__ import annotations

import numpy as np

from sim.scene import CUBE_HALF, HANDLE_GRASP, HANDLE_LENGTH, HANDLE_RADIUS, TABLE_TOP
from sim.tasks import CABINET, PICK, EnvConfig

CUBE_XY_RANGE = ((0.42, 0.62), (-0.15, 0.15))
CUBE_YAW_RANGE = (-np.pi / 4, np.pi / 4)
CABINET_X, CABINET_XY_NOISE, CABINET_YAW_NOISE = 0.78, (0.04, 0.08), 0.15


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class TaskKind:
    """The interface (see the module docstring); `model`/`data` are MuJoCo's MjModel/MjData."""

    objects_xml = ""
    state_parts: tuple[tuple[str, int], ...] = ()  # (name, size) of what `state` returns, for `state_layout`

    def __init__(self, model, config: EnvConfig):
        self.config = config

    def reset(self, model, data, rng: np.random.Generator) -> None:
        """Place the objects for a new episode (before mj_forward)."""

    def goal_reached(self, data) -> bool:
        raise NotImplementedError

    def object_lost(self, data) -> bool:
        """The episode cannot succeed any more (ends it early)."""
        return False

    def reach_and_progress(self, data) -> tuple[np.ndarray, float]:
        """(where the hand should go, task progress in [0, 1]) for the shaped reward."""
        raise NotImplementedError

    def state(self, data) -> list:
        """The kind's part of the privileged state, in `state_layout` order."""
        raise NotImplementedError


class Pick(TaskKind):
    """A cube on the table, lifted to a goal height and held there."""

    state_parts = (("cube_pos", 3), ("cube_quat", 4), ("goal_height", 1))

    objects_xml = f"""
<body name="cube" pos="0.5 0 {TABLE_TOP + CUBE_HALF}">
  <freejoint name="cube_joint"/>
  <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" material="cube" mass="0.08"
        friction="1.5 0.02 0.001" condim="4" solref="0.005 1" contype="1" conaffinity="1"/>
</body>
"""

    def __init__(self, model, config: EnvConfig):
        super().__init__(model, config)
        self.cube_qpos = model.jnt_qposadr[model.joint("cube_joint").id]

    def cube_pos(self, data) -> np.ndarray:
        return data.qpos[self.cube_qpos : self.cube_qpos + 3]

    def reset(self, model, data, rng) -> None:
        x, y = (rng.uniform(*r) for r in CUBE_XY_RANGE)
        data.qpos[self.cube_qpos : self.cube_qpos + 3] = (x, y, TABLE_TOP + CUBE_HALF)
        data.qpos[self.cube_qpos + 3 : self.cube_qpos + 7] = yaw_quat(rng.uniform(*CUBE_YAW_RANGE))

    def goal_reached(self, data) -> bool:
        return abs(self.cube_pos(data)[2] - (TABLE_TOP + self.config.lift_height)) <= self.config.goal_tolerance

    def object_lost(self, data) -> bool:
        """The cube fell off the table (MVP resets early then)."""
        return bool(self.cube_pos(data)[2] < TABLE_TOP - 0.05)

    def reach_and_progress(self, data) -> tuple[np.ndarray, float]:
        cube = self.cube_pos(data)
        return cube, float(np.clip((cube[2] - TABLE_TOP - CUBE_HALF) / self.config.lift_height, 0.0, 1.0))

    def state(self, data) -> list:
        c = self.cube_qpos
        return [data.qpos[c : c + 3], data.qpos[c + 3 : c + 7], [TABLE_TOP + self.config.lift_height]]


# A low chest of drawers facing the robot (-x). The drawer slides towards the robot; its handle is a
# fin standing out of the front so a hand pointing down can close around it from either side (a hand
# reaching it horizontally would need wrist angles the Franka does not have at this height).
class Cabinet(TaskKind):
    """A drawer opened by its handle to a goal distance; the chest is placed with some noise."""

    state_parts = (("handle_pos", 3), ("drawer_opening", 1), ("cabinet_yaw", 1))

    objects_xml = f"""
<body name="cabinet" pos="0.78 0 0">
  <geom type="box" size="0.15 0.2 0.005" pos="0 0 {TABLE_TOP + 0.005}" material="cabinet" contype="1" conaffinity="1"/>
  <geom type="box" size="0.15 0.2 0.005" pos="0 0 {TABLE_TOP + 0.205}" material="cabinet" contype="1" conaffinity="1"/>
  <geom type="box" size="0.15 0.005 0.1" pos="0 -0.2 {TABLE_TOP + 0.105}" material="cabinet" contype="1" conaffinity="1"/>
  <geom type="box" size="0.15 0.005 0.1" pos="0 0.2 {TABLE_TOP + 0.105}" material="cabinet" contype="1" conaffinity="1"/>
  <geom type="box" size="0.005 0.2 0.1" pos="0.15 0 {TABLE_TOP + 0.105}" material="cabinet" contype="1" conaffinity="1"/>
  <body name="drawer" pos="0 0 {TABLE_TOP + 0.105}">
    <joint name="drawer_joint" type="slide" axis="-1 0 0" range="0 0.28" damping="8" frictionloss="1"/>
    <inertial pos="0 0 0" mass="1.0" diaginertia="0.02 0.02 0.02"/>
    <geom type="box" size="0.008 0.19 0.09" pos="-0.148 0 0" material="drawer" contype="1" conaffinity="1"/>
    <geom type="box" size="0.14 0.19 0.004" pos="0 0 -0.088" material="drawer" contype="1" conaffinity="1"/>
    <geom type="box" size="0.14 0.004 0.06" pos="0 -0.185 -0.03" material="drawer" contype="1" conaffinity="1"/>
    <geom type="box" size="0.14 0.004 0.06" pos="0 0.185 -0.03" material="drawer" contype="1" conaffinity="1"/>
    <geom type="box" size="0.004 0.19 0.06" pos="0.136 0 -0.03" material="drawer" contype="1" conaffinity="1"/>
    <geom name="handle" type="capsule" fromto="-0.156 0 0.05 {-0.156 - HANDLE_LENGTH} 0 0.05" size="{HANDLE_RADIUS}"
          material="handle" friction="1.5 0.02 0.001" condim="4" contype="1" conaffinity="1"/>
    <site name="handle" pos="{-0.156 - HANDLE_GRASP} 0 0.05" size="0.005" group="4"/>
  </body>
</body>
"""

    def __init__(self, model, config: EnvConfig):
        super().__init__(model, config)
        self.cabinet_body = model.body("cabinet").id
        self.drawer_qpos = model.jnt_qposadr[model.joint("drawer_joint").id]
        self.handle_site = model.site("handle").id
        self.yaw = 0.0

    def opening(self, data) -> float:
        return float(data.qpos[self.drawer_qpos])

    def reset(self, model, data, rng) -> None:
        dx, dy = (rng.uniform(-n, n) for n in CABINET_XY_NOISE)
        self.yaw = float(rng.uniform(-CABINET_YAW_NOISE, CABINET_YAW_NOISE))
        model.body_pos[self.cabinet_body] = (CABINET_X + dx, dy, 0.0)
        model.body_quat[self.cabinet_body] = yaw_quat(self.yaw)

    def goal_reached(self, data) -> bool:
        return self.opening(data) >= self.config.open_distance

    def reach_and_progress(self, data) -> tuple[np.ndarray, float]:
        return data.site_xpos[self.handle_site], float(np.clip(self.opening(data) / self.config.open_distance, 0.0, 1.0))

    def state(self, data) -> list:
        return [data.site_xpos[self.handle_site], [self.opening(data)], [self.yaw]]


TASK_KINDS: dict[str, type[TaskKind]] = {PICK: Pick, CABINET: Cabinet}


def state_layout(kind: str, joint_count: int) -> dict[str, slice]:
    """Named slices of the privileged `state` observation vector of a task kind."""
    # joint_target: the controller's current position targets (actions move them), so an expert can
    # plan from the commanded configuration instead of the lagging measured one.
    parts = [("joint_pos", joint_count), ("joint_target", joint_count), ("grasp_pos", 3), *TASK_KINDS[kind].state_parts]
    layout, start = {}, 0
    for name, size in parts:
        layout[name] = slice(start, start + size)
        start += size
    return layout
