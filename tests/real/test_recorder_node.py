"""Recorder node against a fake camera + franka (640x480 frames, joint states and widths at ~30 Hz)
and a fake `~/guiding` service: an episode of ~1 s is ~10 samples of preprocessed frames, joints and
widths with joint-delta actions and the success flag; guiding is asked on start and released on stop;
discard and too-short episodes write nothing; numbering continues after existing files; a SIGKILLed
recorder (`python -m real.nodes.recorder`) keeps the saved episode intact; an unwritable out_dir is
one line, exit 2. Needs rclpy: tests/real/conftest.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
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
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from real.config import RecorderConfig  # noqa: E402
from real.demo_layout import GRIPPER_CLOSED_BELOW_M, read_layout  # noqa: E402
from real.nodes.recorder import RecorderNode  # noqa: E402
from real.preprocess import preprocess_frame  # noqa: E402
from toto_robot.demos import read_demo_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOMAIN = ros_domain("recorder_node")
RES = 32
POOL = np.random.default_rng(0).integers(0, 256, (5, 480, 640, 3), dtype=np.uint8)  # the frames the camera cycles
PREPROCESSED = [preprocess_frame(f, RES) for f in POOL]
Q0, DQ = np.linspace(-1.0, 1.0, 7), 0.01  # sample k of the fake arm: Q0 + k * DQ on every joint


def width_at(k: int) -> float:
    return 0.08 if (k // 8) % 2 == 0 else 0.03  # open / holding a cube, switching every ~0.27 s


class FakeRobot(Node):
    """Camera + franka at ~30 Hz, and the franka node's guiding service (records what it is asked)."""

    def __init__(self, context):
        super().__init__("fake_robot", context=context)
        cfg = RecorderConfig()
        self.k = 0
        self.guiding_calls: list[bool] = []
        self.images = self.create_publisher(Image, cfg.image_topic, 10)
        self.joints = self.create_publisher(JointState, cfg.joint_state_topic, 10)
        self.gripper = self.create_publisher(Float64, cfg.gripper_topic, 10)
        self.create_service(SetBool, "/franka/guiding", self._on_guiding)
        self.create_timer(1 / 30, self._publish)

    def _on_guiding(self, request, response):
        self.guiding_calls.append(bool(request.data))
        response.success, response.message = True, "guiding" if request.data else "streaming"
        return response

    def _publish(self):
        k, self.k = self.k, self.k + 1
        frame = POOL[k % len(POOL)]
        image = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
        image.data = frame.tobytes()
        self.images.publish(image)
        self.joints.publish(JointState(position=(Q0 + k * DQ).tolist()))
        self.gripper.publish(Float64(data=width_at(k)))


@contextlib.contextmanager
def spinning(ctx: Context, *nodes):
    ex = SingleThreadedExecutor(context=ctx)
    for node in nodes:
        ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        yield
    finally:
        ex.shutdown(timeout_sec=2.0)
        th.join(5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def wait_for(condition, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def call(node: Node, srv_type, name: str, **fields):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=10.0), f"{name} not offered"
    future = client.call_async(srv_type.Request(**fields))
    wait_for(future.done, f"no reply from {name}", timeout=10.0)
    node.destroy_client(client)
    return future.result()


@pytest.fixture
def rig(tmp_path):
    """(recorder, fake robot, out_dir) spinning in one executor thread; out_dir holds episode 6 and a leftover."""
    ctx = ros_context(DOMAIN)
    out = tmp_path / "demos"
    out.mkdir()
    (out / "episode_0006.hdf5").write_bytes(b"an earlier episode")  # numbering only reads names
    (out / ".episode_0007.hdf5.0badf00d.tmp").write_bytes(b"a write a crash interrupted")
    recorder = RecorderNode(replace(RecorderConfig(), out_dir=str(out), resolution=RES), context=ctx)
    robot = FakeRobot(ctx)
    with spinning(ctx, recorder, robot):
        wait_for(lambda: recorder.image.msg is not None and recorder.gripper.msg is not None
                 and recorder.guiding.service_is_ready(), "recorder does not see the fake robot")
        yield recorder, robot, out


def test_records_an_episode_at_rate_with_layout_actions_and_guiding(rig):
    recorder, robot, out = rig
    start = call(robot, Trigger, "/recorder/start")
    assert start.success and start.message == "recording", start.message
    again = call(robot, Trigger, "/recorder/start")
    assert not again.success and "already open" in again.message
    time.sleep(1.0)
    stop = call(robot, SetBool, "/recorder/stop", data=True)
    assert stop.success and "episode_0007.hdf5" in stop.message, stop.message  # after 0006; the leftover is ignored
    wait_for(lambda: robot.guiding_calls == [True, False], f"guiding calls {robot.guiding_calls}")
    path = out / "episode_0007.hdf5"
    assert sorted(p.name for p in out.glob("episode_*.hdf5")) == ["episode_0006.hdf5", path.name]

    layout, lengths, success = read_layout(path)
    assert (layout.resolution, layout.source, layout.gripper_obs, layout.action_mode, layout.control_hz) == (
        RES, "recorder", "width_m", "joint_delta", 10.0)
    assert len(lengths) == 1 and 7 <= lengths[0] <= 11 and success == [True], (lengths, dict(recorder.skipped))
    _, [demo] = read_demo_file(path)
    pixels, proprio, actions = demo.obs["pixels"], demo.obs["proprio"], demo.actions
    assert pixels.shape == (lengths[0], RES, RES, 3) and proprio.shape == (lengths[0], 8) and actions.shape == (lengths[0], 8)
    for frame in pixels:  # each stored frame is one the camera sent, through real.preprocess
        assert any(np.array_equal(frame, p) for p in PREPROCESSED)
    k = np.round((proprio[:, 0] - Q0[0]) / DQ).astype(int)  # which fake sample each row holds
    np.testing.assert_allclose(proprio[:, :7], (Q0 + k[:, None] * DQ).astype(np.float32), atol=1e-6)
    assert np.all(np.diff(k) >= 1) and np.all(np.diff(k) <= 6), k  # ~3 fake samples per 10 Hz tick
    assert np.isin(proprio[:, 7], np.float32([0.08, 0.03])).all()
    np.testing.assert_array_equal(actions[:-1, :7], np.diff(proprio[:, :7], axis=0))  # q[t+1] - q[t]
    np.testing.assert_array_equal(actions[:-1, 7], (proprio[1:, 7] < GRIPPER_CLOSED_BELOW_M).astype(np.float32))
    assert set(actions[:, 7]) == {0.0, 1.0}  # the fake hand opened and closed during the episode
    last_k = (proprio[-1, 0] + actions[-1, 0] - Q0[0]) / DQ  # the dropped last sample was a real one, too
    assert abs(last_k - round(last_k)) < 1e-3 and round(last_k) > k[-1]
    assert demo.dones[-1] and demo.rewards[-1] == 1.0 and demo.states.shape == (lengths[0], 0)


def test_discard_short_and_failed_episodes(rig):
    recorder, robot, out = rig
    assert not call(robot, Trigger, "/recorder/discard").success
    assert "no episode is open" in call(robot, SetBool, "/recorder/stop", data=True).message
    assert call(robot, Trigger, "/recorder/start").success
    time.sleep(0.4)
    discard = call(robot, Trigger, "/recorder/discard")
    assert discard.success and "discarded" in discard.message
    assert call(robot, Trigger, "/recorder/start").success
    short = call(robot, SetBool, "/recorder/stop", data=True)  # at most one tick: nothing to learn from
    assert not short.success and "not saved" in short.message, short.message
    assert sorted(p.name for p in out.glob("episode_*")) == ["episode_0006.hdf5"]
    assert call(robot, Trigger, "/recorder/start").success
    time.sleep(0.5)
    failed = call(robot, SetBool, "/recorder/stop", data=False)
    assert failed.success, failed.message
    assert read_layout(out / "episode_0007.hdf5")[2] == [False]
    wait_for(lambda: robot.guiding_calls == [True, False] * 3, f"guiding calls {robot.guiding_calls}")


def test_absent_guiding_service_is_reported(tmp_path):
    ctx = ros_context(DOMAIN)
    recorder = RecorderNode(replace(RecorderConfig(), out_dir=str(tmp_path), guiding_service="nobody/guiding"),
                            context=ctx)
    peer = Node("peer", context=ctx)
    with spinning(ctx, recorder, peer):
        start = call(peer, Trigger, "/recorder/start")
        assert start.success and "/nobody/guiding is not available" in start.message, start.message
        assert "not available" in call(peer, Trigger, "/recorder/discard").message


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_mid_episode_keeps_saved_episodes(tmp_path):
    out = tmp_path / "demos"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # ROS_DOMAIN_ID: tests/real/conftest.py
    proc = subprocess.Popen([sys.executable, "-m", "real.nodes.recorder", "--ros-args", "-p", f"out_dir:={out}",
                             "-p", f"resolution:={RES}", "-p", "guiding_service:=''"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = ros_context(DOMAIN)
    robot = FakeRobot(ctx)
    try:
        with spinning(ctx, robot):
            assert call(robot, Trigger, "/recorder/start").success
            time.sleep(0.6)
            assert call(robot, SetBool, "/recorder/stop", data=True).success
            saved = out / "episode_0000.hdf5"
            before = _digest(saved)
            assert call(robot, Trigger, "/recorder/start").success
            time.sleep(0.6)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate(timeout=10)[0]
    assert proc.returncode == -signal.SIGKILL, log
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["episode_0000.hdf5"]
    assert _digest(saved) == before
    layout, lengths, success = read_layout(saved)
    assert layout.resolution == RES and lengths[0] >= 3 and success == [True]


def test_unwritable_out_dir_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # ROS_DOMAIN_ID: tests/real/conftest.py
    done = subprocess.run([sys.executable, "-m", "real.nodes.recorder", "--ros-args", "-p",
                           f"out_dir:={tmp_path / 'file' / 'demos'}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recorder_node: error: recorder.out_dir: cannot write episodes"), err
