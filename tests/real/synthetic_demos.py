"""Synthetic episodes in the RPT convention for importer and BC tests (no real data, no tensorflow).

Frames are 480x640 noise; joint positions are random; the expert's action is learnable from the
proprioception: 7 joint deltas pulling the joints back toward 0 (-0.1 q) and the gripper closed
when joint 1 is positive. So a BC fit must beat the untrained actor on held-out episodes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def rpt_episode(rng: np.random.Generator, steps: int) -> dict[str, np.ndarray]:
    """One episode under the RLDS feature names: hand_image, joint_pos, gripper, action."""
    joints = rng.normal(size=(steps, 7)).astype(np.float32)
    gripper = (joints[:, 0] > 0).astype(np.float32)
    action = np.concatenate([-0.1 * joints, gripper[:, None]], axis=1).astype(np.float32)
    images = rng.integers(0, 256, size=(steps, 480, 640, 3), dtype=np.uint8)
    return {"hand_image": images, "joint_pos": joints, "gripper": gripper.astype(bool), "action": action}


def write_episodes(directory: Path, count: int, steps: int = 8, seed: int = 0) -> list[Path]:
    """`count` .npz episodes named ep_<i>.npz in `directory` (created); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = directory / f"ep_{i:03d}.npz"
        np.savez(path, **rpt_episode(rng, steps))
        paths.append(path)
    return paths
