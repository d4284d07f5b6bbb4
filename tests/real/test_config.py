"""params/cube_pick.yaml loads into the typed schema; every bad key, type or range is one clear line."""
import array
import dataclasses
import re

import pytest
import yaml

from real.config import NODE_SCHEMAS, CubePickConfig, SafetyConfig, load_config, ros_parameters, section_from_parameters
from tests.real.package_files import REAL

YAML = REAL / "params" / "cube_pick.yaml"


def _write(tmp_path, raw) -> str:
    path = tmp_path / "cube_pick.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _raw():
    return yaml.safe_load(YAML.read_text())


def test_defaults_load_and_match_the_schema_defaults():
    config = load_config(YAML)
    assert config == CubePickConfig()
    assert config.franka.robot_ip == "172.16.0.2" and config.policy.rate_hz == 10.0
    assert config.franka.state_rate_hz >= 50


def test_yaml_spells_out_every_parameter():
    """The shipped file documents every setting, not only the non-defaults."""
    raw = _raw()
    for node, schema in NODE_SCHEMAS.items():
        flat = ros_parameters(section_from_parameters(node, raw[node]["ros__parameters"]))
        assert flat.keys() == ros_parameters(schema()).keys()
        flat_raw = {}
        for key, value in raw[node]["ros__parameters"].items():
            flat_raw.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
        assert flat_raw.keys() == flat.keys()


def test_overrides_as_the_launch_arguments_give_them():
    config = load_config(YAML, {"franka.robot_ip": "10.0.0.2", "policy.checkpoint": "runs/bc/model.safetensors",
                                "franka.safety.joint_margin": 0.1})
    assert config.franka.robot_ip == "10.0.0.2" and config.policy.checkpoint == "runs/bc/model.safetensors"
    assert config.franka.safety.joint_margin == 0.1
    assert config.franka.safety.max_joint_step == 0.05  # the rest of the group is kept


def test_rclpy_shaped_parameters_round_trip():
    """Nodes read dotted names back from rclpy, double arrays as array.array."""
    for node, schema in NODE_SCHEMAS.items():
        section = schema()
        assert section_from_parameters(node, ros_parameters(section)) == section
    params = {"safety.workspace_min": array.array("d", [0.1, -0.2, 0.05]), "safety.max_joint_step": 0.02}
    franka = section_from_parameters("franka", params)
    assert franka.safety == dataclasses.replace(SafetyConfig(), workspace_min=(0.1, -0.2, 0.05), max_joint_step=0.02)
    with pytest.raises(ValueError, match=r"^franka\.safety\.workspace_min: \[1.0, 1.0, 1.0\] must be below"):
        section_from_parameters("franka", {"safety.workspace_min": [1.0, 1.0, 1.0]})  # checked in nodes too
    with pytest.raises(ValueError, match="^gripper: unknown node"):
        section_from_parameters("gripper", {})


BAD_VALUES = [
    ("camera", "fps", 30, "camera.fps: expected a float (ROS parameters are typed: write 30.0)"),
    ("camera", "fps", 0.0, "camera.fps: 0.0 is out of range (0.0, 120.0]"),
    ("camera", "width", 640.0, "camera.width: expected an integer"),
    ("camera", "width", 8, "camera.width: 8 is out of range [16, 4096]"),
    ("camera", "device", 0, "camera.device: expected a string"),
    ("camera", "topic", "camera image", "camera.topic: 'camera image' is not a ROS topic name"),
    ("franka", "robot_ip", "", "franka.robot_ip: must not be empty"),
    ("franka", "robot_model", "ur5", "franka.robot_model: 'ur5' is not one of fr3, panda"),
    ("franka", "relative_dynamics_factor", 1.5, "franka.relative_dynamics_factor: 1.5 is out of range (0.0, 1.0]"),
    ("franka", "relative_dynamics_factor", float("nan"), "franka.relative_dynamics_factor: nan is out of range"),
    ("franka", "state_rate_hz", 20.0, "franka.state_rate_hz: 20.0 is out of range [50.0, 1000.0]"),
    ("franka", "realtime", "yes", "franka.realtime: expected true or false"),
    ("franka", "watchdog_timeout_s", -0.1, "franka.watchdog_timeout_s: -0.1 is out of range (0.0, 1.0]"),
    ("franka", "safety", 3, "franka.safety: expected a mapping of parameters"),
    ("franka", "safety.joint_margin", 0.5, "franka.safety.joint_margin: 0.5 is out of range [0.0, 0.3]"),
    ("franka", "safety.max_joint_step", 0.0, "franka.safety.max_joint_step: 0.0 is out of range (0.0, 0.2]"),
    ("franka", "safety.workspace_min", [0.2, 0.0], "franka.safety.workspace_min: expected 3 floats ([x, y, z]"),
    ("franka", "safety.workspace_min", [0, 0, 0], "franka.safety.workspace_min: expected 3 floats ([x, y, z]"),
    ("franka", "safety.workspace_max", [0.5, 0.5, 9.0], "franka.safety.workspace_max: 9.0 is out of range [-1.5, 1.5]"),
    ("franka", "safety.workspace_min", [0.8, -0.4, 0.02], "franka.safety.workspace_min: [0.8, -0.4, 0.02] must be below"),
    ("franka", "safety.joint_margn", 0.05, "franka.safety.joint_margn: unknown key (valid: joint_margin, max_joint_step"),
    ("policy", "rate_hz", 100.0, "policy.rate_hz: 100.0 is out of range (0.0, 30.0]"),
    ("policy", "checkpoint", None, "policy.checkpoint: expected a string"),
    ("policy", "image_topic", "cam", "policy.image_topic: 'cam' differs from camera.topic 'camera/image_raw'"),
    ("policy", "action_topic", "act", "policy.action_topic: 'act' differs from franka.action_topic 'policy/action'"),
    ("recorder", "joint_state_topic", "js", "recorder.joint_state_topic: 'js' differs from franka.joint_state_topic"),
    ("recorder", "out_dr", "x", "recorder.out_dr: unknown key (valid: out_dir, rate_hz"),
]


@pytest.mark.parametrize("node,key,value,message", BAD_VALUES, ids=[f"{n}.{k}={v!r}" for n, k, v, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_node_key_and_range(tmp_path, node, key, value, message):
    raw = _raw()
    params = raw[node]["ros__parameters"]
    group, _, leaf = key.rpartition(".")
    (params[group] if group else params)[leaf] = value
    with pytest.raises(ValueError) as info:
        load_config(_write(tmp_path, raw))
    text = str(info.value)
    assert "\n" not in text and message in text and text.startswith(str(tmp_path))
    with pytest.raises(ValueError, match="^" + str(YAML)):  # the same check through an override
        load_config(YAML, {f"{node}.{key}": value})


@pytest.mark.parametrize("mutate,message", [
    (lambda raw: raw.update(gripper={"ros__parameters": {}}), "gripper: unknown node (valid: camera, franka, policy, recorder)"),
    (lambda raw: raw.update(camera={"fps": 30.0}), "camera: expected exactly one key, ros__parameters"),
    (lambda raw: raw["camera"].update(extra=1), "camera: expected exactly one key, ros__parameters"),
    (lambda raw: raw["camera"].update(ros__parameters=[1]), "camera.ros__parameters: expected a mapping"),
])
def test_bad_layout_is_one_line(tmp_path, mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(_write(tmp_path, raw))


def test_missing_sections_and_keys_keep_defaults(tmp_path):
    assert load_config(_write(tmp_path, {"camera": {"ros__parameters": {"fps": 15.0}}})).camera.fps == 15.0
    assert load_config(_write(tmp_path, {"policy": {"ros__parameters": None}})) == CubePickConfig()


def test_unreadable_files_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("camera: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML") as info:
        load_config(tmp_path / "bad.yaml")
    assert "\n" not in str(info.value)
    (tmp_path / "list.yaml").write_text("- camera\n")
    with pytest.raises(ValueError, match="expected '<node>: ros__parameters"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="overrides are '<node>.<key>'"):
        load_config(YAML, {"robot_ip": "10.0.0.2"})


@pytest.mark.ros
def test_rclpy_accepts_the_file_with_the_schema_types():
    """Where rclpy is installed (the ROS venv): nodes declaring the schema defaults take the file."""
    pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")
    import rclpy  # (the module's ROS domain and loopback discovery: tests/real/conftest.py)
    from rclpy.node import Node

    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(YAML), "-p", "franka:robot_ip:=10.0.0.2"], context=context)
    try:
        for name, schema in NODE_SCHEMAS.items():
            node = Node(name, context=context)
            defaults = ros_parameters(schema())
            node.declare_parameters("", list(defaults.items()))
            values = {key: node.get_parameter(key).value for key in defaults}
            node.destroy_node()
            expected = load_config(YAML, {"franka.robot_ip": "10.0.0.2"})
            assert section_from_parameters(name, values) == getattr(expected, name)
    finally:
        rclpy.try_shutdown(context=context)
