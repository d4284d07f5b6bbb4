"""`ros2 launch real cube_pick.launch.py [robot_ip:=<FCI address>] [checkpoint:=<policy run>] [config:=<yaml>]`

Thin on purpose: every setting lives in config/cube_pick.yaml (schema: real/config.py), passed to
each node as its parameters file; robot_ip:= and checkpoint:= override one parameter each when
given. Which nodes run is real.bringup.launch_plan's rule, the one the ROS-free bring-up uses:
camera, franka and recorder, plus the policy node when a checkpoint is set; without one, a line
says no policy runs (record demos). If the franka node exits (robot lost, e-stop), all stop.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from real.bringup import launch_plan

ARGUMENTS = {"robot_ip": "the robot's FCI address (default: the config's, 172.16.0.2)",
             "checkpoint": "policy run of python real/train_bc.py (default: none, no policy node)"}


def _nodes(context):
    plan = launch_plan(*(LaunchConfiguration(name).perform(context) for name in ("config", *ARGUMENTS)))
    return [LogInfo(msg=note) for note in [plan.note] if note] + [
        Node(package="real", executable=f"{name}_node", name=name, output="screen",
             # strings as strings: a plain value would be YAML-parsed ('10' -> int)
             parameters=[plan.config, *({k: ParameterValue(v, value_type=str)} for k, v in plan.overrides.get(name, {}).items())],
             on_exit=Shutdown() if name == "franka" else None)
        for name in plan.nodes]


def generate_launch_description():
    share = PathJoinSubstitution([FindPackageShare("real"), "params", "cube_pick.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=share, description="parameters file of all nodes"),
        *(DeclareLaunchArgument(name, default_value="", description=text) for name, text in ARGUMENTS.items()),
        OpaqueFunction(function=_nodes),
    ])
