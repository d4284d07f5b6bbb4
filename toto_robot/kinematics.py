"""Franka kinematics shared by the simulator and the real-robot stack: DH forward kinematics and
the published joint limits. Here, in the shared core, because sim/ and real/ must not import
each other (docs/design.md section 2): sim checks its MJCF against these tables, real's safety envelope uses
them to keep the hand in its workspace box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PI2 = np.pi / 2


@dataclass(frozen=True)
class DHRow:
    """One row of a modified (Craig) DH table: alpha_{i-1}, a_{i-1}, d_i (theta_i is the joint)."""

    alpha: float
    a: float
    d: float


# Franka Emika's published modified DH parameters (FCI documentation); Panda and FR3 share them.
FRANKA_DH = (
    DHRow(0.0, 0.0, 0.333),
    DHRow(-_PI2, 0.0, 0.0),
    DHRow(_PI2, 0.0, 0.316),
    DHRow(_PI2, 0.0825, 0.0),
    DHRow(-_PI2, -0.0825, 0.384),
    DHRow(_PI2, 0.0, 0.0),
    DHRow(_PI2, 0.088, 0.0),
    DHRow(0.0, 0.0, 0.107),  # flange
)

FRANKA_TCP_OFFSET = 0.1034  # flange to the fingertip centre along the flange z axis (m), Franka Hand

# Joint limits in rad, (lower, upper), as Franka publishes them (FCI "Robot and interface specifications").
PANDA_JOINT_LIMITS = (
    (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
)
FR3_JOINT_LIMITS = (
    (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
    (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
)


def dh_forward_kinematics(rows: tuple[DHRow, ...], q: np.ndarray) -> np.ndarray:
    """4x4 pose of the last frame for modified-DH rows; joints beyond len(q) are fixed at 0."""
    pose = np.eye(4)
    for i, row in enumerate(rows):
        theta = float(q[i]) if i < len(q) else 0.0
        ca, sa, ct, st = np.cos(row.alpha), np.sin(row.alpha), np.cos(theta), np.sin(theta)
        link = np.array(
            [
                [ct, -st, 0.0, row.a],
                [st * ca, ct * ca, -sa, -sa * row.d],
                [st * sa, ct * sa, ca, ca * row.d],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
        pose = pose @ link
    return pose
