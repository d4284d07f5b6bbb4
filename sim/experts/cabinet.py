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
# Grasp this much further out along the fin than the handle site: the Kuka's outer fingers sit
# 0.045 m either side of the pinch, and at the site the one nearer the drawer would land on its top edge.
GRASP_OUT = {"franka": 0.0, "kuka": 0.015}


class CabinetExpert(TopDownExpert):
    def grasp_point(self, state):
        yaw = float(self.part(state, "cabinet_yaw")[0])
        rot = yaw_rotation(yaw + YAW_OFFSET[self.robot.name]) @ self.down
        outward = -np.array([np.cos(yaw), np.sin(yaw), 0.0])
        return self.part(state, "handle_pos") + GRASP_OUT[self.robot.name] * outward, rot

    def object_width(self) -> float:
        return 2 * HANDLE_RADIUS

    def carry_target(self, state, point, grasp):
        if float(self.part(state, "drawer_opening")[0]) >= self.config.open_distance + EXTRA_PULL:
            return grasp
        yaw = float(self.part(state, "cabinet_yaw")[0])
        outward = -np.array([np.cos(yaw), np.sin(yaw), 0.0])
        return point + PULL_LEAD * outward
