"""Camera node on a video file (no /dev/video* here): rgb8 frames at the configured size; no camera -> exit 2."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from tests.real.ros import ros_context, ros_domain  # noqa: E402

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")
cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from real.config import CameraConfig  # noqa: E402
from real.nodes.camera import CameraNode, main  # noqa: E402

DOMAIN = ros_domain("camera_node")


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (80, 60))
    for i in range(5):
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[..., 2] = 200  # BGR red
        frame[:, i * 10:(i + 1) * 10, 1] = 255
        writer.write(frame)
    writer.release()
    return path


def test_publishes_rgb8_frames_at_the_configured_size(clip):
    ctx = ros_context(DOMAIN)
    node = CameraNode(replace(CameraConfig(), device=str(clip), width=64, height=48, fps=30.0), context=ctx)
    peer = Node("camera_test", context=ctx)
    got = []
    peer.create_subscription(Image, "camera/image_raw", got.append, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(peer)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 5.0
        while len(got) < 8 and time.monotonic() < deadline:  # more than the clip's 5: it loops
            time.sleep(0.02)
    finally:
        ex.shutdown(timeout_sec=2.0)
        th.join(5.0)
        node.close()
        node.destroy_node()
        peer.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert len(got) >= 8
    m = got[-1]
    assert (m.height, m.width, m.encoding, m.step) == (48, 64, "rgb8", 64 * 3)
    rgb = np.frombuffer(m.data, np.uint8).reshape(48, 64, 3)
    assert rgb[..., 0].mean() > 150 and rgb[..., 2].mean() < 50  # red stays red after BGR -> RGB


@pytest.mark.parametrize("device", ["7", "/dev/video9", "no/such/clip.mp4"])
def test_camera_not_found_is_one_line_exit_2(capsys, device):
    assert main(["camera_node", "--ros-args", "-p", f"device:={device}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("camera_node: error: camera not found"), err
