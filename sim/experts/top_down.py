"""The grasp routine both tasks share: align above a grasp point, descend, close, carry.

Every call re-derives the phase from the state (memoryless), in priority order:
holding -> carry; at the grasp point -> close; above it and aligned -> descend;
low and off to the side -> rise first; otherwise -> move above it.
"""
from __future__ import annotations

import numpy as np

from sim.experts.base import Expert
from sim.experts.grips import CLOSED_ON

APPROACH_HEIGHT = 0.12  # pre-grasp height of the grasp site above the grasp point
AT_GRASP = 0.012  # grasp site this close to the grasp point: close the hand
HOLD_RADIUS = 0.025  # object this close to the grasp site with the hand closed: holding it
ALIGNED_XY = 0.01
ALIGNED_ROT = 0.15  # Frobenius norm of the orientation difference (about 0.1 rad)


class TopDownExpert(Expert):
    """Subclasses say where to grasp, how wide the object is, and where to carry it."""

    def grasp_point(self, state) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """World position and hand orientation (3x3) of the grasp."""
        raise NotImplementedError

    def object_width(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def carry_target(self, state, point: np.ndarray, grasp: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def plan(self, state):
        q = self.part(state, "joint_pos")
        grasp = self.part(state, "grasp_pos")
        point, rot = self.grasp_point(state)
        rel = point - grasp
        xy = float(np.linalg.norm(rel[:2]))
        closed = CLOSED_ON[self.robot.name](q[self.arm :], self.object_width())

        if closed and xy < HOLD_RADIUS and abs(rel[2]) < HOLD_RADIUS:
            return self.carry_target(state, point, grasp), rot, self.hand_closed
        if xy < AT_GRASP and abs(rel[2]) < AT_GRASP:
            return point, rot, self.hand_closed
        _, current_rot = self.ik.site_pose(q)
        aligned = np.linalg.norm(rot - current_rot) < ALIGNED_ROT
        if xy < ALIGNED_XY and aligned and rel[2] < 0.01:
            return point, rot, self.hand_open
        if rel[2] > -0.06 and xy > 0.02:
            return np.array([grasp[0], grasp[1], point[2] + APPROACH_HEIGHT]), rot, self.hand_open
        return point + np.array([0.0, 0.0, APPROACH_HEIGHT]), rot, self.hand_open
