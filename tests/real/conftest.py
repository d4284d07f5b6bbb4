"""The ROS environment of the real-stack tests, set once here instead of in every module.

The node tests need rclpy (the PyPI ROS 2 wheels, docs/design.md section 10) and are skipped with that
reason without it. Each has its own rclpy Context and a ROS domain per pytest process, so parallel runs
do not meet.

Each node test module (a name in tests/real/ros.MODULES) runs in its own ROS domain with loopback-only
discovery: the fixture puts both in os.environ for the module's tests, so the nodes they create in this
process and the child processes they start (which inherit os.environ) meet each other and nothing else.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.real.ros import MODULES, ros_domain


@pytest.fixture(autouse=True, scope="module")
def ros_environment(request):
    """This module's ROS domain id (None for modules that start no ROS node), set in os.environ."""
    name = Path(str(request.module.__file__)).stem.removeprefix("test_")
    if name not in MODULES:
        yield None
        return
    patch = pytest.MonkeyPatch()
    domain = ros_domain(name)
    patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    patch.setenv("ROS_DOMAIN_ID", str(domain))
    yield domain
    patch.undo()
