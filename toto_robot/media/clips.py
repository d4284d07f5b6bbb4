"""Clip sampling per the paper: T=16 frames, every 4th frame, short side to R=128, random R x R crop.

Short videos: a clip spans (T-1)*stride+1 frames. When a video is shorter than that, the stride
is lowered (4, 3, 2, then 1) to the largest one that fits, so short clips (the robot episodes
are 35-160 frames) still give T real frames rather than being dropped or padded with repeats;
a video with fewer than T frames raises BadMediaError("too short") and is skipped and counted.
The crop is drawn once per clip and applied to every frame (the paper's R x R x T crop), and
everything random comes from the numpy Generator passed in, so a seed fixes the clip.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from toto_robot.media.images import crop, random_crop_box, resize_short_side
from toto_robot.media.errors import BadMediaError
from toto_robot.media.video import probe_video, read_clips


@dataclass(frozen=True)
class ClipSpec:
    frames: int = 16
    stride: int = 4
    resolution: int = 128

    def __post_init__(self):
        if self.frames < 1 or self.stride < 1 or self.resolution < 1:
            raise ValueError(f"clip frames={self.frames}, stride={self.stride}, resolution={self.resolution} must be >= 1")


def fitting_stride(num_frames: int, frames: int, stride: int) -> int | None:
    """The largest stride <= `stride` whose clip of `frames` fits in `num_frames`; None if none does."""
    for s in range(stride, 0, -1):
        if (frames - 1) * s + 1 <= num_frames:
            return s
    return None


def clip_indices(num_frames: int, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one clip at a uniformly random start (stride lowered for short videos)."""
    stride = fitting_stride(num_frames, spec.frames, spec.stride)
    if stride is None:
        raise ValueError(f"{num_frames} frames cannot hold a clip of {spec.frames}")
    span = (spec.frames - 1) * stride + 1
    start = int(rng.integers(0, num_frames - span + 1))
    return start + stride * np.arange(spec.frames)


def crop_clip(frames: np.ndarray, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) frames -> (T, R, R, 3): short side to R (if not already), one random crop for all."""
    if min(frames.shape[1:3]) != resolution:
        frames = np.stack([resize_short_side(frame, resolution) for frame in frames])
    return np.ascontiguousarray(crop(frames, random_crop_box(*frames.shape[1:3], resolution, rng), resolution))


def sample_clips(path: str | os.PathLike, count: int, spec: ClipSpec, rng: np.random.Generator,
                 stats: dict | None = None, per_minute: float | None = None, threads: bool = True) -> np.ndarray:
    """`count` random clips of one video as uint8 (count, T, R, R, 3): one open, a seek per clip.

    `per_minute`: instead, round(minutes x per_minute) clips, at least 1 (`count` when the file
    states no frame rate). `stats["decoded"]` adds up the frames the codec decoded."""
    probe = probe_video(path)
    num_frames = probe.frames
    if per_minute is not None and probe.fps > 0:
        count = max(1, round(num_frames / probe.fps / 60 * per_minute))
    if fitting_stride(num_frames, spec.frames, spec.stride) is None:
        raise BadMediaError(path, "too short", f"{num_frames} frames < {spec.frames}")
    indices = [clip_indices(num_frames, spec, rng) for _ in range(count)]
    clips = read_clips(path, indices, short_side=spec.resolution, stats=stats, threads=threads)
    return np.stack([crop_clip(clip, spec.resolution, rng) for clip in clips])


def sample_clip(path: str | os.PathLike, rng: np.random.Generator, spec: ClipSpec = ClipSpec()) -> np.ndarray:
    """One random clip, uint8 (T, R, R, 3)."""
    return sample_clips(path, 1, spec, rng)[0]
