"""Hand-camera frame -> encoder input: the one image path shared by demo import, BC training and
the policy node, so what the policy sees on the robot is bit for bit what it was trained on.

The RPT convention (docs/design.md section 9; RPT's public demos are 480x640 hand-camera frames):
crop the lower-centre 448x448 square, then resize to the encoder's resolution. For a 480x640
(rows x cols) frame the crop is

    rows 32..479  (the bottom 448 rows: the top 32 rows are dropped)
    cols 96..543  (centred: 96 columns dropped on each side)

i.e. `frame[32:480, 96:544]`. Lower, not centre, because the gripper fingers and the object
between them sit in the lower part of a hand camera's view. Frames of any other size use the
largest lower-centre square: side s = min(H, W), rows H-s..H-1, cols (W-s)//2 .. (W-s)//2+s-1.

Resizing is PIL's bilinear filter (antialiased when shrinking, as the pre-training and probe
pipelines resize): deterministic and free of cv2, which the main environment does not have.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

RPT_FRAME = (480, 640)  # (rows, cols) of RPT's hand camera
RPT_CROP = 448
# Saved with every imported demo file and policy checkpoint; a loader refuses another name, since a
# policy fed differently cropped frames would act on inputs it never saw.
PREPROCESSING = {"name": "rpt_lower_centre_crop", "rpt_frame": list(RPT_FRAME), "rpt_crop": RPT_CROP,
                 "other_sizes": "largest lower-centre square", "resize": "PIL bilinear"}


def crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the hand-camera crop of a height x width frame (see the module docstring)."""
    side = RPT_CROP if (height, width) == RPT_FRAME else min(height, width)
    return height - side, (width - side) // 2, side


def _check(frame, ndim: int, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB {what} in 0..255, got dtype {frame.dtype}")
    if frame.ndim != ndim or frame.shape[-1] != 3 or 0 in frame.shape:
        raise ValueError(f"expected a uint8 {what}, got shape {frame.shape}")
    return frame


def hand_camera_crop(frame) -> np.ndarray:
    """uint8 (H, W, 3) -> the lower-centre square (448x448 for a 480x640 frame), a view, no copy."""
    frame = _check(frame, 3, "frame (H, W, 3)")
    top, left, side = crop_box(*frame.shape[:2])
    return frame[top:top + side, left:left + side]


def preprocess_frame(frame, resolution: int) -> np.ndarray:
    """uint8 (H, W, 3) raw hand-camera frame -> uint8 (resolution, resolution, 3) encoder input."""
    square = hand_camera_crop(frame)
    if square.shape[0] == resolution:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(np.ascontiguousarray(square)).resize((resolution, resolution), Image.BILINEAR)
    return np.array(resized)  # a writable copy: torch.from_numpy warns on read-only PIL buffers


def preprocess_frames(frames, resolution: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, resolution, resolution, 3), each frame by `preprocess_frame`."""
    frames = _check(frames, 4, "batch of frames (T, H, W, 3)")
    return np.stack([preprocess_frame(f, resolution) for f in frames])
