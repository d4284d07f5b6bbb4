"""The safety envelope the franka node applies to every action, whatever the policy sends.

Pure numpy (no ROS, no franky), so it is fuzzed in the tests. An action is 7 joint-position deltas,
optionally followed by a gripper command in [0, 1]. The deltas are added to the last *commanded*
target (the measured joints lag a streaming motion), then: each joint's step is limited (per action,
and per second of the robot's clock, so actions that arrive in a burst do not speed the arm up), the target
is clamped into the joint limits shrunk by a margin, and the step is scaled back until the hand
(flange and fingertip centre, so the whole hand axis: the box is convex) is inside the workspace
box. Malformed actions, an e-stop or a stale policy hold position: the target stays the last one.
franky checks none of this (an out-of-limit JointMotion target is accepted and driven into the stop).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from real.config import SafetyConfig
from toto_robot.kinematics import FR3_JOINT_LIMITS, FRANKA_DH, PANDA_JOINT_LIMITS, dh_forward_kinematics

FR3_LIMITS = FR3_JOINT_LIMITS  # franky-sim simulates an FR3
LEAD_STEPS = 2.0  # how far (in max_joint_step units) a target may run ahead of the measured joints
HOLD_REASONS = ("not_numeric", "wrong_length", "not_finite", "outside_workspace", "estop", "guiding", "stale")
_BISECTIONS = 12  # step fraction resolution 1/4096


def panda_limits() -> tuple[np.ndarray, np.ndarray]:
    """Panda joint limits as Franka publishes them (the sim's MJCF is tested against the same table)."""
    return np.array(PANDA_JOINT_LIMITS[0]), np.array(PANDA_JOINT_LIMITS[1])


def joint_limits(robot_model: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) in rad for 'fr3' or 'panda' (FrankaConfig.robot_model)."""
    if robot_model == "fr3":
        return np.array(FR3_LIMITS[0]), np.array(FR3_LIMITS[1])
    if robot_model == "panda":
        return panda_limits()
    raise ValueError(f"robot_model={robot_model!r}: use fr3 or panda")


@dataclass(frozen=True)
class Report:
    """What the envelope did to one action (the node logs and counts it)."""

    held: bool
    reason: str | None = None  # one of HOLD_REASONS when held
    step_limited: bool = False
    joint_limited: bool = False
    workspace_fraction: float = 1.0  # share of the step kept to stay in the box
    gripper: float | None = None  # command in [0, 1], None: leave the gripper alone


class SafetyEnvelope:
    """`clamp(current_q, last_target, action) -> (target_q, report)`; counts by reason in `counts`."""

    def __init__(self, config: SafetyConfig, joint_lower, joint_upper):
        lower, upper = np.asarray(joint_lower, np.float64), np.asarray(joint_upper, np.float64)
        if lower.shape != (7,) or upper.shape != (7,) or np.any(lower + 2 * config.joint_margin >= upper):
            raise ValueError("joint limits must be 7 (lower, upper) pairs wider than twice joint_margin")
        self.config = config
        self.lower, self.upper = lower + config.joint_margin, upper - config.joint_margin
        self.box_min, self.box_max = np.array(config.workspace_min), np.array(config.workspace_max)
        self.counts: Counter[str] = Counter()
        self.estopped = False

    def hand_points(self, q: np.ndarray) -> np.ndarray:
        """(2, 3): flange and fingertip centre in the base frame."""
        pose = dh_forward_kinematics(FRANKA_DH, q)
        return np.stack([pose[:3, 3], pose[:3, 3] + self.config.hand_tcp_offset * pose[:3, 2]])

    def in_workspace(self, q: np.ndarray, margin: float = 0.0) -> bool:
        """Flange and fingertips inside the box shrunk by `margin` metres on every face."""
        points = self.hand_points(q)
        return bool(np.all(points >= self.box_min + margin) and np.all(points <= self.box_max - margin))

    def admits(self, q) -> str | None:
        """None if configuration `q` is inside the shrunk joint limits and the workspace box, else why not."""
        q = np.asarray(q, np.float64)
        if np.any(q < self.lower) or np.any(q > self.upper):
            return "outside the joint limits (with margin)"
        return None if self.in_workspace(q, self.config.box_margin) else "puts the hand outside the workspace box"

    def hold(self, current_q, last_target, reason: str) -> tuple[np.ndarray, Report]:
        """Keep the last commanded target (the measured joints if nothing was commanded yet)."""
        self.counts[reason] += 1
        return _start(current_q, last_target), Report(held=True, reason=reason)

    def clamp(self, current_q, last_target, action, dt: float | None = None) -> tuple[np.ndarray, Report]:
        """`dt`: robot-clock seconds since `last_target` was commanded (None: no such target); the step
        is then also at most max_joint_speed x dt, so the target's speed does not follow the host's."""
        start = _start(current_q, last_target)
        if self.estopped:
            return self.hold(current_q, last_target, "estop")
        try:
            a = np.asarray(action)
        except (TypeError, ValueError):  # ragged nesting
            return self.hold(current_q, last_target, "not_numeric")
        if a.dtype.kind not in "iuf":  # strings, objects, complex, bool
            return self.hold(current_q, last_target, "not_numeric")
        a = a.astype(np.float64)
        if a.ndim != 1 or a.shape[0] not in (7, 8):
            return self.hold(current_q, last_target, "wrong_length")
        if not np.all(np.isfinite(a)):
            return self.hold(current_q, last_target, "not_finite")
        if not self.in_workspace(start):
            return self.hold(current_q, last_target, "outside_workspace")
        limit = self.config.max_joint_step
        step = np.clip(a[:7], -limit, limit)
        if dt is not None and last_target is not None:
            fast = max(0.0, self.config.max_joint_speed * dt)
            self.counts["speed_limited"] += bool(np.any(np.abs(step) > fast))
            step = np.clip(step, -fast, fast)
        # A joint already outside the shrunk limits (robot started there) may only move inwards.
        wanted = start + step
        # The target may lead the measured joints by at most LEAD_STEPS steps: a lagging arm that is
        # allowed to build up speed overshoots a target that reverses (the box would not hold).
        lead = LEAD_STEPS * limit
        current = np.asarray(current_q, dtype=np.float64)
        led = np.clip(wanted, current - lead, current + lead)
        lead_limited = bool(np.any(led != wanted))
        wanted = led
        target = np.clip(wanted, np.minimum(self.lower, start), np.maximum(self.upper, start))
        joint_limited, fraction = bool(np.any(target != wanted)), 1.0
        # Targets keep box_margin clear of the faces: the tracking arm overshoots a target by a few mm.
        # From inside that band a step may only move inwards (the bisection keeps none of an outward one).
        margin = self.config.box_margin
        if not self.in_workspace(target, margin):
            inside, outside = 0.0, 1.0  # start is inside: bisect the largest safe share of the step
            for _ in range(_BISECTIONS):
                mid = (inside + outside) / 2
                inside, outside = (mid, outside) if self.in_workspace(start + mid * (target - start), margin) else (inside, mid)
            fraction = inside
            target = start + fraction * (target - start)
        self.counts["lead_limited"] += lead_limited
        report = Report(
            held=False,
            step_limited=bool(np.any(step != a[:7])),
            joint_limited=joint_limited,
            workspace_fraction=fraction,
            gripper=float(np.clip(a[7], 0.0, 1.0)) if a.shape[0] == 8 else None,
        )
        for name in ("step_limited", "joint_limited"):
            self.counts[name] += getattr(report, name)
        self.counts["workspace_scaled"] += fraction < 1.0
        return target, report


def _start(current_q, last_target) -> np.ndarray:
    start = np.asarray(current_q if last_target is None else last_target, dtype=np.float64)
    if start.shape != (7,) or not np.all(np.isfinite(start)):
        raise ValueError(f"joint positions must be 7 finite values, got {start.tolist()}")
    return start.copy()


class Watchdog:
    """Stale-input rule: `fresh(now)` while the last `feed` is at most `timeout_s` old.

    Never fed counts as expired, so the robot holds until the first fresh action. `clock` is
    injectable for tests; the node passes ROS or monotonic time.
    """

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0")
        self.timeout_s, self.clock, self.last = timeout_s, clock, None

    def feed(self, now: float | None = None) -> None:
        self.last = self.clock() if now is None else now

    def fresh(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return self.last is not None and now - self.last <= self.timeout_s

    def expired(self, now: float | None = None) -> bool:
        return not self.fresh(now)
