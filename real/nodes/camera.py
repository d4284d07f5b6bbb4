"""Camera node: OpenCV frames -> sensor_msgs/Image (rgb8) at the configured size and rate.

`device` (real.config CameraConfig) is a V4L2 index ("0"), a device path ("/dev/video2") or a
video file (tests and replays; it loops). OpenCV gives BGR: converted to RGB; frames of another
size are resized. No camera -> one line, exit 2; a camera that stops delivering -> one line, exit 1.
No cv_bridge (not installable from PyPI): the message is filled from the numpy array directly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from real.config import CameraConfig
from real.nodes import ConfigError, NodeError, declare_section, run_node

MAX_FAILED_READS_S = 1.0  # a live camera silent this long is gone


class CameraNotFound(ConfigError):
    pass


def open_capture(device: str):
    """(cv2.VideoCapture, is_file) for an index, a /dev path or a video file; CameraNotFound else."""
    import cv2

    is_file = not (device.isdigit() or device.startswith("/dev/"))
    if is_file and not Path(device).is_file():
        raise CameraNotFound(f"camera not found: {device!r} is no V4L2 index, /dev/video path or video file")
    source = int(device) if device.isdigit() else device
    cap = cv2.VideoCapture(source) if is_file else cv2.VideoCapture(source, cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        raise CameraNotFound(f"camera not found: cannot open {device!r}"
                             + ("" if is_file else " with V4L2 (check /dev/video* and permissions)"))
    return cap, is_file


def to_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


try:
    from rclpy.node import Node as _NodeBase
except ImportError:
    _NodeBase = object


class CameraNode(_NodeBase):
    def __init__(self, config: CameraConfig | None = None, name: str = "camera", **node_kwargs):
        import cv2
        from sensor_msgs.msg import Image

        super().__init__(name, **node_kwargs)
        self.config = cfg = declare_section(self, "camera", config or CameraConfig())
        self._Image = Image
        self.cap, self.is_file = open_capture(cfg.device)
        if not self.is_file:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            self.cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        self.pub = self.create_publisher(Image, cfg.topic, 10)
        self.frames = 0
        self._failed = 0
        self.create_timer(1.0 / cfg.fps, self._on_tick)
        self.get_logger().info(f"camera {cfg.device!r} -> {cfg.topic} {cfg.width}x{cfg.height} at {cfg.fps:g} Hz")

    def _on_tick(self) -> None:
        import cv2

        ok, frame = self.cap.read()
        if not ok and self.is_file:  # loop the clip
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        if not ok:
            self._failed += 1
            if self._failed > MAX_FAILED_READS_S * self.config.fps:
                raise NodeError(f"camera {self.config.device!r} delivered no frame for {MAX_FAILED_READS_S:g} s")
            return
        self._failed = 0
        rgb = to_rgb(frame, self.config.width, self.config.height)
        msg = self._Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera"
        msg.height, msg.width = rgb.shape[:2]
        msg.encoding, msg.step = "rgb8", rgb.shape[1] * 3
        msg.data = rgb.tobytes()
        self.pub.publish(msg)
        self.frames += 1

    def close(self) -> None:
        self.cap.release()


def main(args=None) -> int:
    return run_node("camera_node", CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
