"""Pick expert: grasp the cube from above, lift it to the goal height."""
from __future__ import annotations

import numpy as np

from sim.experts.base import yaw_rotation
from sim.experts.top_down import TopDownExpert
from sim.scene import CUBE_HALF


def cube_yaw(quat: np.ndarray) -> float:
    """Yaw of the cube's x axis, folded into [-pi/4, pi/4) by the cube's 90-degree symmetry."""
    w, x, y, z = quat
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class PickExpert(TopDownExpert):
    def grasp_point(self, state):
        rot = yaw_rotation(cube_yaw(self.part(state, "cube_quat"))) @ self.down
        return self.part(state, "cube_pos"), rot

    def object_width(self) -> float:
        return 2 * CUBE_HALF

    def carry_target(self, state, point, grasp):
        return np.array([point[0], point[1], float(self.part(state, "goal_height")[0])])
