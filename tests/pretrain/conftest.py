"""Tiny media made on the spot with PyAV/PIL, and a deterministic fake tokenizer.

Video frame t is: red = 6 t everywhere (so the decoded frame index can be read back from the
mean red value, through lossy compression), green a horizontal and blue a vertical gradient
(a static picture, so crops of different frames of one clip must look alike).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

RED_STEP = 6


def synthetic_frames(count: int, width: int, height: int) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = (RED_STEP * np.arange(count) % 256)[:, None, None]
    frames[..., 1] = np.linspace(0, 255, width)[None, None, :]
    frames[..., 2] = np.linspace(0, 255, height)[None, :, None]
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 10, gop: int | None = None, faststart=False) -> Path:
    """Write frames with PyAV (mpeg4); the container follows the suffix (.mp4, .mkv).

    `faststart` puts the MP4 header first, so a file cut short still opens and claims all frames.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 20_000_000  # near-lossless, so frame indices survive compression
        if gop:
            stream.codec_context.gop_size = gop
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def frame_index(frame: np.ndarray) -> int:
    """Which synthetic frame this decoded (maybe resized/cropped) frame was."""
    return int(round(frame[..., 0].astype(np.float64).mean() / RED_STEP))


def write_image(path: Path, size=(60, 40), mode="RGB", seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def corrupt_copies(good: Path, directory: Path) -> dict[str, Path]:
    """Random bytes, the first half of a real mp4, and an empty file."""
    directory.mkdir(parents=True, exist_ok=True)
    corrupt = directory / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    truncated = directory / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    empty = directory / "empty.mp4"
    empty.write_bytes(b"")
    return {"corrupt": corrupt, "truncated": truncated, "empty": empty}


class FakeTokenizer:
    """Mean colour of each 8x8 block, 4 levels a channel: 64 codes, deterministic."""

    downsample, codebook_size, discrete, kind = 8, 64, True, "fake"

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        assert frames.dtype == torch.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
        n, h, w, _ = frames.shape
        g = h // self.downsample
        means = frames.float().reshape(n, g, 8, w // 8, 8, 3).mean((2, 4))
        levels = (means // 64).long().clamp(0, 3)
        return levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2]


class FakePatchTokenizer(FakeTokenizer):
    """A continuous tokenizer: shards must hold pixels."""

    discrete, codebook_size, kind = False, None, "patch"


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Videos (small, larger, long) and the three kinds of broken file."""
    root = tmp_path_factory.mktemp("media")
    small = write_video(root / "small.mp4", synthetic_frames(40, 64, 48))
    large = write_video(root / "large.mp4", synthetic_frames(40, 160, 120))
    header_first = write_video(root / "header_first.mp4", synthetic_frames(40, 64, 48), faststart=True)
    cut = root / "bad" / "cut_after_header.mp4"
    cut.parent.mkdir()
    cut.write_bytes(header_first.read_bytes()[: header_first.stat().st_size // 2])
    return {
        "small": small,
        "large": large,
        "mkv": write_video(root / "small.mkv", synthetic_frames(40, 64, 48)),
        "long": write_video(root / "long.mp4", synthetic_frames(42, 32, 32), gop=8),
        "cut_after_header": cut,
        **corrupt_copies(small, root / "bad"),
    }
