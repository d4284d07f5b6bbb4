"""MP4 writing with PyAV, atomic so an interrupted run never leaves a truncated video behind.

Two kinds: viewable (H.264 yuv420p, what players and browsers show: rollouts, overlays) and
lossless (libx264rgb at qp 0, RGB kept bit for bit: the pre-training corpus, so pre-training sees
the pixels a deployed policy sees; yuv420p changed 27% of the FSQ codes of a raw render, issue 24).
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import av
import numpy as np

from toto_robot.io import atomic_write

CODECS = ("h264", "mpeg4")  # h264 where FFmpeg has an encoder for it; mpeg4 is always built in
LOSSLESS_CODEC = "libx264rgb"  # in PyAV's wheels; qp 0 with rgb24 decodes to the very same bytes


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column when one is odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _add_stream(container, fps: Fraction, width: int, height: int, lossless: bool):
    if lossless:
        try:
            stream = container.add_stream(LOSSLESS_CODEC, rate=fps, options={"qp": "0", "preset": "fast"})
        except (av.FFmpegError, ValueError):
            raise RuntimeError(f"lossless MP4 needs FFmpeg's {LOSSLESS_CODEC} encoder, which this PyAV build lacks; "
                               "install PyAV from its PyPI wheels") from None
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        return stream
    for codec in CODECS:
        try:
            stream = container.add_stream(codec, rate=fps)
        except (av.FFmpegError, ValueError):  # codec not built into this FFmpeg
            continue
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        return stream
    raise RuntimeError(f"no MP4 video encoder available among {CODECS}")


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float, lossless: bool = False) -> None:
    """Write HxWx3 uint8 frames to `path` as an MP4 (odd sizes are padded by one pixel); `lossless`
    keeps every RGB value (larger files that few players show)."""
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    first = np.asarray(frames[0])
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"frames must be HxWx3 uint8, got {first.shape} {first.dtype}")
    height, width = _even(first).shape[:2]
    with atomic_write(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = _add_stream(container, Fraction(fps).limit_denominator(1000), width, height, lossless)
            for frame in frames:
                image = av.VideoFrame.from_ndarray(_even(np.asarray(frame, dtype=np.uint8)), format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode())
