"""The whole cube-pick stack on loopback, as on the robot: a camera process replaying a 640x480 clip
-> policy node (a tiny behaviour-cloned policy) -> franka node -> franky-sim, the policy and franka
nodes started by the ROS-free bring-up; a test node in this process watches the topics.

- the loop runs at >= 9 Hz for 30 s and the arm follows the actions; every target the franka node
  commanded (its franka/status topic) is inside the envelope, and where franky-sim kept real time
  the measured arm is inside FR3's limits and the box too;
- the camera process dies -> no action later than 200 ms after its last frame: the arm holds.

Needs rclpy, franky-control, franky-sim and OpenCV (docs/design.md section 10): skipped otherwise.
"""
from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from tests.real.ros import ros_context, ros_domain  # noqa: E402

pytestmark = pytest.mark.ros
import yaml  # noqa: E402

pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from real.config import load_config  # noqa: E402
from real.safety import SafetyEnvelope, joint_limits  # noqa: E402
from tests.real.processes import SIM_KEPT_UP, REPO, Proc, bringup, franky_sim_exe, ros_env, sim_speed, start_sim  # noqa: E402
from tests.real.tiny_policy import tiny_bc_checkpoint  # noqa: E402

LOOP_HOST = "127.0.0.85"
DOMAIN = ros_domain("full_loop")
ENV = {**ros_env(DOMAIN), "OMP_NUM_THREADS": "1"}
LOOP_S = 30.0


class Watcher:
    """Arrival times of frames and actions, and the joint states, seen from outside the stack."""

    def __init__(self, config: dict):
        self.ctx = ros_context(DOMAIN)
        self.node = Node("loop_watcher", context=self.ctx)
        self.frames: list[float] = []
        self.actions: list[tuple[float, np.ndarray]] = []
        self.states: list[tuple[float, np.ndarray]] = []
        self.status: list[tuple[float, np.ndarray]] = []  # franka/status: robot time, success rate, target
        now = time.monotonic
        self.node.create_subscription(Image, config["camera"]["topic"], lambda m: self.frames.append(now()),
                                      qos_profile_sensor_data)
        self.node.create_subscription(Float64MultiArray, config["policy"]["action_topic"],
                                      lambda m: self.actions.append((now(), np.array(m.data))), 50)
        self.node.create_subscription(JointState, config["franka"]["joint_state_topic"],
                                      lambda m: self.states.append((now(), np.array(m.position))), 100)
        self.node.create_subscription(Float64MultiArray, config["franka"]["status_topic"],
                                      lambda m: self.status.append((now(), np.array(m.data))), 100)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def _clip(path, frames: int = 60):
    """A 640x480 MJPG clip of moving noise blocks (the camera node loops it at 30 fps)."""
    import cv2

    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(frames):
        writer.write(np.kron(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), np.ones((32, 32, 1), np.uint8)))
    writer.release()
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    franky_sim_exe()  # skips unless the real-stack dependencies are installed
    tmp = tmp_path_factory.mktemp("full_loop")
    checkpoint = tiny_bc_checkpoint(tmp)
    data = yaml.safe_load((REPO / "real" / "params" / "cube_pick.yaml").read_text())
    data["franka"]["ros__parameters"].update(realtime=False, guiding=False)  # franky-sim: no RT kernel, no guiding
    data["camera"]["ros__parameters"]["device"] = str(_clip(tmp / "clip.avi"))
    config = tmp / "cube_pick.yaml"
    config.write_text(yaml.safe_dump(data))
    params = {node: body["ros__parameters"] for node, body in data.items()}

    sim = start_sim(LOOP_HOST)
    watcher = Watcher(params)
    camera = Proc([sys.executable, "-m", "real.nodes.camera", "--ros-args", "-r", "__node:=camera",
                   "--params-file", str(config)], env=ENV)
    nodes = Proc(bringup("--config", str(config), "--robot-ip", LOOP_HOST, "--checkpoint", str(checkpoint),
                         "--nodes", "franka,policy"), env=ENV)
    try:
        deadline = time.monotonic() + 90.0
        while not watcher.actions:
            assert time.monotonic() < deadline, f"no action within 90 s:\n{nodes.text}\n{camera.text}"
            assert nodes.proc.poll() is None and camera.proc.poll() is None, f"{nodes.text}\n{camera.text}"
            time.sleep(0.1)
        time.sleep(1.0)  # past start-up transients (first inferences, discovery)
        yield SimpleNamespace(watcher=watcher, camera=camera, nodes=nodes, params=params, config=load_config(config))
    finally:
        camera.stop()
        nodes.stop()
        watcher.close()
        sim.stop()


def _rate(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start)


@pytest.mark.wallclock
def test_camera_to_policy_to_franka_to_sim_runs_at_9_hz_for_30_s(stack):
    w = stack.watcher
    start = time.monotonic()
    time.sleep(LOOP_S)
    end = time.monotonic()
    action_times = [t for t, _ in w.actions]
    state_times = [t for t, _ in w.states]
    action_hz, frame_hz, state_hz = (_rate(action_times, start, end), _rate(w.frames, start, end),
                                     _rate(state_times, start, end))
    gaps = np.diff([t for t in action_times if start <= t < end])
    print(f"\nloop over {LOOP_S:g} s: actions {action_hz:.2f} Hz (largest gap {gaps.max() * 1e3:.0f} ms), "
          f"frames seen by the watcher {frame_hz:.1f} Hz, joint states {state_hz:.1f} Hz")
    assert action_hz >= 9.0, (action_hz, stack.nodes.text[-3000:])
    assert state_hz >= 45.0
    assert stack.nodes.proc.poll() is None and stack.camera.proc.poll() is None, stack.nodes.text[-3000:]
    # the arm followed: it moved
    q = np.array([q for t, q in w.states if start <= t < end])
    assert np.abs(q[-1] - q[0]).max() > 0.05, (q[0], q[-1])
    # the envelope's guarantee, on any host: every target the franka node commanded is inside the
    # margin-shrunk limits and box_margin clear of the box (franka/status carries each one)
    franka = stack.config.franka
    env = SafetyEnvelope(franka.safety, *joint_limits(franka.robot_model))
    status = np.array([s for t, s in w.status if start <= t < end])
    wall = np.array([t for t, _ in w.status if start <= t < end])
    commanded = status[:, 2:][np.isfinite(status[:, 2:]).all(1)]
    targets = np.unique(commanded, axis=0)  # the policy pushes on the box: many actions give the same target
    target_joint, target_box = _worst(env, targets, env.lower, env.upper)
    # the arm's own: measured joints inside FR3's published limits, the hand inside the box. Checked
    # when the host kept franky's 1 kHz loop; where it did not, franky-sim takes late commands as
    # jumps of the target (a real Franka stops with communication_constraints_violation instead)
    realtime, kept_up = sim_speed(status[:, 0], wall)
    lower, upper = joint_limits(franka.robot_model)
    worst_joint, worst_box = _worst(env, q, lower, upper)
    print(f"{len(targets)} distinct targets commanded: closest approach past the shrunk limits {target_joint:+.4f} rad, "
          f"past the box {1e3 * target_box:+.1f} mm; measured arm past FR3's limits {worst_joint:+.4f} rad, past the "
          f"box {1e3 * worst_box:+.1f} mm; sim {realtime:.2f}x real time"
          + ("" if kept_up else f" (< {SIM_KEPT_UP}x: the host starved the 1 kHz loop, so the measured arm is reported, not checked)"))
    assert len(commanded) > 40 * LOOP_S, len(commanded)
    assert target_joint <= 1e-9 and target_box <= -franka.safety.box_margin + 1e-9, (target_joint, target_box)
    if kept_up:
        assert worst_joint <= 0 and worst_box <= 0, (worst_joint, worst_box)


def _worst(env: SafetyEnvelope, qs, lower, upper) -> tuple[float, float]:
    """How far (rad, m) joint positions go past the given limits and the hand past the box (negative: inside)."""
    qs = np.asarray(qs)
    points = np.array([env.hand_points(q) for q in qs])
    return (max(np.max(lower - qs), np.max(qs - upper)),
            max(np.max(env.box_min - points), np.max(points - env.box_max)))


@pytest.mark.wallclock
def test_camera_stops_the_arm_holds_within_200_ms(stack):
    """Holding means: the last action comes within 200 ms of the camera's death, no action (so no new
    target) follows, and the arm settles at the last target and stays there. How long settling takes
    in wall time depends on how fast the simulator runs on this host, so the test waits for it (up to
    10 s) and then checks it stays put for a second. "No action since" counts from the moment the arm
    settled: an action computed from a pre-death frame can still be in flight to the watcher 0.5 s after
    the kill on a busy host (seen once in CI), and that is not a new target."""
    w, nodes = stack.watcher, stack.nodes
    assert w.actions[-1][0] > time.monotonic() - 0.5, "the loop was not running"
    killed = time.monotonic()
    stack.camera.proc.kill()
    stack.camera.proc.wait()
    time.sleep(0.5)
    last_frame, last_action, actions = w.frames[-1], w.actions[-1][0], len(w.actions)
    print(f"\nlast action {1e3 * (last_action - killed):.0f} ms after the camera was killed "
          f"({1e3 * (last_action - last_frame):.0f} ms after the last frame the watcher saw)")
    assert last_action - killed <= 0.2, (last_action - killed)

    def still_since(t0: float) -> float:  # largest joint change over the states after t0
        q = np.array([q for t, q in w.states if t > t0])
        return np.abs(q - q[-1]).max() if len(q) > 10 else np.inf  # 50 Hz states: ~25 in 0.5 s

    deadline, settled = time.monotonic() + 10.0, None
    while settled is None and time.monotonic() < deadline:
        time.sleep(0.25)
        if still_since(time.monotonic() - 0.5) < 2e-3:
            settled, at_settle = time.monotonic() - 0.5, len(w.actions)
    assert settled is not None, f"the arm did not settle within 10 s (moving {still_since(time.monotonic() - 0.5):.4f} rad)"
    time.sleep(1.0)
    print(f"settled {settled - killed:.2f} s after the camera was killed; "
          f"{at_settle - actions} action(s) still in flight at +0.5 s")
    # and stayed: no new target. The settle test above is 2 mrad over 0.5 s of wall time; a simulator slowed
    # by a loaded host is still converging then (2.1-5.7 mrad more over the next second, no action sent, in
    # full runs beside a pre-training job), so as for the measured arm above the drift is checked only where
    # franky-sim kept real time, and reported otherwise; no new target is the count below, checked always
    status = np.array([m for t, m in w.status if t >= killed])
    wall = np.array([t for t, _ in w.status if t >= killed])
    realtime, kept_up = sim_speed(status[:, 0], wall) if len(status) > 1 else (float("nan"), False)
    drift = still_since(settled)
    print(f"drift after settling {1e3 * drift:.2f} mrad; sim {realtime:.2f}x real time")
    if kept_up:
        assert drift < 5e-3, drift
    assert len(w.actions) == at_settle  # no action since it settled
    assert nodes.proc.poll() is None, nodes.text[-3000:]
    assert "no fresh action for 0.15 s: holding position" in nodes.text
