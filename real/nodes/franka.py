"""Franka node: franky owns the arm and the hand; every action goes through the safety envelope.

`FrankaBridge` is the franky side without ROS (so it is tested with a fake franky too): connect,
read joints and gripper, stream absolute joint targets as asynchronous
`JointMotion(target, Absolute, return_when_finished=False)` (franky keeps tracking the newest
target, so "hold" is simply "send no new target"), stop, gripper open/grasp, error recovery, and
franky's exceptions mapped to one-line `NodeError`s. franky facts it relies on: only float64
arrays are accepted; one client per robot (a second connection blocks forever, hence the connect
timeout); `poll_motion` is inverted, so `is_in_control` tells whether a motion runs.

`FrankaNode` (ROS): parameters = real.config's `franka` section; publishes JointState and the
gripper width at `state_rate_hz`, and on `status_topic` (Float64MultiArray, `STATUS_FIELDS`) the
robot time, libfranka's command success rate and the last commanded target (NaN before the first),
so the envelope's output and the host's control-loop health can be watched from outside; subscribes to
the action topic (Float64MultiArray: 7 joint deltas + optional gripper command in [0, 1], closed at >= 0.5); clamps every action with
`SafetyEnvelope` (deltas add to the last *commanded* target: the measured joints lag a streaming
motion); holds when no fresh action came within `watchdog_timeout_s`; services `~/estop` (stop,
refuse actions), `~/reset` (resume from the measured pose), `~/home` (move to `home_q`, answer
once there: trials start from the same pose) and `~/guiding` (SetBool: stop streaming and leave
the arm to the operator's hand, franky's guiding mode on real hardware, refusing actions until
released; the demo recorder calls it). Recoverable robot errors (reflexes)
are cleared with `recover_from_errors`; a lost connection ends the node with one line, exit 1.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

from real.config import FrankaConfig
from real.nodes import ConfigError, NodeError, declare_section, run_node
from real.safety import SafetyEnvelope, Watchdog, joint_limits

CONNECT_TIMEOUT_S = 10.0  # libfranka waits ~60 s on an address that never answers
STOP_JOIN_TIMEOUT_S = 1.0
GRIPPER_CLOSE_AT = 0.5
GRIPPER_CLOSE_WAIT_S = 5.0  # longest wait for a running gripper command at shutdown
_KEEP_ALIVE: list = []  # grippers still busy at close (never garbage-collected: see FrankaBridge.close)
MAX_RECOVERIES, RECOVERY_WINDOW_S = 3, 10.0  # more errors than this in the window: give up
STATUS_FIELDS = ("robot_time_s", "command_success_rate", *(f"target_q{i}" for i in range(1, 8)))
HOME_TIMEOUT_S, HOME_TOLERANCE = 60.0, 0.01  # rad, every joint (franky-sim tracks to ~5e-3)


class RobotUnreachable(NodeError):
    """Could not connect (wrong address, FCI off, another client connected, no realtime kernel)."""

    exit_code = 2


class RobotError(NodeError):
    """The robot failed in a way this node cannot fix (lost connection, recovery failed)."""


class RobotLost(RobotError):
    pass


class Recoverable(Exception):
    """A control/command error (reflex, aborted motion) that `recover_from_errors` may clear."""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text.removeprefix("libfranka: ")


class FrankaBridge:
    """franky's Robot + Gripper behind a small surface; `franky` is injectable for tests."""

    def __init__(self, franky=None, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        if franky is None:
            import franky
        self._fr = franky
        self.connect_timeout_s = connect_timeout_s
        self.robot = self.gripper = None
        self.ip = ""
        self.target: np.ndarray | None = None  # last commanded absolute joint target
        self.gripper_closed: bool | None = None  # last gripper command sent
        self._gripper_future = None
        self._gripper_wish: tuple[bool, float, float] | None = None  # (close, speed, force)

    # -- connection -------------------------------------------------------------------------
    def connect(self, ip: str, relative_dynamics_factor: float, realtime: bool = True, gripper: bool = True):
        fr, self.ip = self._fr, ip
        rt = fr.RealtimeConfig.Enforce if realtime else fr.RealtimeConfig.Ignore
        result: dict = {}

        def _connect():  # in a thread: libfranka blocks long on silent addresses and busy robots
            try:
                result["robot"] = fr.Robot(ip, relative_dynamics_factor=float(relative_dynamics_factor),
                                           realtime_config=rt)
                if gripper:
                    result["gripper"] = fr.Gripper(ip)
            except BaseException as e:  # noqa: BLE001 - reported below
                result["error"] = e

        worker = threading.Thread(target=_connect, name="franky-connect", daemon=True)
        worker.start()
        worker.join(self.connect_timeout_s)
        if worker.is_alive():
            raise RobotUnreachable(
                f"no answer from the robot at {ip} within {self.connect_timeout_s:g} s (wrong address, "
                "robot off, or another program is connected to it)")
        error = result.get("error")
        if error is not None:
            if isinstance(error, fr.RealtimeException):
                raise RobotUnreachable(f"cannot control the robot at {ip}: {_one_line(error)} (use a realtime "
                                       "kernel; set franka.realtime: false only for a simulator)")
            raise RobotUnreachable(f"cannot connect to the robot at {ip}: {_one_line(error)}")
        self.robot, self.gripper = result["robot"], result.get("gripper")
        self.target, self.gripper_closed = None, None

    def close(self) -> None:
        """Stop any motion (best effort) and drop the connection so the robot accepts a new client."""
        if self.robot is not None and self.target is not None:
            try:
                self.stop()
            except (NodeError, Recoverable):
                pass
        # Dropping a Gripper while its async command runs segfaults franky: wait, else keep it alive.
        if self._gripper_future is not None and not self._gripper_future.wait(GRIPPER_CLOSE_WAIT_S):
            _KEEP_ALIVE.append((self.gripper, self._gripper_future))
        self.robot = self.gripper = self._gripper_future = self._gripper_wish = None
        self.target = None

    # -- errors -----------------------------------------------------------------------------
    def _failure(self, e: BaseException, what: str) -> Exception:
        """franky exception -> Recoverable, RobotLost or RobotError (all one line)."""
        fr = self._fr
        msg = _one_line(e)
        if isinstance(e, (fr.ControlException, fr.CommandException)) and "Net" not in msg:
            return Recoverable(f"{what}: {msg}")
        if isinstance(e, (fr.NetworkException, fr.ProtocolException, fr.IncompatibleVersionException)) or (
                type(e) is RuntimeError):  # franky raises a plain RuntimeError("Net Exception") on reads
            return RobotLost(f"lost the connection to the robot at {self.ip} while {what}: {msg}")
        if isinstance(e, (fr.Exception, fr.GripperException)):
            return RobotError(f"robot at {self.ip} failed while {what}: {msg}")
        return e

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NodeError:
            raise
        except Exception as e:  # noqa: BLE001 - classified
            raise self._failure(e, what) from None

    # -- arm --------------------------------------------------------------------------------
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        js = self._call("reading the joint state", lambda: self.robot.current_joint_state)
        return (np.array(js.position, dtype=np.float64), np.array(js.velocity, dtype=np.float64))

    def robot_time(self) -> float:
        """The robot's clock (s): what the envelope's speed limit is measured in, whatever the host's speed."""
        return float(self._call("reading the robot time", lambda: self.robot.state.time.to_sec()))

    def command_success_rate(self) -> float:
        """libfranka's share of 1 kHz commands that reached the robot in time (1.0: the host keeps up)."""
        return float(self._call("reading the robot state", lambda: self.robot.state.control_command_success_rate))

    def is_moving(self) -> bool:
        return bool(self._call("reading the control state", lambda: self.robot.is_in_control))

    def command(self, target_q) -> None:
        """Stream an absolute joint target (the running motion switches to it)."""
        target = np.array(target_q, dtype=np.float64).reshape(7)  # franky rejects float32
        if not np.all(np.isfinite(target)):
            raise ValueError(f"joint target must be finite, got {target.tolist()}")
        fr = self._fr
        motion = fr.JointMotion(target, fr.ReferenceType.Absolute, return_when_finished=False)
        self._call("starting a joint motion", self.robot.move, motion, asynchronous=True)
        self.target = target

    def hold(self) -> None:
        """Keep the last commanded target: re-stream it if no motion is tracking it any more."""
        if self.target is not None and not self.is_moving():
            self.command(self.target)

    def stop(self) -> None:
        """Stop the motion (the arm brakes to rest); the next command starts from the measured pose."""
        self.target = None
        self._call("stopping", self.robot.stop)
        try:
            self.robot.join_motion(timeout=STOP_JOIN_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            failure = self._failure(e, "stopping")
            if not isinstance(failure, Recoverable):  # "Move command preempted" is the expected one
                raise failure from None

    def free_for_guiding(self) -> None:
        """franky's guiding mode with every Cartesian axis and the elbow free (real hardware only:
        franky-sim does not implement the command and hangs)."""
        self._call("setting guiding mode", self.robot.set_guiding_mode, [True] * 6, True)

    def check(self) -> str | None:
        """None while all is well; the reason when the robot reports errors or the motion died."""
        if self._call("reading the robot errors", lambda: self.robot.has_errors):
            errors = self._call("reading the robot errors", lambda: self.robot.state.current_errors)
            return f"robot errors: {_one_line(errors)}"
        if self.target is not None and not self.is_moving():
            try:
                self.robot.join_motion(timeout=0.0)
            except Exception as e:  # noqa: BLE001
                failure = self._failure(e, "streaming joint targets")
                if not isinstance(failure, Recoverable):
                    raise failure from None
                return str(failure)
            return "the joint motion ended unexpectedly"
        return None

    def recover(self) -> None:
        """Clear recoverable errors; afterwards nothing is commanded (hold at the measured pose)."""
        self.target = None
        ok = self._call("recovering from errors", self.robot.recover_from_errors)
        if not ok:
            raise RobotError(f"the robot at {self.ip} has errors that automatic recovery cannot clear")

    # -- gripper ----------------------------------------------------------------------------
    def gripper_width(self) -> float:
        if self.gripper is None:
            return float("nan")
        return float(self._call("reading the gripper", lambda: self.gripper.width))

    def gripper_command(self, value: float, speed: float, force: float) -> bool:
        """[0, 1] -> grasp (>= 0.5) or open, non-blocking. Sent when the wish changes and the hand
        is idle (a command issued while another runs blocks in franky); else on a later `gripper_update`."""
        if self.gripper is None:
            return False
        self._gripper_wish = (bool(value >= GRIPPER_CLOSE_AT), float(speed), float(force))
        return self.gripper_update()

    def gripper_busy(self) -> bool:
        return self._gripper_future is not None and not self._gripper_future.wait(0.0)

    def gripper_update(self) -> bool:
        """Send the pending gripper wish if the hand is idle; True when a command was sent."""
        wish = self._gripper_wish
        if self.gripper is None or wish is None or wish[0] == self.gripper_closed or self.gripper_busy():
            return False
        close, speed, force = wish
        if close:  # any object width counts as grasped (epsilon_outer = a full stroke)
            self._gripper_future = self._call("grasping", self.gripper.grasp_async, 0.0, speed, force, 0.005, 1.0)
        else:
            self._gripper_future = self._call("opening the gripper", self.gripper.open_async, speed)
        self.gripper_closed = close
        return True


def _ros():
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    return Node, JointState, Float64, Float64MultiArray, Trigger, SetBool


try:
    from rclpy.node import Node as _NodeBase
except ImportError:  # FrankaBridge works without ROS; FrankaNode needs rclpy
    _NodeBase = object


class FrankaNode(_NodeBase):
    """See the module docstring. `config` gives the parameter defaults (ROS overrides win);
    `bridge` is injectable (fake robots in tests)."""

    def __init__(self, config: FrankaConfig | None = None, bridge: FrankaBridge | None = None,
                 name: str = "franka", **node_kwargs):
        _, JointState, Float64, Float64MultiArray, Trigger, SetBool = _ros()  # ImportError without rclpy
        super().__init__(name, **node_kwargs)
        self.config = cfg = declare_section(self, "franka", config or FrankaConfig())
        self._JointState, self._Float64, self._Float64MultiArray = JointState, Float64, Float64MultiArray
        self.envelope = SafetyEnvelope(cfg.safety, *joint_limits(cfg.robot_model))
        self.home_q = np.array(cfg.home_q, dtype=np.float64)
        why = self.envelope.admits(self.home_q)
        if why is not None:
            raise ConfigError(f"franka.home_q: {list(cfg.home_q)} {why}")
        self.guiding = False
        self.watchdog = Watchdog(cfg.watchdog_timeout_s)
        self.joint_names = [f"{cfg.robot_model}_joint{i}" for i in range(1, 8)]
        self.holding = True  # nothing commanded yet
        self.hold_events = 0
        self.actions_received = 0
        self.commanded_at: float | None = None  # robot time of the last target an action commanded
        self._recoveries: collections.deque[float] = collections.deque()
        self.bridge = bridge or FrankaBridge()
        self.bridge.connect(cfg.robot_ip, cfg.relative_dynamics_factor, cfg.realtime)
        self.q, self.dq = self.bridge.joint_state()
        self.get_logger().info(f"connected to the robot at {cfg.robot_ip}; q = {np.round(self.q, 3).tolist()}")
        self.joint_pub = self.create_publisher(JointState, cfg.joint_state_topic, 10)
        self.gripper_pub = self.create_publisher(Float64, cfg.gripper_topic, 10)
        self.status_pub = self.create_publisher(Float64MultiArray, cfg.status_topic, 10)
        # depth 1: actions carry no stamp, so after a stall apply only the newest, not a burst
        self.create_subscription(Float64MultiArray, cfg.action_topic, self._on_action, 1)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/home", self._on_home)
        self.create_service(SetBool, "~/guiding", self._on_guiding)
        self.create_timer(1.0 / cfg.state_rate_hz, self._on_tick)

    # -- callbacks --------------------------------------------------------------------------
    def _publish_state(self) -> None:
        self.q, self.dq = self.bridge.joint_state()
        width = self.bridge.gripper_width()
        msg = self._JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self.joint_names
        msg.position, msg.velocity = self.q.tolist(), self.dq.tolist()
        self.joint_pub.publish(msg)
        self.gripper_pub.publish(self._Float64(data=width))
        target = np.full(7, np.nan) if self.bridge.target is None else self.bridge.target
        status = [self.bridge.robot_time(), self.bridge.command_success_rate(), *target.tolist()]
        self.status_pub.publish(self._Float64MultiArray(data=status))

    def _on_tick(self) -> None:
        self._publish_state()
        self.bridge.gripper_update()
        problem = self.bridge.check()
        if problem is not None:
            self._recover(problem)
        if not self.holding and self.watchdog.expired():
            self.holding = True
            self.hold_events += 1
            self.envelope.counts["stale"] += 1
            self.get_logger().warning(
                f"no fresh action for {self.config.watchdog_timeout_s:g} s: holding position", throttle_duration_sec=1.0)
            self._guarded(self.bridge.hold)

    def _on_action(self, msg) -> None:
        self.actions_received += 1
        if self.guiding:
            self.envelope.hold(self.q, self.bridge.target, "guiding")
            return
        self.q, self.dq = self.bridge.joint_state()  # fresh: the lead cap is relative to where the arm is now
        now = self.bridge.robot_time()
        dt = None if self.bridge.target is None or self.commanded_at is None else now - self.commanded_at
        target, report = self.envelope.clamp(self.q, self.bridge.target, np.asarray(msg.data, dtype=np.float64), dt)
        if report.held:
            self.get_logger().warning(f"action held ({report.reason}); counts {dict(self.envelope.counts)}",
                                      throttle_duration_sec=1.0)
            return
        self.watchdog.feed()
        self.holding = False
        self._guarded(self.bridge.command, target)
        self.commanded_at = now
        if report.gripper is not None:
            self._guarded(self.bridge.gripper_command, report.gripper, self.config.gripper_speed,
                          self.config.gripper_force)

    def _on_estop(self, request, response):
        self.envelope.estopped = True
        self.holding = True
        try:
            self._guarded(self.bridge.stop)
        finally:
            self.get_logger().error("E-STOP: motion stopped; actions refused until ~/reset")
        response.success, response.message = True, "stopped; call reset to resume"
        return response

    def _on_reset(self, request, response):
        problem = self.bridge.check()
        if problem is not None:
            self._recover(problem)
        self.envelope.estopped = False
        self.bridge.target = None  # resume from the measured pose
        self.watchdog.last = None  # hold until a fresh action
        self.holding = True
        self.get_logger().info("e-stop reset: accepting actions")
        response.success, response.message = True, "accepting actions"
        return response

    def _on_home(self, request, response):
        """Stream home_q and keep publishing the state until every joint is within HOME_TOLERANCE.
        Blocks this node's executor on purpose: no action may interleave with the homing move."""
        if self.envelope.estopped or self.guiding:
            response.success = False
            response.message = "e-stopped: call reset first" if self.envelope.estopped else "guiding: release it first"
            return response
        self._guarded(self.bridge.command, self.home_q)
        deadline = time.monotonic() + HOME_TIMEOUT_S
        while True:
            self._publish_state()
            error = float(np.max(np.abs(self.q - self.home_q)))
            if error <= HOME_TOLERANCE or time.monotonic() > deadline:
                break
            time.sleep(1.0 / self.config.state_rate_hz)
        self.holding, self.watchdog.last = True, None  # keep home until a fresh action
        response.success = error <= HOME_TOLERANCE
        response.message = (f"at home (max joint error {error:.4f} rad)" if response.success else
                            f"did not reach home within {HOME_TIMEOUT_S:g} s (max joint error {error:.3f} rad)")
        self.get_logger().info(response.message)
        return response

    def _on_guiding(self, request, response):
        self.holding, self.watchdog.last = True, None
        if request.data:
            if self.bridge.target is not None:
                self._guarded(self.bridge.stop)
            if self.config.guiding:
                self._guarded(self.bridge.free_for_guiding)
            self.guiding = True
            response.message = ("arm free: guide it by hand (hold the enabling button)" if self.config.guiding else
                                "no motion commanded (franka.guiding is false: guiding mode not set)")
        else:
            self.guiding = False
            self.bridge.target = None  # resume from wherever the operator left the arm
            response.message = "guiding released: accepting actions"
        self.get_logger().info(response.message)
        response.success = True
        return response

    # -- errors -----------------------------------------------------------------------------
    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except Recoverable as e:
            self._recover(str(e))
            return None

    def _recover(self, problem: str) -> None:
        now = time.monotonic()
        self._recoveries.append(now)
        while self._recoveries and now - self._recoveries[0] > RECOVERY_WINDOW_S:
            self._recoveries.popleft()
        if len(self._recoveries) > MAX_RECOVERIES:
            raise RobotError(f"{problem} (more than {MAX_RECOVERIES} errors in {RECOVERY_WINDOW_S:g} s: giving up)")
        self.get_logger().warning(f"{problem}: recovering")
        self.bridge.recover()
        self.holding = True
        self.watchdog.last = None

    def close(self) -> None:
        self.bridge.close()


def main(args=None) -> int:
    return run_node("franka_node", FrankaNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
