"""Policy node: hand-camera frames + joint state + gripper width -> policy actions at `rate_hz` (10 Hz).

Parameters = real.config's `policy` section. The node loads any trained policy, from real BC or
from a sim run, through its observation adapter (`real.adapter.load_robot_policy`; a missing or
unusable checkpoint or encoder is one line, exit 2),
keeps the newest `sensor_msgs/Image` (rgb8 or bgr8), `sensor_msgs/JointState` and gripper width
(`std_msgs/Float64`) with their arrival times, and on each timer tick acts only when the newest
image and joint state are both younger than `max_observation_age_s` and newer than the ones the
previous action used (so it never acts twice on the same frame; a stopped camera stops the
actions). Ages are measured on arrival with this process's monotonic clock (no cross-machine
clock sync needed). An action is a `std_msgs/Float64MultiArray` of 7 joint deltas + a gripper
command in [0, 1]; the franka node's safety envelope bounds what is executed. Ticks that do not
act are counted by reason in `skipped`. `~/enable` (std_srvs/SetBool) pauses and resumes acting
(`start_enabled: false` starts paused, as `python -m real.evaluate` wants between trials): while
disabled nothing is published, and enabling marks the observations already received as used, so
the first action after an enable is on a frame and joint state that arrived after it (never on the
scene as it was before the operator reset it). Inference runs inline in the timer callback: at
10 Hz on a SingleThreadedExecutor this is fine while the encoder takes well under one period.
"""
from __future__ import annotations

import collections
import time

import numpy as np

from real.config import PolicyNodeConfig
from real.nodes import ConfigError, declare_section, run_node

SKIP_REASONS = ("disabled", "no_image", "no_joint_state", "no_gripper", "stale_image", "stale_joint_state",
                "stale_gripper", "same_image", "same_joint_state", "bad_input")
HISTORY = 64  # recent actions kept with the stamps of their inputs (tests, debugging)


class CheckpointMissing(ConfigError):
    pass


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> (H, W, 3) uint8 RGB; ValueError for other encodings/sizes."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding {msg.encoding!r} is not rgb8 or bgr8")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    try:
        data = np.frombuffer(msg.data, np.uint8)  # array.array('B') as rclpy delivers it
    except TypeError:  # a list of ints
        data = np.asarray(msg.data, np.uint8)
    if step < 3 * w or data.size < h * step:
        raise ValueError(f"image of {data.size} bytes does not hold {h}x{w} pixels at step {step}")
    frame = data[:h * step].reshape(h, step)[:, :3 * w].reshape(h, w, 3)
    return np.ascontiguousarray(frame[..., ::-1] if msg.encoding == "bgr8" else frame)


class LatestMessage:
    """The newest message of one stream, when it was made (monotonic clock) and a sequence number.

    A stamped message (a header with a non-zero stamp, as the camera and franka nodes send) counts
    from its stamp, not from when its callback ran: on a busy host a frame can wait in the queue, and
    its age must include that wait. Unstamped messages count from arrival.
    """

    __slots__ = ("msg", "time", "seq")

    def __init__(self):
        self.msg, self.time, self.seq = None, 0.0, 0

    def put(self, msg) -> None:
        arrived = time.monotonic()
        stamp = getattr(getattr(msg, "header", None), "stamp", None)
        if stamp is not None and (stamp.sec or stamp.nanosec):  # ROS stamps are system (wall) time
            arrived -= max(0.0, time.time() - (stamp.sec + 1e-9 * stamp.nanosec))
        self.msg, self.time, self.seq = msg, arrived, self.seq + 1

    def age(self, now: float) -> float:
        return now - self.time


def load_policy(cfg: PolicyNodeConfig):
    from real.adapter import TRAIN_HINT, load_robot_policy  # (lazy: PIL)

    if not cfg.checkpoint:
        raise CheckpointMissing(f"policy.checkpoint is not set: pass checkpoint:=<dir> ({TRAIN_HINT})")
    try:
        return load_robot_policy(cfg.checkpoint, encoder_path=cfg.encoder or None, dtype=cfg.dtype, device=cfg.device)
    except ValueError as e:  # CheckpointError and friends: already one readable line
        raise CheckpointMissing(" ".join(str(e).split())) from None
    except OSError as e:
        raise CheckpointMissing(f"cannot read the policy at {cfg.checkpoint}: {e.strerror or e}") from None


try:
    from rclpy.node import Node as _NodeBase
except ImportError:  # the helpers above work without ROS; PolicyNode needs rclpy
    _NodeBase = object


class PolicyNode(_NodeBase):
    """See the module docstring. `config` gives the parameter defaults (ROS overrides win);
    `policy` (anything with `.act(frame, q, width)` and `.uses_gripper`) skips loading the checkpoint."""

    def __init__(self, config: PolicyNodeConfig | None = None, policy=None, name: str = "policy", **node_kwargs):
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64, Float64MultiArray
        from std_srvs.srv import SetBool

        super().__init__(name, **node_kwargs)
        self.config = cfg = declare_section(self, "policy", config or PolicyNodeConfig())
        self.policy = policy if policy is not None else load_policy(cfg)
        self.uses_gripper = bool(getattr(self.policy, "uses_gripper", True))
        encoder = getattr(self.policy, "encoder", None)
        if encoder is not None:  # which device and precision, and why (toto_robot/compute.py)
            self.get_logger().info(encoder.compute.line("policy encoder"))
        trained_hz = (getattr(self.policy, "layout", None) or {}).get("control_hz")
        if trained_hz and abs(trained_hz - cfg.rate_hz) > 0.1 * cfg.rate_hz:  # deltas are per demo step
            self.get_logger().warning(
                f"the policy was trained on {trained_hz:g} Hz steps but acts at {cfg.rate_hz:g} Hz: its joint deltas "
                f"are {trained_hz / cfg.rate_hz:.2g}x off in speed (set rate_hz, or re-import with --stride)")
        self._Float64MultiArray = Float64MultiArray
        self.image, self.joints, self.gripper = LatestMessage(), LatestMessage(), LatestMessage()
        self._used = (0, 0)  # (image seq, joint-state seq) of the previous action
        self.skipped: collections.Counter[str] = collections.Counter()
        self.actions = 0
        self.history: collections.deque = collections.deque(maxlen=HISTORY)  # (image stamp ns, joint stamp ns, action)
        # depth 1: only the newest observation matters
        self.create_subscription(Image, cfg.image_topic, self.image.put, 1)
        self.create_subscription(JointState, cfg.joint_state_topic, self.joints.put, 1)
        self.create_subscription(Float64, cfg.gripper_topic, self.gripper.put, 1)
        self.pub = self.create_publisher(Float64MultiArray, cfg.action_topic, 10)
        self.enabled = cfg.start_enabled
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
        self.get_logger().info(f"policy {cfg.checkpoint or type(self.policy).__name__} -> {cfg.action_topic} at "
                               f"{cfg.rate_hz:g} Hz on observations younger than {cfg.max_observation_age_s:g} s"
                               + ("" if self.enabled else "; disabled until ~/enable"))

    def _on_enable(self, request, response):
        """Callbacks run one at a time on the node's executor, so every observation counted here
        arrived before the request was handled: marking them used makes the next action wait for
        newer ones. Enabling twice also re-arms this (harmless: at most one frame later)."""
        self.enabled = bool(request.data)
        if self.enabled:
            self._used = (self.image.seq, self.joints.seq)
        response.success, response.message = True, "enabled" if self.enabled else "disabled"
        self.get_logger().info(f"policy {response.message}")
        return response

    def _skip_reason(self, now: float) -> str | None:
        max_age = self.config.max_observation_age_s
        if not self.enabled:
            return "disabled"
        if self.image.msg is None:
            return "no_image"
        if self.joints.msg is None:
            return "no_joint_state"
        if self.uses_gripper and self.gripper.msg is None:
            return "no_gripper"
        if self.image.age(now) > max_age:
            return "stale_image"
        if self.joints.age(now) > max_age:
            return "stale_joint_state"
        if self.uses_gripper and self.gripper.age(now) > max_age:
            return "stale_gripper"
        if self.image.seq <= self._used[0]:
            return "same_image"
        if self.joints.seq <= self._used[1]:
            return "same_joint_state"
        return None

    def _on_tick(self) -> None:
        reason = self._skip_reason(time.monotonic())
        if reason is not None:
            self.skipped[reason] += 1
            return
        image, joints = self.image.msg, self.joints.msg
        self._used = (self.image.seq, self.joints.seq)  # consumed even if unusable: never retried
        width = float(self.gripper.msg.data) if self.gripper.msg is not None else None
        try:
            velocity = np.asarray(joints.velocity, np.float64) if len(joints.velocity) else None
            action = np.asarray(self.policy.act(image_to_rgb(image), np.asarray(joints.position, np.float64), width, velocity),
                                dtype=np.float64).reshape(-1)
            if action.shape != (8,) or not np.isfinite(action).all():
                raise ValueError(f"the policy returned {action.tolist()}, not 8 finite values")
        except ValueError as e:
            self.skipped["bad_input"] += 1
            self.get_logger().warning(f"no action: {' '.join(str(e).split())}", throttle_duration_sec=1.0)
            return
        self.pub.publish(self._Float64MultiArray(data=action.tolist()))
        self.actions += 1
        stamp = lambda m: m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec  # noqa: E731
        self.history.append((stamp(image), stamp(joints), action))


def main(args=None) -> int:
    return run_node("policy_node", PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
