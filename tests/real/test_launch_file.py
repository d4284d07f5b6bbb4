"""The launch file stays thin and names only what exists: entry points, config sections, parameters.

`launch`/`launch_ros` are not installable here, so the file is read with `ast`, never imported.
"""
import ast

import yaml

from real.config import NODE_SCHEMAS, ros_parameters
from real.entry_points import NODES
from tests.real.package_files import REAL, setup_kwargs

LAUNCH = REAL / "launch" / "cube_pick.launch.py"
TREE = ast.parse(LAUNCH.read_text())


def _calls(name: str) -> list[ast.Call]:
    def called(node):
        func = node.func
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)

    return [n for n in ast.walk(TREE) if isinstance(n, ast.Call) and called(n) == name]


def _kwargs(call: ast.Call) -> dict:
    return {k.arg: k.value for k in call.keywords}


def _constant(node) -> str:
    assert isinstance(node, ast.Constant) and isinstance(node.value, str), ast.dump(node)
    return node.value


NODE_CALLS = _calls("Node")
DECLARED = {_constant(c.args[0]) for c in _calls("DeclareLaunchArgument")}


def test_launches_every_node_executable_once():
    assert len(NODE_CALLS) == len(NODES)
    for call in NODE_CALLS:
        assert _constant(_kwargs(call)["package"]) == "real"
    assert sorted(_constant(_kwargs(c)["executable"]) for c in NODE_CALLS) == sorted(NODES)


def test_every_node_name_has_a_config_section():
    sections = yaml.safe_load((REAL / "config" / "cube_pick.yaml").read_text())
    names = [_constant(_kwargs(c)["name"]) for c in NODE_CALLS]
    assert sorted(names) == sorted(NODE_SCHEMAS)
    assert all(name in sections for name in names)


def test_parameter_overrides_exist_in_the_schema_and_come_from_declared_arguments():
    overrides = 0
    for call in NODE_CALLS:
        node = _constant(_kwargs(call)["name"])
        schema = ros_parameters(NODE_SCHEMAS[node]())
        for item in _kwargs(call)["parameters"].elts:
            if isinstance(item, ast.Dict):
                for key, value in zip(item.keys, item.values):
                    assert _constant(key) in schema, f"{node}: {_constant(key)} is not a parameter"
                    used = {c.args[0].value for c in ast.walk(value)
                            if isinstance(c, ast.Call) and c.args and isinstance(c.args[0], ast.Constant)}
                    assert used and used <= DECLARED  # a launch argument, not a hard-coded value
                    overrides += 1
            else:
                assert isinstance(item, ast.Name) and item.id == "config"  # the parameters file
    assert overrides == 2  # robot_ip and checkpoint


def test_arguments_are_the_documented_ones():
    assert DECLARED == {"config", "robot_ip", "checkpoint"}
    used = {_constant(c.args[0]) for c in _calls("LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    assert used <= DECLARED


def test_launch_file_is_thin():
    """Only launch/launch_ros imports and no logic of its own: settings live in the YAML."""
    modules = {n.module.split(".")[0] for n in ast.walk(TREE) if isinstance(n, ast.ImportFrom)}
    assert modules == {"launch", "launch_ros"}
    assert not any(isinstance(n, ast.Import) for n in ast.walk(TREE))
    assert not any(isinstance(n, (ast.For, ast.While, ast.If, ast.Try)) for n in ast.walk(TREE))
    assert len(LAUNCH.read_text().splitlines()) < 60


def test_setup_entry_points_are_the_nodes(monkeypatch):
    scripts = setup_kwargs(monkeypatch)["entry_points"]["console_scripts"]
    assert dict(s.replace(" ", "").split("=") for s in scripts) == NODES
    assert all(target.startswith("real.nodes.") and target.endswith(":main") for target in NODES.values())
