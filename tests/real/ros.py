"""The ROS set-up every real-stack test shares: a domain id per test module and an rclpy context.

Domain ids: unique among this run's modules (their index below) and spread over concurrent runs by
the process id, all in 1..92, below 101, the last id whose DDS ports stay out of Linux's ephemeral
range. Discovery is loopback-only (`ros_env`), so runs on one machine never meet other hosts.
"""
from __future__ import annotations

import os

MODULES = ("bringup", "call", "camera_node", "config", "evaluate", "franka_node", "full_loop", "policy_node",
           "recorder_node")
RUNS = 7  # concurrent pytest runs kept apart


def ros_domain(module: str) -> int:
    """The domain of test module `module` (a name in MODULES) in this pytest process."""
    return 1 + (os.getpid() % RUNS) * len(MODULES) + MODULES.index(module)


def ros_context(domain: int):
    """A fresh, initialised rclpy context on `domain` (the caller shuts it down)."""
    import rclpy
    from rclpy.context import Context

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    return context
