"""The safety envelope: no action sequence leaves the joint limits, the step bound or the hand box."""
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from real.config import SafetyConfig
from real.safety import FR3_LIMITS, HOLD_REASONS, SafetyEnvelope, Watchdog, joint_limits, panda_limits
from tests.real.fuzz import fuzzed_action

READY = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])  # Franka's ready pose
TOL = 1e-9


def _envelope(model="fr3", **changes) -> SafetyEnvelope:
    return SafetyEnvelope(replace(SafetyConfig(), **changes), *joint_limits(model))


def _start(env: SafetyEnvelope, rng) -> np.ndarray:
    """A random configuration inside the shrunk limits with the hand in the box."""
    while True:
        q = np.clip(READY + rng.normal(0.0, 0.4, 7), env.lower, env.upper)
        if env.in_workspace(q):
            return q


def test_thousand_fuzzed_actions_never_leave_the_envelope():
    rng = np.random.default_rng(6)
    env = _envelope()
    expected = Counter()
    for episode in range(10):
        current = target = _start(env, rng)
        walk = rng.choice([-1.0, 1.0], 7) * 0.05
        for _ in range(100):
            if rng.random() < 0.05:
                walk = rng.choice([-1.0, 1.0], 7) * 0.05
            action, reason = fuzzed_action(rng, walk)
            new, report = env.clamp(current, target, action)
            expected[reason] += reason is not None
            assert report.held == (reason is not None) and report.reason == reason
            assert np.all(new >= env.lower - TOL) and np.all(new <= env.upper + TOL)
            assert np.max(np.abs(new - target)) <= env.config.max_joint_step + TOL
            assert env.in_workspace(new)
            if report.held:
                assert np.array_equal(new, target)
            if report.gripper is not None:
                assert 0.0 <= report.gripper <= 1.0
            current = target  # the robot lags by one step
            target = new
    held = {r: n for r, n in env.counts.items() if r in HOLD_REASONS}
    assert held == {r: n for r, n in expected.items() if n}
    assert set(held) == {"not_finite", "wrong_length", "not_numeric"}
    # the fuzz reached every boundary: per-joint step bound, joint limits and the box
    assert env.counts["step_limited"] > 100 and env.counts["joint_limited"] > 0 and env.counts["workspace_scaled"] > 0


def test_step_is_limited_per_joint_and_small_steps_pass_unchanged():
    env = _envelope()
    target, report = env.clamp(READY, None, [0.01, -0.02, 0.3, -5.0, 0.0, 0.0, 0.0])
    assert np.allclose(target - READY, [0.01, -0.02, 0.05, -0.05, 0.0, 0.0, 0.0])
    assert report.step_limited and not report.held and report.workspace_fraction == 1.0 and report.gripper is None
    target, report = env.clamp(READY, READY, np.full(7, 0.01, np.float32))
    assert np.allclose(target, READY + 0.01) and not report.step_limited


def test_joint_limits_shrink_by_the_margin():
    env = _envelope(joint_margin=0.05, max_joint_step=0.2)
    lower, upper = joint_limits("fr3")
    start = READY.copy()  # joint 7 turns the hand about its own axis: the box plays no part
    start[6] = upper[6] - 0.06
    target, report = env.clamp(start, None, [0, 0, 0, 0, 0, 0, 0.2])
    assert target[6] == pytest.approx(upper[6] - 0.05) and report.joint_limited
    target, _ = env.clamp(start, None, [0, 0, 0, 0, 0, 0, -0.2])
    assert target[6] == pytest.approx(start[6] - 0.2)


def test_joint_already_outside_may_only_move_inwards():
    env = _envelope()
    start = READY.copy()
    start[6] = env.upper[6] + 0.02  # robot switched on inside the margin
    outward, _ = env.clamp(start, None, [0, 0, 0, 0, 0, 0, 0.05])
    inward, _ = env.clamp(start, None, [0, 0, 0, 0, 0, 0, -0.05])
    assert outward[6] == pytest.approx(start[6]) and inward[6] == pytest.approx(start[6] - 0.05)


def test_step_scaled_back_at_the_box_face_and_held_outside():
    env = _envelope(max_joint_step=0.2)
    floor = env.hand_points(READY)[:, 2].min() - env.config.box_margin
    low_z = replace(SafetyConfig(), workspace_min=(0.2, -0.4, floor - 0.005))  # READY: 5 mm above the margin
    env = SafetyEnvelope(replace(low_z, max_joint_step=0.2), *joint_limits("fr3"))
    down = np.array([0, 0.2, 0, 0, 0, 0, 0])  # shoulder forward: the hand dips
    target, report = env.clamp(READY, None, down)
    assert 0.0 < report.workspace_fraction < 1.0 and env.in_workspace(target, env.config.box_margin)
    assert env.hand_points(target)[:, 2].min() - (env.box_min[2] + env.config.box_margin) < 0.001  # stopped at the margin
    # inside the margin band (the arm overshot, or was guided there): outward steps keep nothing, inward ones pass
    band = SafetyEnvelope(replace(low_z, workspace_min=(0.2, -0.4, floor + 0.005), max_joint_step=0.2), *joint_limits("fr3"))
    target, report = band.clamp(READY, None, down)
    assert not report.held and report.workspace_fraction == 0.0 and np.array_equal(target, READY)
    target, report = band.clamp(READY, None, -down)
    assert report.workspace_fraction == 1.0 and np.allclose(target, READY - down)
    outside = _envelope(workspace_min=(0.5, -0.4, 0.02))  # READY's hand is at x = 0.31
    target, report = outside.clamp(READY, None, np.zeros(7))
    assert report.held and report.reason == "outside_workspace" and np.array_equal(target, READY)


def test_estop_and_stale_hold_and_are_counted():
    env = _envelope()
    env.estopped = True
    target, report = env.clamp(READY, READY + 0.01, np.zeros(7))
    assert report.reason == "estop" and np.allclose(target, READY + 0.01)
    target, report = env.hold(READY, None, "stale")
    assert report.held and np.array_equal(target, READY)
    assert env.counts == Counter(estop=1, stale=1)


def test_bad_inputs_to_the_envelope_itself():
    with pytest.raises(ValueError, match="7 finite values"):
        _envelope().clamp([0.0] * 6, None, np.zeros(7))
    with pytest.raises(ValueError, match="twice joint_margin"):
        SafetyEnvelope(SafetyConfig(), np.zeros(7), np.full(7, 0.05))
    with pytest.raises(ValueError, match="use fr3 or panda"):
        joint_limits("ur5")


def test_limits_and_hand_offset_come_from_published_values():
    lower, upper = panda_limits()
    assert np.allclose(lower, [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
    assert np.allclose(upper, [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
    assert np.all(np.array(FR3_LIMITS[0]) < np.array(FR3_LIMITS[1]))
    assert SafetyConfig().hand_tcp_offset == 0.1034
    ready = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])  # Franka's "ready" pose
    assert _envelope("panda").in_workspace(ready) and _envelope("fr3").in_workspace(ready)


def test_watchdog_with_an_injected_clock():
    now = [0.0]
    dog = Watchdog(0.15, clock=lambda: now[0])
    assert dog.expired() and not dog.fresh()  # never fed: hold
    dog.feed()
    now[0] = 0.15
    assert dog.fresh()
    now[0] = 0.1501
    assert dog.expired()
    dog.feed(now=200.0)
    assert dog.fresh(now=200.1) and dog.expired(now=200.2)
    with pytest.raises(ValueError, match="must be > 0"):
        Watchdog(0.0)


def test_the_step_is_also_bounded_by_robot_time_so_bursts_do_not_speed_the_arm_up():
    """max_joint_speed x robot-clock seconds since the last target: ten actions in 20 ms of robot time
    (a host or simulator that fell behind, a runaway policy) move the target 0.01 rad, not 0.5 rad."""
    cfg = SafetyConfig(max_joint_step=0.05, max_joint_speed=0.5)
    env = SafetyEnvelope(cfg, *joint_limits("fr3"))
    q = np.array(READY)
    target, report = env.clamp(q, None, [1.0] * 7)  # the first action: no previous target, per-action bound
    np.testing.assert_allclose(target - q, 0.05)
    for _ in range(10):  # 2 ms of robot time apart
        target, report = env.clamp(q, target, [1.0] * 7, dt=0.002)
    np.testing.assert_allclose(target - q, 0.05 + 10 * 0.001, atol=1e-12)
    assert env.counts["speed_limited"] == 10
    after_a_pause, _ = env.clamp(target, target, [1.0] * 7, dt=5.0)  # long after (the arm caught up): per action again
    np.testing.assert_allclose(after_a_pause - target, [0.05] * 7, atol=1e-12)
