"""Images and the geometry shared with video clips: short side to R, then a random R x R crop.

The paper resizes frames so the short side is R=128 and takes a random R x R crop; single
images (ImageNet) get the same treatment and 16 of them are packed into one sequence
([3, codes of image 1..16, 2]) so image and video sequences have the same length.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

from toto_robot.media.errors import BadMediaError


def resized_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the short side `resolution` and the aspect ratio kept (long side rounded)."""
    short = min(width, height)
    return (
        max(resolution, round(width * resolution / short)),
        max(resolution, round(height * resolution / short)),
    )


def resize_short_side(image: Image.Image | np.ndarray, resolution: int) -> np.ndarray:
    """HxWx3 uint8 with the short side `resolution` (bilinear, antialiased when shrinking)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    size = resized_size(*image.size, resolution)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    return np.asarray(image)


def random_crop_box(height: int, width: int, resolution: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left (y, x) of a uniformly random `resolution` square inside height x width."""
    if height < resolution or width < resolution:
        raise ValueError(f"cannot crop {resolution}x{resolution} from {height}x{width}")
    return int(rng.integers(0, height - resolution + 1)), int(rng.integers(0, width - resolution + 1))


def crop(array: np.ndarray, box: tuple[int, int], resolution: int) -> np.ndarray:
    """Crop (..., H, W, C) at `box`; the same box for every leading frame."""
    y, x = box
    return array[..., y : y + resolution, x : x + resolution, :]


def load_image(path: str | os.PathLike) -> Image.Image:
    """An RGB PIL image (grey, palette and alpha images converted); BadMediaError if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's palette-transparency warnings
            with Image.open(path) as image:
                return image.convert("RGB")
    except FileNotFoundError:
        raise BadMediaError(path, "missing") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = "empty file" if os.path.getsize(path) == 0 else "unreadable"
        raise BadMediaError(path, reason, str(error).splitlines()[0][:120] if str(error) else "") from None


def load_resized(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """An image file as uint8 (H, W, 3) with its short side `resolution`, ready for random crops."""
    return resize_short_side(load_image(path), resolution)


def sample_image(path: str | os.PathLike, rng: np.random.Generator, resolution: int = 128) -> np.ndarray:
    """One random `resolution` x `resolution` uint8 crop of an image file."""
    image = load_resized(path, resolution)
    return crop(image, random_crop_box(*image.shape[:2], resolution, rng), resolution)


def pack_groups(count: int, repeats: int, per_sequence: int, rng: np.random.Generator) -> np.ndarray:
    """Which image goes where: (sequences, per_sequence) indices into `count` images.

    Each image is used `repeats` times (every use gets its own crop), in random order; the last
    sequence is filled up with random images, so nothing is dropped and every row is full.
    """
    if count <= 0:
        return np.zeros((0, per_sequence), dtype=np.int64)
    uses = rng.permutation(np.repeat(np.arange(count), repeats))
    fill = (-len(uses)) % per_sequence
    uses = np.concatenate([uses, rng.integers(0, count, fill)])
    return uses.reshape(-1, per_sequence)
