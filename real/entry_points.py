"""The node executables of the ROS 2 package `real`, listed once.

`setup.py` turns this into console_scripts (colcon installs them under lib/real, where
`ros2 launch` looks), and a test checks the launch file names only these. Plain data, no
imports: setup.py reads it with runpy before the package is installed.
"""

NODES = {
    "camera_node": "real.nodes.camera:main",
    "franka_node": "real.nodes.franka:main",
    "policy_node": "real.nodes.policy:main",
    "recorder_node": "real.nodes.recorder:main",
}
