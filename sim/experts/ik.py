"""Damped-least-squares differential IK on a robot's own (standalone) MJCF.

Experts are feedback policies: from a joint configuration and a desired grasp-site pose they compute
the next joint change. The robot stands at the world origin in every scene, so the standalone robot
model gives the same site poses as the scene without knowing about the task objects.
"""
from __future__ import annotations

import numpy as np

from sim.gl import choose_backend

choose_backend()
import mujoco  # noqa: E402

from sim.robots import RobotSpec  # noqa: E402


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) that rotates `current` onto `target` (3x3 matrices)."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).reshape(-1))
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class DifferentialIK:
    def __init__(self, robot: RobotSpec, damping: float = 0.05):
        self.robot = robot
        self.model = mujoco.MjModel.from_xml_path(str(robot.mjcf))
        self.data = mujoco.MjData(self.model)
        ids = [self.model.joint(n).id for n in robot.joints]
        self._qpos_idx = np.array([self.model.jnt_qposadr[j] for j in ids])
        self._arm_dofs = np.array([self.model.jnt_dofadr[j] for j in ids[: len(robot.arm_joints)]])
        self._site = self.model.site(robot.grasp_site).id
        self._lower = self.model.jnt_range[ids[: len(robot.arm_joints)], 0]
        self._upper = self.model.jnt_range[ids[: len(robot.arm_joints)], 1]
        self._damping = damping
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def site_pose(self, joint_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-site position and 3x3 orientation for robot joint positions (arm + hand)."""
        self.data.qpos[self._qpos_idx] = joint_pos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # the Jacobian reads cdof, computed here
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def arm_step(
        self,
        joint_pos: np.ndarray,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        max_linear: float = 0.03,
        max_angular: float = 0.15,
        posture: np.ndarray | None = None,
    ) -> np.ndarray:
        """Arm joint change that moves the grasp site towards the target pose by at most one step."""
        pos, rot = self.site_pose(joint_pos)
        dpos = target_pos - pos
        dist = np.linalg.norm(dpos)
        if dist > max_linear:
            dpos *= max_linear / dist
        drot = rotation_error(target_rot, rot)
        angle = np.linalg.norm(drot)
        if angle > max_angular:
            drot *= max_angular / angle
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
        jac = np.vstack([self._jacp[:, self._arm_dofs], self._jacr[:, self._arm_dofs]])
        err = np.r_[dpos, drot]
        jjt = jac @ jac.T + (self._damping**2) * np.eye(6)
        dq = jac.T @ np.linalg.solve(jjt, err)
        if posture is not None:  # drift towards a comfortable posture inside the null space
            q_arm = joint_pos[: len(self._arm_dofs)]
            null = np.eye(len(dq)) - np.linalg.pinv(jac) @ jac
            dq += null @ (0.1 * (posture - q_arm))
        return dq

    def solve(self, joint_pos, target_pos, target_rot, iterations: int = 300) -> np.ndarray:
        """Full IK by iterating arm_step from joint_pos, staying near it (e.g. to derive home poses)."""
        q = np.array(joint_pos, dtype=float)
        arm = len(self._arm_dofs)
        posture = q[:arm].copy()
        for _ in range(iterations):
            step = self.arm_step(q, target_pos, target_rot, posture=posture)
            q[:arm] = np.clip(q[:arm] + step, self._lower, self._upper)
        return q
