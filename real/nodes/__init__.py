"""The ROS 2 nodes of the cube-pick stack (executables: real/entry_points.py).

Shared plumbing: a node's settings come from its section of real/config.py, declared as ROS
parameters (so `--ros-args -p key:=value` and `--params-file cube_pick.yaml` both work) and
checked by the same schema; every failure a user can cause or meet is a `NodeError`, which
`run_node` turns into one line on stderr and an exit code (2: bad input such as a config value,
an unreachable robot or a missing camera; 1: a failure while running, such as a lost robot).
Nodes that call franky spin a SingleThreadedExecutor (a MultiThreadedExecutor starved franky).
"""
from __future__ import annotations

import sys
from typing import Callable
from real.config import ros_parameters, section_from_parameters


class NodeError(Exception):
    """A failure reported as one line; `exit_code` is what the executable returns."""

    exit_code = 1


class ConfigError(NodeError):
    exit_code = 2


def declare_section(node, section_name: str, defaults):
    """Declare every key of `defaults` (a real.config section) as a parameter of `node`, then rebuild
    the section from the parameter values; wrong types or ranges raise ConfigError (one line)."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import ParameterException


    values = {}
    for name, default in ros_parameters(defaults).items():
        # `-p device:=0` or `robot_ip: 10` arrive as numbers: text parameters take any scalar
        descriptor = ParameterDescriptor(dynamic_typing=isinstance(default, str))
        try:
            value = node.declare_parameter(name, default, descriptor).value
        except ParameterException as e:
            raise ConfigError(f"{section_name}.{name}: {' '.join(str(e).split())}") from None
        if isinstance(default, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        values[name] = value
    try:
        return section_from_parameters(section_name, values)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def run_node(name: str, make_node: Callable[[], object], args=None) -> int:
    """Init rclpy, build the node, spin it on a SingleThreadedExecutor until Ctrl-C / SIGTERM or a
    NodeError; clean up in the order rclpy needs. Returns the process exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=sys.argv if args is None else args)
    node, executor, code = None, None, 0
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except NodeError as e:
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        code = e.exit_code
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
