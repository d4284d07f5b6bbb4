"""Probe datasets: labelled images or video clips as uint8 arrays at the encoder's resolution.

Four sources, one shape of result (`ProbeDataset`: classes + a train and a val `Split`):

    digits        scikit-learn's load_digits (1,797 real 8x8 handwritten digits, 10 classes),
                  upscaled to the encoder resolution, grey -> RGB; ships with scikit-learn
    ImageFolder   root/<class>/<image>; root/train + root/val when both exist (ImageNet layout)
    robot         scripted-expert episodes of the four sim tasks recorded with sim.record into a
                  cache directory (once); label = task name; both cameras of an episode stay in
                  one split so validation never sees a training episode from another angle
    CSV           Kinetics style `path,label` rows (paths relative to the CSV's folder)

Samples are decoded lazily, one at a time, by the decoders of pretrain/data (PyAV for video).
Training clips are the paper's clip sampling (random start and crop, toto_robot/media/clips.py,
from a generator seeded by (seed, index) so a rerun sees the same clips; `train_clips` of them
a video); validation clips and all images get the deterministic view (centre crop, the clip
centred in time). A file that cannot be read raises BadMediaError, which feature extraction
counts and skips. Splits are stratified by class with a fixed seed.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toto_robot.media.clips import ClipSpec, fitting_stride, sample_clips
from toto_robot.media.images import crop, load_image, resize_short_side
from toto_robot.media.errors import BadMediaError
from toto_robot.media.kinds import IMAGE_EXTENSIONS
from toto_robot.media.video import probe_video, read_frames

ROBOT_TASKS = ("franka_pick", "franka_cabinet", "kuka_pick", "kuka_cabinet")


@dataclass
class Split:
    """Samples of one split: `items[i]` is what `load(item, train, rng)` turns into an array."""

    items: list
    labels: np.ndarray  # int64 class index per item
    load: Callable  # (item, train: bool, rng) -> uint8 (H, W, 3) or (T, H, W, 3)
    train: bool  # training samples get random clips / crops

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, i: int, seed: int) -> np.ndarray:
        """Sample i as uint8 at the encoder resolution; BadMediaError if its file is unusable."""
        return self.load(self.items[i], self.train, np.random.default_rng([seed, i]))


@dataclass
class ProbeDataset:
    name: str
    kind: str  # "image" or "video"
    classes: list[str]
    train: Split
    val: Split
    info: dict = field(default_factory=dict)  # provenance for results.json
    frames: int = 1  # frames a sample: 1 for images, T for clips


# --- splitting --------------------------------------------------------------------------------------

def stratified_split(labels: np.ndarray, val_fraction: float, seed: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: per class, round(val_fraction * groups) whole groups go to val.

    `groups` (one key per sample, default: each sample its own group) keeps related samples, e.g.
    two cameras of one episode, on the same side. Every class with two or more groups gets at
    least one val and one train group, so every class is scored.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in (0, 1)")
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        keys = np.unique(groups[labels == label])
        keys = keys[rng.permutation(len(keys))]
        n_val = int(round(len(keys) * val_fraction))
        if len(keys) >= 2:
            n_val = min(max(n_val, 1), len(keys) - 1)
        val |= (labels == label) & np.isin(groups, keys[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most `limit` of n samples, a seeded random subset in original order."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 2:
        raise ValueError(f"limit={limit}: need at least 2 samples")
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


# --- geometry ---------------------------------------------------------------------------------------

def center_square(frames: np.ndarray, resolution: int) -> np.ndarray:
    """(..., H, W, 3) with the short side already `resolution` -> the centre R x R crop."""
    h, w = frames.shape[-3:-1]
    return np.ascontiguousarray(crop(frames, ((h - resolution) // 2, (w - resolution) // 2), resolution))


def center_image(image, resolution: int) -> np.ndarray:
    """Short side to R, then the centre crop: for validation and, for frozen probes, training too.

    Probes train on features extracted once, so a fresh random crop every epoch would not exist
    anyway; one fixed random crop would only make training images worse than validation ones.
    """
    return center_square(resize_short_side(image, resolution), resolution)


def center_clip_indices(num_frames: int, spec: ClipSpec) -> np.ndarray:
    """Frame indices of the clip centred in time (stride lowered to fit, as in training clips)."""
    stride = fitting_stride(num_frames, spec.frames, spec.stride)
    span = (spec.frames - 1) * stride + 1
    return (num_frames - span) // 2 + stride * np.arange(spec.frames)


def load_clip(path: str | os.PathLike, spec: ClipSpec, train: bool, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, R, R, 3): a random clip and crop (toto_robot/media/clips.py) or the centred view."""
    if train:
        return sample_clips(path, 1, spec, rng)[0]
    num_frames = probe_video(path).frames
    if fitting_stride(num_frames, spec.frames, spec.stride) is None:
        raise BadMediaError(path, "too short", f"{num_frames} frames < {spec.frames}")
    frames = read_frames(path, center_clip_indices(num_frames, spec), short_side=spec.resolution)
    return center_square(frames, spec.resolution)


# --- image datasets ---------------------------------------------------------------------------------

def digits_dataset(resolution: int, val_fraction: float = 0.2, seed: int = 0, limit: int | None = None) -> ProbeDataset:
    """scikit-learn's 1,797 real 8x8 digits, upscaled (bilinear) to `resolution`, grey -> RGB."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = subsample(len(digits.target), limit, seed)
    pixels = np.round(digits.images[keep] * (255 / 16)).astype(np.uint8)  # values 0..16
    labels = digits.target[keep].astype(np.int64)

    def load(index, train, rng):
        grey = Image.fromarray(pixels[index]).resize((resolution, resolution), Image.BILINEAR)
        return np.repeat(np.asarray(grey)[..., None], 3, axis=-1)

    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    classes = [str(d) for d in range(10)]
    return ProbeDataset("digits", "image", classes, Split(list(train_idx), labels[train_idx], load, True),
                        Split(list(val_idx), labels[val_idx], load, False), {"source": "sklearn.datasets.load_digits"})


def _image_files(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        files += found
        labels += [label] * len(found)
    return classes, files, np.asarray(labels, dtype=np.int64)


def image_folder_dataset(root: str | os.PathLike, resolution: int, val_fraction: float = 0.2, seed: int = 0,
                         limit: int | None = None) -> ProbeDataset:
    """root/<class>/**/<image>; with root/train and root/val both present, those are the splits."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image dataset {root} is not a directory (expected <root>/<class>/<images>)")

    def load(path, train, rng):
        return center_image(load_image(path), resolution)

    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    if presplit:
        classes, files, labels = _image_files(root / "train")
        val_classes, val_files, val_labels = _image_files(root / "val")
        if val_classes != classes:
            raise ValueError(f"{root}/train and {root}/val have different class folders")
        keep, val_keep = subsample(len(files), limit, seed), subsample(len(val_files), limit, seed)
        train_items, train_labels = [files[i] for i in keep], labels[keep]
        val_items, val_labels = [val_files[i] for i in val_keep], val_labels[val_keep]
    else:
        classes, files, labels = _image_files(root)
        keep = subsample(len(files), limit, seed)
        files, labels = [files[i] for i in keep], labels[keep]
        train_idx, val_idx = stratified_split(labels, val_fraction, seed) if len(files) else ([], [])
        train_items, train_labels = [files[i] for i in train_idx], labels[train_idx]
        val_items, val_labels = [files[i] for i in val_idx], labels[val_idx]
    if len(classes) < 2 or not len(train_items) or not len(val_items):
        raise ValueError(f"image dataset {root}: need >= 2 class folders with images in both splits "
                         f"(found {len(classes)} classes, {len(train_items)} train / {len(val_items)} val images)")
    return ProbeDataset(root.name, "image", classes, Split(train_items, train_labels, load, True),
                        Split(val_items, val_labels, load, False), {"source": str(root), "presplit": presplit})


# --- video datasets ---------------------------------------------------------------------------------

def read_label_csv(path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[list[Path], list[str]]:
    """(video paths, label names) of a CSV with a header holding `path` and `label` columns."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"video CSV {path} not found (expected a file with path,label columns)")
    base = Path(root).expanduser() if root else path.parent
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the header must name path and label "
                             f"(found {', '.join(columns) or 'no header'})")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    rows = [r for r in rows if r["path"] and r["label"]]
    if not rows:
        raise ValueError(f"{path}: no rows with both a path and a label")
    return [base / r["path"] for r in rows], [r["label"] for r in rows]


def _video_split(paths, labels, spec: ClipSpec, train: bool, clips: int = 1) -> Split:
    """`clips` samples per video when training (each its own random clip), one when not."""
    repeat = clips if train else 1
    items = [p for p in paths for _ in range(repeat)]
    return Split(items, np.repeat(np.asarray(labels, dtype=np.int64), repeat),
                 lambda item, is_train, rng: load_clip(item, spec, is_train, rng), train)


def csv_video_dataset(csv_path: str | os.PathLike, spec: ClipSpec, val_csv: str | os.PathLike | None = None,
                      root: str | None = None, val_fraction: float = 0.2, seed: int = 0, train_clips: int = 1,
                      limit: int | None = None) -> ProbeDataset:
    """Kinetics-style `path,label` CSV(s): a separate `val_csv`, or a stratified split of one CSV."""
    paths, names = read_label_csv(csv_path, root)
    val_paths, val_names = read_label_csv(val_csv, root) if val_csv else ([], [])
    classes = sorted(set(names) | set(val_names))
    if len(classes) < 2:
        raise ValueError(f"{csv_path}: need at least 2 labels, found {classes}")
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([index[n] for n in names], dtype=np.int64)
    keep = subsample(len(paths), limit, seed)
    paths, labels = [paths[i] for i in keep], labels[keep]
    if val_csv:
        val_keep = subsample(len(val_paths), limit, seed)
        val_paths = [val_paths[i] for i in val_keep]
        val_labels = np.asarray([index[val_names[i]] for i in val_keep], dtype=np.int64)
    else:
        train_idx, val_idx = stratified_split(labels, val_fraction, seed)
        val_paths, val_labels = [paths[i] for i in val_idx], labels[val_idx]
        paths, labels = [paths[i] for i in train_idx], labels[train_idx]
    return ProbeDataset(Path(csv_path).stem, "video", classes, _video_split(paths, labels, spec, True, train_clips),
                        _video_split(val_paths, val_labels, spec, False),
                        {"source": str(csv_path), "val_csv": str(val_csv) if val_csv else None,
                         "frames": spec.frames, "stride": spec.stride}, spec.frames)


RenderVideos = Callable[[Path, int, int, int, bool], None]  # (out, episodes_per_task, image_size, seed, progress)


def robot_dataset(cache_dir: str | os.PathLike, spec: ClipSpec, render: RenderVideos, episodes_per_task: int = 20,
                  seed: int = 1000, val_fraction: float = 0.3, train_clips: int = 2, progress: bool = True) -> ProbeDataset:
    """Sim episodes labelled by task (4 classes), recorded once into cache_dir/<R>px_seed<seed>.

    `render` writes <out>/<task>/videos/episode_*.mp4 (pretrain.data.embedded.record_robot_videos,
    passed in by encoder/probe.py: encoder/ does not import sim/, docs/design.md). The default seed
    (1000) keeps these episodes apart from the pre-training corpus (seeds 0..), so the probe
    scores unseen episodes.
    """
    out = Path(cache_dir).expanduser() / f"{spec.resolution}px_seed{seed}"
    render(out, episodes_per_task, spec.resolution, seed, progress)
    paths, labels, groups = [], [], []
    for label, task in enumerate(ROBOT_TASKS):
        for path in sorted((out / task / "videos").glob("episode_*.mp4")):
            episode = int(path.name.split("_")[1])
            if episode < episodes_per_task:
                paths.append(path)
                labels.append(label)
                groups.append(f"{task}/{episode}")
    labels = np.asarray(labels, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, val_fraction, seed, groups)
    return ProbeDataset(
        "robot", "video", list(ROBOT_TASKS),
        _video_split([paths[i] for i in train_idx], labels[train_idx], spec, True, train_clips),
        _video_split([paths[i] for i in val_idx], labels[val_idx], spec, False),
        {"source": str(out), "episodes_per_task": episodes_per_task, "frames": spec.frames, "stride": spec.stride},
        spec.frames,
    )
