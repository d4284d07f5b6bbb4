"""Calling the nodes' Trigger/SetBool services from outside the stack, without ros2cli.

`ServiceCaller` is what the evaluation script and `python -m real.call` share: clients on their
own rclpy Context with no signal handlers (Ctrl-C stays a KeyboardInterrupt, and the context still
works afterwards, e.g. to disable the policy on the way out); waits spin in 0.1 s steps so Ctrl-C
is seen promptly. Every failure (ROS missing, service absent, no answer, success false) is one
`ServiceError` line.
"""
from __future__ import annotations

import os
import time


class ServiceError(Exception):
    """A service could not be called or answered success = false (one line)."""


class ServiceCaller:
    def __init__(self, name: str = "caller", service_timeout_s: float = 5.0):
        try:
            import rclpy
            from rclpy.context import Context
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.signals import SignalHandlerOptions
            from std_srvs.srv import SetBool, Trigger
        except ImportError as e:
            raise ServiceError(f"ROS 2 (rclpy, std_srvs) is not importable (is ROS 2 sourced?): {e}") from None
        self._rclpy, self.SetBool, self.Trigger = rclpy, SetBool, Trigger
        self.service_timeout_s = service_timeout_s
        self._ctx = Context()
        rclpy.init(context=self._ctx, signal_handler_options=SignalHandlerOptions.NO)
        self._node = rclpy.create_node(f"{name}_{os.getpid()}", context=self._ctx)
        self._executor = SingleThreadedExecutor(context=self._ctx)
        self._executor.add_node(self._node)
        self._hints: dict = {}
        self._missing: set = set()  # not waited for again (best-effort calls on the way out)

    def client(self, service: str, with_bool: bool, hint: str = ""):
        """A client of `service` (SetBool if `with_bool`, else Trigger); `hint` ends the not-found line."""
        client = self._node.create_client(self.SetBool if with_bool else self.Trigger, service)
        self._hints[client] = hint
        return client

    def wait(self, client) -> None:
        if client in self._missing or not client.wait_for_service(timeout_sec=self.service_timeout_s):
            self._missing.add(client)
            hint = f" ({self._hints[client]})" if self._hints.get(client) else ""
            raise ServiceError(f"service {client.service_name} is not available after {self.service_timeout_s:g} s{hint}")

    def call(self, client, data: bool | None = None, timeout_s: float | None = None) -> str:
        """Call and return the response's message; `data` is the SetBool value (None for Trigger)."""
        self.wait(client)
        request = self.Trigger.Request() if data is None else self.SetBool.Request(data=bool(data))
        timeout_s = self.service_timeout_s if timeout_s is None else timeout_s
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise ServiceError(f"service {client.service_name} did not answer within {timeout_s:g} s")
            self._executor.spin_once(timeout_sec=0.1)
        response = future.result()
        message = " ".join((getattr(response, "message", "") or "").split())
        if response is None or not response.success:
            raise ServiceError(f"service {client.service_name} failed: {message or 'no reason given'}")
        return message

    def get_parameter(self, node: str, name: str):
        """The current value of `node`'s parameter `name` (rcl_interfaces GetParameters; every rclpy node
        offers it), or None if the node does not declare it."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self._node.create_client(GetParameters, f"{node}/get_parameters")
        self._hints[client] = f"is the {node} node running?"
        self.wait(client)
        future = client.call_async(GetParameters.Request(names=[name]))
        deadline = time.monotonic() + self.service_timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise ServiceError(f"service {client.service_name} did not answer within {self.service_timeout_s:g} s")
            self._executor.spin_once(timeout_sec=0.1)
        values = future.result().values
        return parameter_value_to_python(values[0]) if values and values[0].type else None

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        self._rclpy.try_shutdown(context=self._ctx)
