"""Render a 4 x 2 picture grid of the tasks (rows) seen from the wrist and third-person cameras.

Why: a quick visual check that every scene and camera shows something useful (the object in
view, nothing hidden, sane lighting), and an image for the docs. Frames are taken mid-episode,
after ~25 expert steps from a fixed-seed reset, so the hand is near the object; an expert that
errors (some are still being tuned) falls back to the reset frame instead of failing the grid.

    python -m sim.make_task_grid --out docs/tasks.png --size 224
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sim.tasks import CAMERAS, TASKS

LABEL_PAD = 22  # pixels reserved for the column labels (top) and row labels (left, scaled below)
BACKGROUND = (255, 255, 255)


def task_frames(task: str, size: int, steps: int = 25, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """(frames per camera, note) for one task; note says whether the expert rollout was used."""
    from sim.env import TotoTaskEnv  # (lazy: mujoco)
    from sim.experts import make_expert  # (lazy: mujoco)

    env = TotoTaskEnv(task, obs_mode="proprio+state", image_size=size)
    try:
        obs, _ = env.reset(seed=seed)
        note = f"expert x{steps}"
        try:
            expert = make_expert(task, env.config)
            for _ in range(steps):
                obs, _, terminated, truncated, _ = env.step(expert(obs["state"]))
                if terminated or truncated:
                    break
        except Exception as error:  # experts under tuning may raise; show the reset frame instead
            note = f"reset frame ({type(error).__name__})"
            env.reset(seed=seed)
        return {camera: env.render_camera(camera) for camera in CAMERAS}, note
    finally:
        env.close()


def row_label_width(size: int) -> int:
    """Left margin holding the task names; wide enough for 'franka_cabinet' in the default font."""
    return max(110, size // 2)


def compose_grid(frames: dict[str, dict[str, np.ndarray]], size: int) -> Image.Image:
    """Grid image: one row per task (label on the left), one column per camera (label on top)."""
    font = ImageFont.load_default()
    row_label_w = row_label_width(size)
    width = row_label_w + size * len(CAMERAS)
    height = LABEL_PAD + size * len(frames)
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for col, camera in enumerate(CAMERAS):
        draw.text((row_label_w + col * size + 4, 4), camera.replace("_", " "), fill=(0, 0, 0), font=font)
    for row, (task, images) in enumerate(frames.items()):
        top = LABEL_PAD + row * size
        draw.text((4, top + size // 2 - 6), task, fill=(0, 0, 0), font=font)
        for col, camera in enumerate(CAMERAS):
            grid.paste(Image.fromarray(images[camera]), (row_label_w + col * size, top))
    return grid


def cell_box(row: int, col: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a picture cell in the grid; used by tests."""
    left = row_label_width(size) + col * size
    top = LABEL_PAD + row * size
    return left, top, left + size, top + size


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/tasks.png"))
    parser.add_argument("--size", type=int, default=224, help="square frame size in pixels")
    parser.add_argument("--steps", type=int, default=25, help="expert steps before the frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    frames = {}
    for task in TASKS:
        frames[task], note = task_frames(task, args.size, args.steps, args.seed)
        print(f"{task}: {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    compose_grid(frames, args.size).save(args.out)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
