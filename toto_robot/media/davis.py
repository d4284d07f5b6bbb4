"""DAVIS-2017 folders: encoder/tracking reads them, sim/segmentation writes the embedded set in the
same layout; the format lives here, below both (docs/design.md, import rules).

    <root>/JPEGImages/<resolution>/<video>/00000.jpg ...     frames
    <root>/Annotations/<resolution>/<video>/00000.png ...    palette PNGs: index 0 background, 1..K objects
    <root>/ImageSets/<year>/<split>.txt                      one video name a line

Semi-supervised tracking gets the first frame's annotation and is scored on the others. The
objects of a video are the indices present in its first annotation. Later annotations holding
other indices (DAVIS-2016's 255, a stray colour) are counted per video and scored as background.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def palette() -> np.ndarray:
    """(256, 3) uint8: the PASCAL VOC colour map DAVIS annotations use (1 dark red, 2 green, 3 olive, ...)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[index] = (r, g, b)
    return colours


@dataclass
class Video:
    name: str
    frames: list[Path]
    annotations: list[Path]
    unknown_pixels: int = 0  # annotation pixels with an index that is not an object of the first frame
    unknown_frames: int = 0
    objects: list[int] = field(default_factory=list)

    def load_frames(self) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB."""
        from PIL import Image

        frames = []
        for path in self.frames:
            try:
                with Image.open(path) as image:
                    frames.append(np.asarray(image.convert("RGB")))
            except OSError as error:  # PIL.UnidentifiedImageError (an empty or corrupt file) is an OSError
                raise ValueError(f"video {self.name!r}: frame {path} is unreadable ({type(error).__name__})") from None
        return np.stack(frames)

    def load_masks(self) -> np.ndarray:
        """(T, H, W) uint8 object indices; sets `objects` from the first frame and counts unknown indices."""
        masks = np.stack([read_mask(path) for path in self.annotations])
        self.objects = [int(i) for i in np.unique(masks[0]) if i != 0]
        known = np.isin(masks, [0, *self.objects])
        self.unknown_pixels = int((~known).sum())
        self.unknown_frames = int((~known).any(axis=(1, 2)).sum())
        return np.where(known, masks, 0).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """A palette (or greyscale index) PNG -> (H, W) uint8 indices."""
    from PIL import Image

    image = Image.open(path)
    if image.mode not in ("P", "L"):
        raise ValueError(f"{path}: annotation in mode {image.mode}, not a palette PNG of object indices (DAVIS layout)")
    return np.asarray(image, dtype=np.uint8)


def write_mask(path: Path, mask: np.ndarray) -> None:
    """(H, W) uint8 indices -> a palette PNG as DAVIS writes them."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(palette().reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _files(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in suffixes) if directory.is_dir() else []


def read_davis(root, split: str = "val", year: str = "2017", resolution: str = "480p",
               videos: list[str] | None = None) -> list[Video]:
    """The videos of a DAVIS folder: `videos` if given, else the ImageSets list, else every frame folder.
    A video without frames, without annotations or with another count of them is a one-line ValueError naming it."""
    root = Path(root).expanduser()
    images, annotations = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    if not images.is_dir():
        raise FileNotFoundError(f"{images} not found: pass a DAVIS-2017 root (JPEGImages/, Annotations/, ImageSets/) "
                                f"and its resolution folder (480p or Full-Resolution)")
    if videos is None:
        listing = root / "ImageSets" / year / f"{split}.txt"
        if listing.is_file():
            videos = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        else:
            videos = sorted(p.name for p in images.iterdir() if p.is_dir())
    found = []
    for name in videos:
        frames = _files(images / name, FRAME_SUFFIXES)
        masks = _files(annotations / name, (".png",))
        if not frames:
            raise ValueError(f"video {name!r}: no frames in {images / name}")
        if not masks:
            raise ValueError(f"video {name!r}: no annotations in {annotations / name} (the first frame's mask is needed)")
        if [p.stem for p in masks] != [p.stem for p in frames]:
            raise ValueError(f"video {name!r}: {len(frames)} frames but {len(masks)} annotations, or their names differ "
                             f"(first {frames[0].name} vs {masks[0].name}): every frame needs its annotation to be scored")
        found.append(Video(name, frames, masks))
    if not found:
        raise ValueError(f"{root}: no videos to track (empty list)")
    return found


def write_listing(root: Path, names: list[str], split: str = "val", year: str = "2017") -> None:
    path = Path(root) / "ImageSets" / year / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names))
