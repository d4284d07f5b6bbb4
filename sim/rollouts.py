"""Raw camera views of scripted-expert episodes, straight from the renderer (no codec in between).

The tracking set (`sim/segmentation.py`) and the token-stability measurement
(`pretrain/token_stability.py`) both need an expert episode as the cameras saw it, every
`frame_step`-th control step; the tracking set also wants MuJoCo's per-pixel geom ids.
"""
from __future__ import annotations

import numpy as np


def episode_views(env, expert, seed: int, frames: int, frame_step: int, cameras: list[str],
                  segmentation: bool = False) -> dict:
    """{camera: (T, H, W, 3) uint8} of one expert episode; with `segmentation`, {camera: (frames, geom ids + 1)}.

    Stops after `frames` views or when the episode ends, whichever comes first."""
    obs, _ = env.reset(seed=seed)
    views = {camera: ([], []) for camera in cameras}
    taken, step, done = 0, 0, False
    while taken < frames and not done:
        if step % frame_step == 0:
            for camera, (images, masks) in views.items():
                images.append(env.render_camera(camera))
                if segmentation:
                    masks.append(env.render_segmentation(camera) + 1)
            taken += 1
        obs, _, terminated, truncated, _ = env.step(expert(obs["state"]))
        done, step = terminated or truncated, step + 1
    if segmentation:
        return {camera: (np.stack(images), np.stack(masks)) for camera, (images, masks) in views.items()}
    return {camera: np.stack(images) for camera, (images, _) in views.items()}


def expert_videos(tasks, seed: int, frames: int, cameras, image_size: int = 128) -> dict[str, np.ndarray]:
    """{"<task>/<camera>": (T, H, W, 3)}: one expert episode per task, seeded `seed`, every control step."""
    from sim.env import TotoTaskEnv  # (lazy: mujoco)
    from sim.experts import make_expert  # (lazy: mujoco)

    videos = {}
    for task in tasks:
        env = TotoTaskEnv(task, image_size=image_size, obs_mode="state")
        try:
            views = episode_views(env, make_expert(task, env.config), seed, frames, 1, list(cameras))
        finally:
            env.close()
        videos.update({f"{task}/{camera}": images for camera, images in views.items()})
    return videos
