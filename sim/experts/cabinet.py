"""Cabinet expert: grasp the drawer's fin handle from above, pull along the drawer axis."""
from __future__ import annotations

import numpy as np

from sim.experts.base import yaw_rotation
from sim.experts.top_down import TopDownExpert
from sim.scene import HANDLE_RADIUS

PULL_LEAD = 0.05  # pull target this far ahead of the handle, towards the robot
EXTRA_PULL = 0.04  # open this much past the success distance, then hold still

# Hand yaw relative to the cabinet so the closing direction is across the fin (along cabinet y):
# the Franka's fingers already close along y at yaw 0; the Kuka's fingers and thumb face along x.
YAW_OFFSET = {"franka": 0.0, "kuka": np.pi / 2}

# Kuka only. Its outer fingers (index, ring) sit 0.045 m either side of the middle-thumb pinch, one
# of them over the drawer's front edge: they stay curled out of the way, above the fin.
KUKA_OUTER_CURLED = (0.0, 1.4, 1.4, 1.0)
# Its hand is long (wrist centre to grasp site KUKA_HAND_LENGTH) and its elbow folds at most 120 deg,
# so pointing straight down it cannot bring the fin nearer than about 0.40 m to its base. Nearer than
# KUKA_WRIST_REACH, it pitches the fingertips towards the robot just enough to keep the wrist there.
KUKA_HAND_LENGTH = 0.281
KUKA_WRIST_REACH = 0.45
KUKA_MAX_PITCH = 0.7
# The grasp site is the fingertip pinch point (right for the cube on the table). The thin fin sits this
# much deeper in the hand, so the middle and thumb distal phalanges close on it from both sides
# instead of the fingertips curling past it.
KUKA_FIN_DEPTH = 0.03


def pitch_rotation(angle: float) -> np.ndarray:
    """Rotation about the y axis: turns a downward (-z) axis towards -x for a positive angle."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class CabinetExpert(TopDownExpert):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.robot.name == "kuka":  # hand targets: index (0:4) and ring (8:12) curled
            for hand in (self.hand_open, self.hand_closed):
                hand[0:4] = hand[8:12] = KUKA_OUTER_CURLED

    def grasp_point(self, state):
        yaw = float(self.part(state, "cabinet_yaw")[0])
        point = self.part(state, "handle_pos")
        if self.robot.name != "kuka":
            return point, yaw_rotation(yaw + YAW_OFFSET[self.robot.name]) @ self.down
        reach = (KUKA_WRIST_REACH - np.linalg.norm(point[:2])) / KUKA_HAND_LENGTH
        pitch = float(np.arcsin(np.clip(reach, 0.0, np.sin(KUKA_MAX_PITCH))))
        rot = yaw_rotation(yaw) @ pitch_rotation(pitch) @ yaw_rotation(YAW_OFFSET["kuka"]) @ self.down
        return point + KUKA_FIN_DEPTH * rot[:, 2], rot  # rot[:, 2]: the hand's approach axis

    def object_width(self) -> float:
        return 2 * HANDLE_RADIUS

    def carry_target(self, state, point, grasp):
        if float(self.part(state, "drawer_opening")[0]) >= self.config.open_distance + EXTRA_PULL:
            return grasp
        yaw = float(self.part(state, "cabinet_yaw")[0])
        outward = -np.array([np.cos(yaw), np.sin(yaw), 0.0])
        return point + PULL_LEAD * outward
