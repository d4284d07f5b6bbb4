"""How each robot's hand opens, closes and tells that it holds something.

A grip decision must come from the current joint positions alone (experts are memoryless):
a hand 'holds' when it has closed onto an object of the given width near the grasp site.
"""
from __future__ import annotations

import numpy as np


def franka_closed_on(hand_q: np.ndarray, width: float) -> bool:
    """Both fingers have closed to (about) the object's half-width."""
    return bool(np.all(hand_q <= width / 2 + 0.004))


def kuka_closed_on(hand_q: np.ndarray, width: float) -> bool:
    """The middle finger and the thumb face each other across the palm centre line and do the
    pinching (index and ring may pass beside a narrow object), so the hand holds when the gap between
    their fingertips has shrunk to the object's width (or below: on the thin drawer fin the tips pass
    each other and the distal phalanges hold it, planar gap about -0.015 m)."""
    return bool(kuka_pinch_gap(hand_q) <= width + KUKA_GAP_SLACK)


# Kuka hand geometry (kuka_iiwa14.xml): finger bases sit +-KUKA_BASE_X from the palm centre line;
# phalanx lengths up to the fingertip sphere centre; fingertip sphere radius.
KUKA_BASE_X = 0.045
KUKA_PHALANGES = np.array([0.054, 0.0384, 0.0297])
KUKA_TIP_RADIUS = 0.013
KUKA_GAP_SLACK = 0.01  # fingertips this much wider than the object still count as closed on it


def kuka_pinch_gap(hand_q: np.ndarray) -> float:
    """Clear gap (m) between the middle and thumb fingertip spheres across the palm (planar model).

    Each finger's flexion joints curl it towards the opposite side, so the fingertip moves inwards by
    sum(length_i * sin(cumulative flexion angle)); abduction is ignored (it is 0 in the grasps).
    """
    fingers = np.asarray(hand_q).reshape(4, 4)
    inward = [KUKA_PHALANGES @ np.sin(np.cumsum(fingers[f, 1:])) for f in (1, 3)]  # middle, thumb
    return float(2 * KUKA_BASE_X - sum(inward) - 2 * KUKA_TIP_RADIUS)


# closed_on(hand joint positions, object width in m) -> True when the hand holds the object
CLOSED_ON = {"franka": franka_closed_on, "kuka": kuka_closed_on}
