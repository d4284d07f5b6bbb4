"""`ros2 launch real cube_pick.launch.py robot_ip:=<FCI address> checkpoint:=<policy checkpoint>`

Thin on purpose: every setting lives in config/cube_pick.yaml (schema: real/config.py), passed to
each node as its parameters file; the two launch arguments override one parameter each. The
ROS-free bring-up starts the same executables with the same file. If the franka node exits (robot
lost, e-stop), everything shuts down.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _text(argument):
    """A launch argument as a string parameter (plain substitution would YAML-parse '10' to int)."""
    return ParameterValue(LaunchConfiguration(argument), value_type=str)


def generate_launch_description():
    config = LaunchConfiguration("config")
    return LaunchDescription([
        DeclareLaunchArgument(
            "config",
            default_value=PathJoinSubstitution([FindPackageShare("real"), "config", "cube_pick.yaml"]),
            description="parameters file of all nodes",
        ),
        DeclareLaunchArgument("robot_ip", description="the robot's FCI address, e.g. 172.16.0.2"),
        DeclareLaunchArgument("checkpoint", description="behaviour-cloned policy checkpoint"),
        Node(package="real", executable="camera_node", name="camera", output="screen",
             parameters=[config]),
        Node(package="real", executable="franka_node", name="franka", output="screen",
             parameters=[config, {"robot_ip": _text("robot_ip")}], on_exit=Shutdown()),
        Node(package="real", executable="policy_node", name="policy", output="screen",
             parameters=[config, {"checkpoint": _text("checkpoint")}]),
        Node(package="real", executable="recorder_node", name="recorder", output="screen",
             parameters=[config]),
    ])
