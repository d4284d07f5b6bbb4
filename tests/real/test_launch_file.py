"""The launch file as `ros2 launch` runs it: defaults from the parameters file, the policy node only
with a checkpoint, overrides that exist, executables that exist.

`launch`/`launch_ros` are not installable here, so the file runs against stand-ins of the few
classes it uses, which record their arguments (the real API's names and signatures).
"""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import yaml

from real.bringup import DEFAULT_CONFIG, NO_POLICY
from real.config import NODE_SCHEMAS, ros_parameters
from real.entry_points import NODES
from tests.real.package_files import REAL, setup_kwargs

LAUNCH = REAL / "launch" / "cube_pick.launch.py"


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context):
        return context[self.args[0]]


def stand_ins() -> dict[str, types.ModuleType]:
    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "LogInfo", "OpaqueFunction", "Shutdown"],
             "launch.substitutions": ["PathJoinSubstitution"], "launch_ros": [], "launch_ros.actions": ["Node"],
             "launch_ros.parameter_descriptions": ["ParameterValue"], "launch_ros.substitutions": ["FindPackageShare"]}
    modules = {}
    for module, classes in names.items():
        modules[module] = types.ModuleType(module)
        for cls in classes:
            setattr(modules[module], cls, type(cls, (Recorded,), {}))
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    return modules


@pytest.fixture
def launch(monkeypatch):
    """(declared arguments, nodes(**arguments) -> (log lines, {name: Node}))."""
    for name, module in stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("cube_pick_launch", LAUNCH)
    file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(file)
    description = file.generate_launch_description().args[0]
    declared = {a.args[0]: a.kwargs for a in description if type(a).__name__ == "DeclareLaunchArgument"}
    opaque = [a for a in description if type(a).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1

    def nodes(**arguments):
        context = {"config": str(DEFAULT_CONFIG), "robot_ip": "", "checkpoint": "", **arguments}
        actions = opaque[0].kwargs["function"](context)
        logs = [a.kwargs["msg"] for a in actions if type(a).__name__ == "LogInfo"]
        return logs, {a.kwargs["name"]: a for a in actions if type(a).__name__ == "Node"}

    return declared, nodes


def test_as_typed_it_starts_camera_franka_and_recorder_and_says_no_policy_runs(launch):
    declared, nodes = launch
    assert set(declared) == {"config", "robot_ip", "checkpoint"}
    assert declared["robot_ip"]["default_value"] == declared["checkpoint"]["default_value"] == ""  # nothing required
    logs, started = nodes()
    assert logs == [NO_POLICY] and list(started) == ["camera", "franka", "recorder"]
    for name, node in started.items():
        assert node.kwargs["package"] == "real" and node.kwargs["executable"] in NODES
        assert node.kwargs["parameters"] == [str(DEFAULT_CONFIG)]  # the file's values, robot_ip 172.16.0.2 included
    assert type(started["franka"].kwargs["on_exit"]).__name__ == "Shutdown"
    assert yaml.safe_load(DEFAULT_CONFIG.read_text())["franka"]["ros__parameters"]["robot_ip"] == "172.16.0.2"


def test_arguments_override_one_parameter_each_and_a_checkpoint_adds_the_policy(launch):
    _, nodes = launch
    logs, started = nodes(robot_ip="10.0.0.2", checkpoint="runs/real/bc/run1")
    assert logs == [] and list(started) == ["camera", "franka", "policy", "recorder"]
    for name, key, value in (("franka", "robot_ip", "10.0.0.2"), ("policy", "checkpoint", "runs/real/bc/run1")):
        config, override = started[name].kwargs["parameters"]
        assert config == str(DEFAULT_CONFIG) and list(override) == [key]
        assert override[key].args == (value,) and override[key].kwargs == {"value_type": str}
        assert key in ros_parameters(NODE_SCHEMAS[name]())
    assert sorted(started) == sorted(NODE_SCHEMAS)  # every node has a config section


def test_a_bad_config_is_one_line(launch, tmp_path):
    _, nodes = launch
    with pytest.raises(ValueError, match="cannot read the config file"):
        nodes(config=str(tmp_path / "missing.yaml"))


def test_setup_entry_points_are_the_nodes(monkeypatch):
    scripts = setup_kwargs(monkeypatch)["entry_points"]["console_scripts"]
    assert dict(s.replace(" ", "").split("=") for s in scripts) == NODES
    assert all(target.startswith("real.nodes.") and target.endswith(":main") for target in NODES.values())
