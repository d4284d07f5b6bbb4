"""The embedded tracking set: scripted-expert episodes rendered with ground-truth object masks,
written in DAVIS-2017's layout (toto_robot/media/davis.py), so `python -m encoder.track` needs no download.
Frames are PNGs (DAVIS's are JPEGs; the reader takes both): JPEG q95 changed 12% of the FSQ codes
of a raw render, and tracking should see what a policy sees.

Objects (palette indices): 1 the task's object (the cube, or the drawer with its handle), 2 the
gripper's fingers (every body below a hand joint: the Panda's two fingers, the Allegro hand's
sixteen links). Masks come from MuJoCo's segmentation rendering of the same scene and camera as
the RGB frame; each episode is one video per camera (third_person: small objects moving in a
wide view; wrist: large ones, the fingers nearly still). Episode seeds start at `seed` (5000 by
default): the pre-training corpus uses 0.., the probes 1000.., so these episodes are unseen.
An object absent from a video's first frame (the drawer, from the Franka's wrist) is not tracked.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toto_robot.media.davis import write_listing, write_mask
from sim.rollouts import episode_views
from sim.tasks import CABINET, CAMERAS, PICK, TASKS
from toto_robot.io import atomic_write

OBJECT_BODY = {PICK: "cube", CABINET: "drawer"}
TASK_OBJECT, FINGERS = 1, 2
RESOLUTION_DIR = "{size}p"  # JPEGImages/128p/...: the frames' real size, not DAVIS's 480p


def _subtree(model, roots: set[int]) -> set[int]:
    """Bodies in `roots` and every body below them."""
    inside = set(roots)
    for body in range(model.nbody):  # parents come before children in MuJoCo's body order
        if int(model.body_parentid[body]) in inside and body != 0:
            inside.add(body)
    return inside


def geom_labels(env) -> np.ndarray:
    """(ngeom + 1,) uint8: the label of each geom id, shifted by one (index 0 is 'no geom', -1)."""
    m = env.model
    hand = {int(m.jnt_bodyid[m.joint(name).id]) for name in env.robot.hand_joints}
    fingers = _subtree(m, hand)
    task_object = _subtree(m, {m.body(OBJECT_BODY[env.task.kind]).id})
    labels = np.zeros(m.ngeom + 1, dtype=np.uint8)
    for geom in range(m.ngeom):
        body = int(m.geom_bodyid[geom])
        labels[geom + 1] = TASK_OBJECT if body in task_object else FINGERS if body in fingers else 0
    return labels


def _name(task: str, camera: str, seed: int) -> str:
    return f"{task}_{camera}_{seed:05d}"


def write_mask_set(root, tasks: list[str] | None = None, episodes_per_task: int = 1, seed: int = 5000, frames: int = 60,
                   frame_step: int = 1, cameras: tuple[str, ...] = CAMERAS, image_size: int = 128, progress: bool = True) -> dict:
    """Write the set under `root` (kept if already complete with these settings); returns where and what.

    {"root", "resolution" (the JPEGImages/Annotations sub-folder), "videos"}."""
    from PIL import Image
    from tqdm import tqdm

    from sim.env import TotoTaskEnv  # (lazy: mujoco)
    from sim.experts import make_expert  # (lazy: mujoco)

    tasks, cameras = list(tasks or TASKS), list(cameras)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"tracking set: unknown task(s) {unknown}; valid: {', '.join(TASKS)}")
    if not cameras or set(cameras) - set(CAMERAS):
        raise ValueError(f"tracking set: cameras={cameras}; use some of {list(CAMERAS)}")
    root = Path(root)
    resolution = RESOLUTION_DIR.format(size=image_size)
    settings = {"tasks": tasks, "episodes_per_task": episodes_per_task, "seed": seed, "frames": frames,
                "frame_step": frame_step, "cameras": cameras, "image_size": image_size, "frames_as": "png"}
    marker = root / "mask_set.json"
    names = [_name(task, camera, seed + i) for task in tasks for i in range(episodes_per_task) for camera in cameras]
    if marker.is_file():
        if json.loads(marker.read_text()) == settings:
            return {"root": str(root), "resolution": resolution, "videos": names}
        raise ValueError(f"{root} holds a tracking set made with other settings ({marker}): delete it or use another cache_dir")
    bar = tqdm(total=len(names), desc="tracking set", unit="video", disable=not progress)
    for task in tasks:
        env = TotoTaskEnv(task, image_size=image_size, obs_mode="state")
        expert, labels = make_expert(task, env.config), geom_labels(env)
        for i in range(episodes_per_task):
            views = episode_views(env, expert, seed + i, frames, frame_step, cameras, segmentation=True)
            for camera, (images, geoms) in views.items():
                masks = labels[geoms]
                name = _name(task, camera, seed + i)
                for t, (image, mask) in enumerate(zip(images, masks)):
                    frame_path = root / "JPEGImages" / resolution / name / f"{t:05d}.png"  # lossless, as the renderer saw it
                    frame_path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image).save(frame_path)
                    write_mask(root / "Annotations" / resolution / name / f"{t:05d}.png", mask)
                bar.update(1)
        env.close()
    bar.close()
    write_listing(root, names)
    with atomic_write(marker) as tmp:  # last: a set cut short is redone, never half-read
        tmp.write_text(json.dumps(settings, indent=1))
    return {"root": str(root), "resolution": resolution, "videos": names}
