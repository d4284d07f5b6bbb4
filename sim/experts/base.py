"""Shared machinery of the scripted experts: state parsing, IK step, action normalisation.

An expert is a feedback policy: `expert(state) -> action` with no memory between calls, so it can
label any state a student visits (DAgger). Its phase (approach, descend, close, lift, ...) is
re-derived from the privileged state on every call.
"""
from __future__ import annotations

import numpy as np

from sim.experts.ik import DifferentialIK
from sim.robots import RobotSpec
from sim.task_kinds import state_layout
from sim.tasks import EnvConfig, TaskSpec


def yaw_rotation(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class Expert:
    """Base class: subclasses implement `plan(state) -> (target_pos, target_rot, hand_target)`."""

    def __init__(self, task: TaskSpec, robot: RobotSpec, config: EnvConfig):
        self.task, self.robot, self.config = task, robot, config
        self.ik = DifferentialIK(robot)
        self.layout = state_layout(task.kind, robot.action_dim)
        self.arm = len(robot.arm_joints)
        self.scale = np.asarray(robot.action_scale)
        self.down = np.asarray(robot.down)
        self.home_arm = np.asarray(robot.home[: self.arm])
        self.hand_open = np.asarray(robot.hand_open)
        self.hand_closed = np.asarray(robot.hand_closed)

    def part(self, state: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(state[self.layout[name]], dtype=np.float64)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64)
        # Step from the commanded configuration: actions move the targets, and planning from the
        # lagging measured joints would wind the targets up past the goal.
        commanded = self.part(state, "joint_target")
        target_pos, target_rot, hand_target = self.plan(state)
        dq_arm = self.ik.arm_step(commanded, target_pos, target_rot, posture=self.home_arm)
        dq = np.r_[dq_arm, np.asarray(hand_target) - commanded[self.arm :]]
        return np.clip(dq / self.scale, -1.0, 1.0).astype(np.float32)

    def plan(self, state: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError
