"""Robot descriptions: which MJCF file, which joints, the published DH table it must match.

The MJCF files under `assets/` are the single source of truth for joint limits and geometry; the
DH tables here are the manufacturers' published values, kept separately so a test can check the
MJCF against them (a typo in a body frame shows up as a forward-kinematics mismatch).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toto_robot.kinematics import FRANKA_DH, DHRow, dh_forward_kinematics  # noqa: F401  (re-exported)

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class RobotSpec:
    name: str
    mjcf: Path
    arm_joints: tuple[str, ...]
    hand_joints: tuple[str, ...]
    dh: tuple[DHRow, ...]  # one row per arm joint, then the fixed flange row
    flange_site: str
    grasp_site: str
    home: tuple[float, ...]  # arm + hand joint positions of the start pose
    action_scale: tuple[float, ...]  # largest joint-target change per control step (rad or m)
    hand_open: tuple[float, ...]
    hand_closed: tuple[float, ...]
    down: tuple[tuple[float, ...], ...]  # grasp-site orientation pointing down, at yaw 0 (home)

    @property
    def joints(self) -> tuple[str, ...]:
        return self.arm_joints + self.hand_joints

    @property
    def action_dim(self) -> int:
        return len(self.joints)


_PI2 = np.pi / 2

FRANKA = RobotSpec(
    name="franka",
    mjcf=ASSETS / "franka_panda.xml",
    arm_joints=tuple(f"panda_joint{i}" for i in range(1, 8)),
    hand_joints=("panda_finger_joint1", "panda_finger_joint2"),
    dh=FRANKA_DH,  # Franka Emika's published modified DH parameters (toto_robot/kinematics.py)
    flange_site="panda_flange",
    grasp_site="panda_grasp",
    home=(0.0, -0.242, 0.0, -2.451, 0.0, 2.209, np.pi / 4, 0.04, 0.04),  # hand down at (0.45, 0, 0.3)
    action_scale=(0.05,) * 7 + (0.01, 0.01),
    hand_open=(0.04, 0.04),
    hand_closed=(0.0, 0.0),
    down=((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
)

_FINGERS = ("index", "middle", "ring", "thumb")

KUKA = RobotSpec(
    name="kuka",
    mjcf=ASSETS / "kuka_iiwa14.xml",
    arm_joints=tuple(f"iiwa_joint{i}" for i in range(1, 8)),
    hand_joints=tuple(f"{f}_j{k}" for f in _FINGERS for k in range(4)),
    # KUKA LBR iiwa 14 R820 modified DH parameters (KUKA manuals, as tabulated in KST).
    dh=(
        DHRow(0.0, 0.0, 0.36),
        DHRow(-_PI2, 0.0, 0.0),
        DHRow(_PI2, 0.0, 0.42),
        DHRow(_PI2, 0.0, 0.0),
        DHRow(-_PI2, 0.0, 0.40),
        DHRow(-_PI2, 0.0, 0.0),
        DHRow(_PI2, 0.0, 0.0),
        DHRow(0.0, 0.0, 0.126),  # flange
    ),
    flange_site="iiwa_flange",
    grasp_site="hand_grasp",
    home=(0.0, 0.205, 0.0, -1.791, 0.0, 1.145, 0.0) + (0.0,) * 16,  # palm down at (0.45, 0, 0.35)
    action_scale=(0.05,) * 7 + (0.15,) * 16,
    hand_open=(0.0, -0.2, 0.0, 0.0) * 4,  # fingertips spread: 3 cm clearance each side of a 5 cm cube
    hand_closed=(0.0, 1.2, 0.9, 0.6) * 3 + (0.0, 1.2, 0.9, 0.6),
    down=((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
)

ROBOTS: dict[str, RobotSpec] = {"franka": FRANKA, "kuka": KUKA}
