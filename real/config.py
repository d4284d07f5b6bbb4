"""Typed settings of the cube-pick nodes, read from one ROS 2 parameter file.

`params/cube_pick.yaml` uses the layout `ros2 launch` hands to nodes as a parameters file
(`<node>: ros__parameters: {...}`; nested maps become dotted names such as `safety.joint_margin`),
so the same file serves ROS and the ROS-free bring-up. rclpy types a parameter by its declared
default and rejects `30` where a float was declared, so this loader rejects it too: every unknown
key, wrong type or out-of-range value is one ValueError line naming the node, key and valid values.
Nodes declare `ros_parameters(<Section>())` and rebuild their section with `section_from_parameters`.
"""
from __future__ import annotations

import array
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from toto_robot.compute import DEVICE_HELP, DEVICE_PATTERN, PRECISIONS
from toto_robot.kinematics import FRANKA_TCP_OFFSET

XYZ = tuple[float, float, float]
JOINTS = tuple[float, float, float, float, float, float, float]
_TOPIC = re.compile(r"^[~/]?[A-Za-z_]\w*(/[A-Za-z_]\w*)*$")  # ROS name tokens joined by '/'


def _num(default, lo, hi, lo_open=False):
    return field(default=default, metadata={"range": (lo, hi, lo_open)})


def _text(default, *, empty=False, choices=(), topic=False):
    return field(default=default, metadata={"empty": empty, "choices": choices, "topic": topic})


def _xyz(default):
    return field(default=default, metadata={"range": (-1.5, 1.5, False)})  # metres around the base


def _joints(default):
    return field(default=default, metadata={"range": (-3.1, 3.1, False)})  # rad; the envelope checks the real limits


@dataclass(frozen=True)
class CameraConfig:
    device: str = _text("0")  # V4L2 index ("0"), device path or video file
    width: int = _num(640, 16, 4096)
    height: int = _num(480, 16, 4096)
    fps: float = _num(30.0, 0.0, 120.0, lo_open=True)
    topic: str = _text("camera/image_raw", topic=True)


@dataclass(frozen=True)
class SafetyConfig:
    joint_margin: float = _num(0.05, 0.0, 0.3)  # rad kept clear of each joint limit
    max_joint_step: float = _num(0.05, 0.0, 0.2, lo_open=True)  # rad per action, each joint
    # rad/s of the robot's own clock, each joint: an action moves a target at most this x the robot
    # time since the last target, so a burst of actions (a slow host or simulator, a runaway policy)
    # cannot drive the arm faster than a steady 10 Hz stream of max_joint_step would
    max_joint_speed: float = _num(0.5, 0.0, 2.0, lo_open=True)
    workspace_min: XYZ = _xyz((0.2, -0.4, 0.02))  # hand box in the robot base frame (m)
    workspace_max: XYZ = _xyz((0.75, 0.4, 0.7))
    hand_tcp_offset: float = _num(FRANKA_TCP_OFFSET, 0.0, 0.3)  # flange to fingertip centre along flange z (m)
    box_margin: float = _num(0.01, 0.0, 0.1)  # targets stay this far inside the box: room for tracking overshoot (m)

    def __post_init__(self):
        if not all(lo + 2 * self.box_margin < hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min: {list(self.workspace_min)} must be below workspace_max "
                             f"{list(self.workspace_max)} by more than 2 x box_margin on every axis")


@dataclass(frozen=True)
class FrankaConfig:
    robot_ip: str = _text("172.16.0.2")
    robot_model: str = _text("fr3", choices=("fr3", "panda"))  # picks the joint limits
    relative_dynamics_factor: float = _num(0.1, 0.0, 1.0, lo_open=True)
    state_rate_hz: float = _num(50.0, 50.0, 1000.0)
    action_topic: str = _text("policy/action", topic=True)
    joint_state_topic: str = _text("franka/joint_states", topic=True)
    gripper_topic: str = _text("franka/gripper_width", topic=True)
    status_topic: str = _text("franka/status", topic=True)  # robot time, command success rate, last target
    gripper_speed: float = _num(0.05, 0.0, 0.1, lo_open=True)  # m/s
    gripper_force: float = _num(20.0, 0.0, 70.0, lo_open=True)  # N, Franka Hand continuous force
    watchdog_timeout_s: float = _num(0.15, 0.0, 1.0, lo_open=True)  # no fresh action -> hold
    realtime: bool = True  # franky RealtimeConfig.Enforce; false for franky-sim and tests
    # ~/home moves here (Franka's "ready" pose); checked against the joint limits and workspace box
    home_q: JOINTS = _joints((0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785))
    guiding: bool = True  # ~/guiding calls franky's set_guiding_mode; false for franky-sim (not implemented there)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


@dataclass(frozen=True)
class PolicyNodeConfig:
    checkpoint: str = _text("", empty=True)  # behaviour-cloned head; set by the launch argument
    encoder: str = _text("", empty=True)  # empty: the encoder the checkpoint was trained on
    rate_hz: float = _num(10.0, 0.0, 30.0, lo_open=True)
    max_observation_age_s: float = _num(0.1, 0.0, 1.0, lo_open=True)
    image_topic: str = _text("camera/image_raw", topic=True)
    joint_state_topic: str = _text("franka/joint_states", topic=True)
    gripper_topic: str = _text("franka/gripper_width", topic=True)
    action_topic: str = _text("policy/action", topic=True)
    start_enabled: bool = True  # false: publish nothing until ~/enable (the evaluation script toggles it)
    device: str = _text("auto")  # the encoder's: auto (CUDA if present) | cpu | cuda | cuda:N
    dtype: str = _text("auto", choices=PRECISIONS)  # auto: bf16 only where native (toto_robot/compute.py)

    def __post_init__(self):
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"device: {self.device!r} is not one of {DEVICE_HELP}")


@dataclass(frozen=True)
class RecorderConfig:
    out_dir: str = _text("runs/real/demos")
    rate_hz: float = _num(10.0, 0.0, 30.0, lo_open=True)
    image_topic: str = _text("camera/image_raw", topic=True)
    joint_state_topic: str = _text("franka/joint_states", topic=True)
    gripper_topic: str = _text("franka/gripper_width", topic=True)
    resolution: int = _num(128, 16, 1024)  # frames stored through real.preprocess at this size: the encoder's (Toto: 128)
    guiding_service: str = _text("franka/guiding", empty=True, topic=True)  # empty: do not ask the franka node


@dataclass(frozen=True)
class CubePickConfig:
    camera: CameraConfig = field(default_factory=CameraConfig)
    franka: FrankaConfig = field(default_factory=FrankaConfig)
    policy: PolicyNodeConfig = field(default_factory=PolicyNodeConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)


NODE_SCHEMAS = {f.name: f.default_factory for f in dataclasses.fields(CubePickConfig)}
# subscriber topic -> the publisher's topic it must equal
_LINKS = [(f"{n}.{t}", p) for n in ("policy", "recorder") for t, p in (
    ("image_topic", "camera.topic"), ("joint_state_topic", "franka.joint_state_topic"),
    ("gripper_topic", "franka.gripper_topic"))] + [("policy.action_topic", "franka.action_topic")]


def _check(key: str, kind, value, meta: Mapping):
    """One value against its declared type and range; returns it (lists become tuples)."""
    got = f"got {type(value).__name__} {value!r}"
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, {got}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{key}: expected an integer, {got}")
    if kind is float and not isinstance(value, float):
        hint = f" (ROS parameters are typed: write {value}.0)" if type(value) is int else ""
        raise ValueError(f"{key}: expected a float{hint}, {got}")
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, {got}")
        if not value and not meta["empty"]:
            raise ValueError(f"{key}: must not be empty")
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"{key}: {value!r} is not one of {', '.join(meta['choices'])}")
        if meta["topic"] and value and not _TOPIC.match(value):
            raise ValueError(f"{key}: {value!r} is not a ROS topic name (letters, digits, '_' and '/')")
    vector = kind in (XYZ, JOINTS)
    if vector:
        n, what = (3, "[x, y, z] in metres") if kind == XYZ else (7, "joint positions in rad")
        if not isinstance(value, (list, tuple, array.array)) or len(value) != n or not all(isinstance(v, float) for v in value):
            raise ValueError(f"{key}: expected {n} floats ({what}), {got}")
        value = tuple(value)
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        for v in value if vector else (value,):
            if not ((lo < v) if lo_open else (lo <= v)) or not v <= hi:
                raise ValueError(f"{key}: {v} is out of range {'(' if lo_open else '['}{lo}, {hi}]")
    return value


def _build(cls, params, where: str):
    if not isinstance(params, dict):
        raise ValueError(f"{where}: expected a mapping of parameters, got {params!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in params:
        if name not in fields:
            raise ValueError(f"{where}.{name}: unknown key (valid: {', '.join(fields)})")
    values = {}
    for name, value in params.items():
        key, kind = f"{where}.{name}", hints[name]
        values[name] = _build(kind, value, key) if dataclasses.is_dataclass(kind) else _check(
            key, kind, value, fields[name].metadata)
    try:
        return cls(**values)
    except ValueError as e:  # a check across fields (__post_init__)
        raise ValueError(f"{where}.{e}") from None


def _nest(params: Mapping, where: str) -> dict:
    """Dotted names ('safety.joint_margin', as rclpy lists them) and nested maps -> nested dicts."""
    tree: dict = {}
    for name, value in params.items():
        *parents, leaf = str(name).split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{where}.{name}: {part} is a group of parameters, not a value")
        if isinstance(value, dict):
            value = _nest(value, f"{where}.{name}")
            if isinstance(node.get(leaf), dict):
                value = {**node[leaf], **value}
        node[leaf] = value
    return tree


def section_from_parameters(node: str, params: Mapping[str, object]):
    """One node's settings from its (dotted or nested) parameters; missing keys keep defaults."""
    if node not in NODE_SCHEMAS:
        raise ValueError(f"{node}: unknown node (valid: {', '.join(NODE_SCHEMAS)})")
    return _build(NODE_SCHEMAS[node], _nest(params, node), node)


def ros_parameters(section) -> dict[str, object]:
    """Flat `{dotted name: value}` of a section, the form `Node.declare_parameter` takes."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in ros_parameters(value).items()})
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _check_links(config: CubePickConfig) -> None:
    def get(dotted):
        node, name = dotted.split(".")
        return getattr(getattr(config, node), name)

    for sub, pub in _LINKS:
        if get(sub) != get(pub):
            raise ValueError(f"{sub}: {get(sub)!r} differs from {pub} {get(pub)!r} (they must match)")


def load_config(path: str | Path, overrides: Mapping[str, object] | None = None) -> CubePickConfig:
    """Read and check a cube-pick parameter file; `overrides` maps 'node.key' to a value, as the
    launch file's arguments do (e.g. {'franka.robot_ip': '10.0.0.2'})."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    try:
        if not isinstance(raw, dict):
            raise ValueError("expected '<node>: ros__parameters: {...}' sections")
        sections = {}
        for node, body in raw.items():
            if node not in NODE_SCHEMAS:
                raise ValueError(f"{node}: unknown node (valid: {', '.join(NODE_SCHEMAS)})")
            if not isinstance(body, dict) or set(body) != {"ros__parameters"}:
                raise ValueError(f"{node}: expected exactly one key, ros__parameters")
            sections[node] = body["ros__parameters"] or {}
            if not isinstance(sections[node], dict):
                raise ValueError(f"{node}.ros__parameters: expected a mapping of parameters")
        for key, value in (overrides or {}).items():
            node, _, name = key.partition(".")
            if node not in NODE_SCHEMAS or not name:
                raise ValueError(f"{key}: overrides are '<node>.<key>' with node one of {', '.join(NODE_SCHEMAS)}")
            sections[node] = {**sections.get(node, {}), name: value}
        config = CubePickConfig(**{n: section_from_parameters(n, sections.get(n, {})) for n in NODE_SCHEMAS})
        _check_links(config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return config
