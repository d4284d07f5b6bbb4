"""python -m real.call: Trigger and SetBool services from a shell without ros2cli; answers printed,
refusals and missing services one line with exit 1. Needs rclpy (skipped otherwise)."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from tests.real.ros import ros_context, ros_domain  # noqa: E402

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from tests.real.processes import REPO, ros_env  # noqa: E402

DOMAIN = ros_domain("call")
ENV = ros_env(DOMAIN)


@pytest.fixture(scope="module")
def services():
    """A stand-in node: rec/start answers, rec/stop records the SetBool value, rec/broken refuses."""
    ctx = ros_context(DOMAIN)
    node = Node("rec", context=ctx)
    got: list = []

    def answer(request, response, text="episode 3 open", ok=True):
        got.append(getattr(request, "data", None))
        response.success, response.message = ok, text
        return response

    node.create_service(Trigger, "rec/start", answer)
    node.create_service(SetBool, "rec/stop", lambda rq, rs: answer(rq, rs, f"saved, success={rq.data}"))
    node.create_service(Trigger, "rec/broken", lambda rq, rs: answer(rq, rs, "no episode\n open", ok=False))
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield got
    executor.shutdown(timeout_sec=2.0)
    thread.join(5.0)
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _call(*args):
    return subprocess.run([sys.executable, "-m", "real.call", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, timeout=60)


def test_trigger_and_setbool_answers_are_printed(services):
    done = _call("rec/start")
    assert done.returncode == 0 and done.stdout.strip() == "episode 3 open", done.stderr
    done = _call("rec/stop", "false")
    assert done.returncode == 0 and done.stdout.strip() == "saved, success=False", done.stderr
    assert services[-2:] == [None, False]


@pytest.mark.parametrize("args, words", [(("rec/broken",), "service /rec/broken failed: no episode open"),
                                         (("rec/nothing", "--timeout-s", "2"), "/rec/nothing is not available after 2 s")])
def test_refusal_or_missing_service_is_one_line_exit_1(services, args, words):
    done = _call(*args)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(err) == 1 and err[0].startswith("call: error: ") and words in err[0], err
