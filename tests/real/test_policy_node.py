"""Policy node with a tiny BC checkpoint (32 px random encoder): acts at ~10 Hz on fresh frames and
joint states, exactly as load_robot_policy(...).act on the same inputs; stops acting when the frames
stop; a missing checkpoint is one line, exit 2 (through `python -m real.nodes.policy`). Needs rclpy: tests/real/conftest.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.real.ros import ros_context, ros_domain  # noqa: E402

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray  # noqa: E402

from real.adapter import load_robot_policy  # noqa: E402
from real.config import PolicyNodeConfig  # noqa: E402
from real.nodes.policy import LatestMessage, PolicyNode, image_to_rgb  # noqa: E402
from tests.real.tiny_policy import tiny_bc_checkpoint, tiny_sim_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOMAIN = ros_domain("policy_node")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_bc_checkpoint(tmp_path_factory.mktemp("policy_node"))


def _image(frame: np.ndarray, stamp) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.height, msg.width = frame.shape[:2]
    msg.encoding, msg.step = "rgb8", frame.shape[1] * 3
    msg.data = frame.tobytes()
    return msg


def spin(ctx, *nodes):
    """Spin `nodes` on one executor in a thread; returns the function that stops it."""
    ex = SingleThreadedExecutor(context=ctx)
    for node in nodes:
        ex.add_node(node)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()

    def stop() -> None:
        ex.shutdown(timeout_sec=2.0)
        thread.join(5.0)

    return stop


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_image_to_rgb_handles_bgr_and_padded_rows():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = Image(height=2, width=3, encoding="bgr8", step=10)
    msg.data = b"".join(np.ascontiguousarray(frame[..., ::-1])[r].tobytes() + b"\0" for r in range(2))
    np.testing.assert_array_equal(image_to_rgb(msg), frame)
    with pytest.raises(ValueError, match="mono8"):
        image_to_rgb(Image(height=2, width=3, encoding="mono8", step=3, data=bytes(6)))


def test_a_stamped_frame_is_as_old_as_its_stamp_not_its_arrival():
    """On a busy host a frame can wait in the queue: its age counts from the camera's stamp."""
    from builtin_interfaces.msg import Time

    latest, now = LatestMessage(), time.time()
    old, fresh, unstamped = Image(), Image(), Float64(data=0.04)
    old.header.stamp = Time(sec=int(now - 0.5), nanosec=int((now - 0.5) % 1 * 1e9))
    fresh.header.stamp = Time(sec=int(now), nanosec=int(now % 1 * 1e9))
    latest.put(old)
    assert latest.age(time.monotonic()) == pytest.approx(0.5, abs=0.05)
    latest.put(fresh)
    assert latest.age(time.monotonic()) < 0.05
    latest.put(unstamped)  # no header: from arrival
    assert latest.age(time.monotonic()) < 0.05 and latest.seq == 3


@pytest.mark.wallclock
def test_acts_at_10hz_on_fresh_observations_only_and_matches_act(checkpoint):
    ctx = ros_context(DOMAIN)
    node = PolicyNode(replace(PolicyNodeConfig(), checkpoint=str(checkpoint)), context=ctx)
    peer = Node("policy_test", context=ctx)
    cfg = node.config
    got: list[tuple[float, np.ndarray]] = []
    peer.create_subscription(Float64MultiArray, cfg.action_topic,
                             lambda m: got.append((time.monotonic(), np.array(m.data))), 50)
    images = peer.create_publisher(Image, cfg.image_topic, 10)
    joints = peer.create_publisher(JointState, cfg.joint_state_topic, 10)
    gripper = peer.create_publisher(Float64, cfg.gripper_topic, 10)
    stop_spinning = spin(ctx, node, peer)
    rng = np.random.default_rng(0)
    sent: dict[int, np.ndarray] = {}  # stamp ns -> frame / joints
    sent_q: dict[int, np.ndarray] = {}
    width = 0.03

    def publish(with_frame: bool):
        stamp = peer.get_clock().now().to_msg()
        q = rng.normal(size=7)
        sent_q[_ns(stamp)] = q
        joints_msg = JointState(position=q.tolist())
        joints_msg.header.stamp = stamp
        joints.publish(joints_msg)
        gripper.publish(Float64(data=width))
        if with_frame:
            frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            sent[_ns(stamp)] = frame
            images.publish(_image(frame, stamp))

    try:
        deadline = time.monotonic() + 5.0
        while min(images.get_subscription_count(), joints.get_subscription_count(),
                  node.pub.get_subscription_count()) < 1:
            assert time.monotonic() < deadline, "policy node not discovered"
            time.sleep(0.02)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:  # frames + joint states at ~15 Hz
            publish(True)
            time.sleep(1 / 15)
        t_stop = time.monotonic()
        while time.monotonic() - t_stop < 1.3:  # the camera stops; joint states go on
            publish(False)
            time.sleep(1 / 15)
    finally:
        stop_spinning()
        history, skipped = list(node.history), dict(node.skipped)
        node.destroy_node()
        peer.destroy_node()
        rclpy.try_shutdown(context=ctx)

    during = [t for t, _ in got if t0 <= t < t_stop]
    rate = len(during) / (t_stop - t0)
    assert 8.0 <= rate <= 11.0, (rate, skipped)
    assert all(a.shape == (8,) and np.isfinite(a).all() and 0 <= a[7] <= 1 for _, a in got)
    assert not [t for t, _ in got if t > t_stop + 0.3], ([t - t_stop for t, _ in got], skipped)
    assert skipped.get("stale_image", 0) + skipped.get("same_image", 0) >= 5, skipped
    # never twice on the same frame
    assert len({h[0] for h in history}) == len(history)
    # the published actions are load_robot_policy(...).act on the inputs the node used
    policy = load_robot_policy(checkpoint)
    received = [a for _, a in got]
    checked = 0
    for image_ns, joint_ns, action in history[-5:]:
        expected = policy.act(sent[image_ns], sent_q[joint_ns], width)
        np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
        assert any(np.array_equal(action, r) for r in received)
        checked += 1
    assert checked >= 1


def test_runs_a_sim_trained_policy_with_no_code_of_its_own(tmp_path):
    """checkpoint:= a sim/train_policy.py run: the node loads it through real/adapter.py and publishes
    exactly load_robot_policy(run).act on the frame, joints, velocities and width it was sent."""
    run = tiny_sim_checkpoint(tmp_path)
    ctx = ros_context(DOMAIN)
    node = PolicyNode(replace(PolicyNodeConfig(), checkpoint=str(run), max_observation_age_s=1.0), context=ctx)
    peer = Node("policy_sim_test", context=ctx)
    cfg = node.config
    got: list[np.ndarray] = []
    peer.create_subscription(Float64MultiArray, cfg.action_topic, lambda m: got.append(np.array(m.data)), 10)
    images = peer.create_publisher(Image, cfg.image_topic, 10)
    joints = peer.create_publisher(JointState, cfg.joint_state_topic, 10)
    gripper = peer.create_publisher(Float64, cfg.gripper_topic, 10)
    stop_spinning = spin(ctx, node, peer)
    rng = np.random.default_rng(4)
    frame, q, dq, width = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.uniform(-1, 1, 7), rng.normal(size=7), 0.06
    try:
        deadline = time.monotonic() + 20.0
        while not got:
            assert time.monotonic() < deadline, dict(node.skipped)
            stamp = peer.get_clock().now().to_msg()
            msg = JointState(position=q.tolist(), velocity=dq.tolist())
            msg.header.stamp = stamp
            joints.publish(msg)
            gripper.publish(Float64(data=width))
            images.publish(_image(frame, stamp))
            time.sleep(0.1)
    finally:
        stop_spinning()
        node.destroy_node()
        peer.destroy_node()
        rclpy.try_shutdown(context=ctx)
    np.testing.assert_allclose(got[0], load_robot_policy(run).act(frame, q, width, dq), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["missing", "unset", "no_encoder"])
def test_missing_checkpoint_or_encoder_is_one_line_exit_2(tmp_path, case, request):
    checkpoint = {"missing": tmp_path / "nothing", "unset": ""}.get(case) if case != "no_encoder" else (
        request.getfixturevalue("checkpoint"))
    lines = [f"checkpoint: '{checkpoint}'"] + ([f"encoder: '{tmp_path / 'no_encoder'}'"] if case == "no_encoder" else [])
    params = tmp_path / "params.yaml"
    params.write_text("policy:\n  ros__parameters:\n" + "".join(f"    {line}\n" for line in lines))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # ROS_DOMAIN_ID: tests/real/conftest.py
    done = subprocess.run([sys.executable, "-m", "real.nodes.policy", "--ros-args", "--params-file", str(params)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("policy_node: error: "), err
    expected = {"missing": "no policy at", "unset": "policy.checkpoint is not set",
                "no_encoder": "no encoder checkpoint at"}[case]
    assert expected in err[0], err


class _ZeroPolicy:
    uses_gripper = True

    def act(self, frame, q, width, dq=None):
        return np.zeros(8)


def test_enable_service_pauses_and_acts_only_on_observations_after_the_enable():
    """start_enabled false publishes nothing; an enable does not act on the frame that was already
    there (still young enough to be used), only on the next one; a disable stops the actions."""
    from std_srvs.srv import SetBool

    ctx = ros_context(DOMAIN)
    cfg = replace(PolicyNodeConfig(), start_enabled=False, max_observation_age_s=1.0)
    node = PolicyNode(cfg, policy=_ZeroPolicy(), context=ctx)
    peer = Node("policy_enable_test", context=ctx)
    got: list[float] = []
    peer.create_subscription(Float64MultiArray, cfg.action_topic, lambda m: got.append(time.monotonic()), 50)
    images = peer.create_publisher(Image, cfg.image_topic, 10)
    joints = peer.create_publisher(JointState, cfg.joint_state_topic, 10)
    gripper = peer.create_publisher(Float64, cfg.gripper_topic, 10)
    client = peer.create_client(SetBool, "policy/enable")
    stop_spinning = spin(ctx, node, peer)
    frame = np.zeros((8, 8, 3), np.uint8)

    def observe() -> int:
        stamp = peer.get_clock().now().to_msg()
        msg = JointState(position=[0.0] * 7)
        msg.header.stamp = stamp
        joints.publish(msg)
        gripper.publish(Float64(data=0.03))
        images.publish(_image(frame, stamp))
        return _ns(stamp)

    def enable(on: bool):
        fut = client.call_async(SetBool.Request(data=on))
        deadline = time.monotonic() + 3.0
        while not fut.done():
            assert time.monotonic() < deadline, "no answer from ~/enable"
            time.sleep(0.01)
        return fut.result()

    try:
        assert client.wait_for_service(timeout_sec=5.0)
        deadline = time.monotonic() + 5.0
        while min(images.get_subscription_count(), node.pub.get_subscription_count()) < 1:
            assert time.monotonic() < deadline, "policy node not discovered"
            time.sleep(0.02)
        for _ in range(5):  # disabled: fresh observations, no actions
            observe()
            time.sleep(0.1)
        assert not got and node.skipped["disabled"] >= 3, dict(node.skipped)
        assert enable(True).success
        time.sleep(0.35)  # the frame from before the enable is still fresh, but not acted on
        assert not got, dict(node.skipped)
        after = observe()
        time.sleep(0.3)
        assert len(got) == 1 and node.history[-1][0] == after, (got, dict(node.skipped))
        assert enable(False).message == "disabled"
        for _ in range(3):
            observe()
            time.sleep(0.1)
        assert len(got) == 1 and node.actions == 1
    finally:
        stop_spinning()
        node.destroy_node()
        peer.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_warns_when_the_demos_ran_at_another_rate(capfd):
    class ThirtyHz(_ZeroPolicy):
        layout = {"control_hz": 30.0}

    ctx = ros_context(DOMAIN)
    try:
        for policy, warned in ((ThirtyHz(), True), (_ZeroPolicy(), False)):
            node = PolicyNode(PolicyNodeConfig(), policy=policy, context=ctx)
            node.destroy_node()
            err = capfd.readouterr().err
            assert ("trained on 30 Hz steps but acts at 10 Hz" in err) == warned, err
    finally:
        rclpy.try_shutdown(context=ctx)
