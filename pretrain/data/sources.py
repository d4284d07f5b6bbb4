"""Where pre-training media come from: source configs, file listing, splits and skip counting.

A source is one directory tree of videos or of images with a mixture weight (the paper mixes
20% ImageNet, 10% Ego4D, 10% Kinetics, 60% HowTo100M per batch, see `PAPER_MIX`). Bad media are
never fatal: readers raise `BadMediaError`, callers count it in a `SkipReport` and move on, and
the run ends with a short report of what was skipped and why.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
KINDS = {"video": VIDEO_EXTENSIONS, "image": IMAGE_EXTENSIONS}
# Share of each source's files held out for validation, by tokenization and by the tokenizer
# trainer's frames alike, so the tokenizer never trains on the transformer's validation files.
DEFAULT_VAL_FRACTION = 0.05


class BadMediaError(Exception):
    """A file that cannot be used. `reason` is a short category (the SkipReport key)."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = Path(path), reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass
class SourceConfig:
    """One directory tree of media.

    `exclude`: file-name glob patterns left out (e.g. near-duplicates). `group`: a regex searched
    in each file's path relative to `path`; files with the same match (e.g. two cameras of one
    robot episode) always land in the same train/val split, so validation never sees a
    training episode from another angle.
    """

    name: str
    path: str
    kind: str  # "video" or "image"
    weight: float
    exclude: tuple[str, ...] = ()
    group: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"source {self.name!r}: kind={self.kind!r}, use 'video' or 'image'")
        if not self.weight >= 0:
            raise ValueError(f"source {self.name!r}: weight={self.weight} must be >= 0")
        self.exclude = tuple(self.exclude)


# The paper's pre-training mix (section 4 of DESIGN.md). The paths are placeholders: these
# datasets need licences and terabytes, so download them yourself and point `path` at the
# extracted tree (any layout; files are found recursively by extension), e.g.
# `data.sources=paper data.root=/datasets`. ImageNet is used as single images packed 16 per
# sequence; the three video sets as 16-frame clips.
PAPER_MIX = (
    SourceConfig("imagenet", "data/imagenet", "image", 0.2),
    SourceConfig("ego4d", "data/ego4d", "video", 0.1),
    SourceConfig("kinetics", "data/kinetics", "video", 0.1),
    SourceConfig("howto100m", "data/howto100m", "video", 0.6),
)


def paper_mix(root: str | os.PathLike = "data") -> list[SourceConfig]:
    """`PAPER_MIX` with its placeholder `data/` prefix replaced by `root`."""
    return [
        SourceConfig(s.name, str(Path(root) / Path(s.path).name), s.kind, s.weight) for s in PAPER_MIX
    ]


def list_media(source: SourceConfig) -> list[Path]:
    """All media files of `source` under its path, recursively, sorted (hidden files skipped)."""
    root = Path(source.path)
    if not root.exists():
        raise FileNotFoundError(
            f"source {source.name!r}: {root} does not exist; download the data there or set the source's path"
        )
    extensions = KINDS[source.kind]
    candidates = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
    files = sorted(
        p
        for p in candidates
        if p.suffix.lower() in extensions
        and not p.name.startswith(".")
        and not any(fnmatch.fnmatch(p.name, pattern) for pattern in source.exclude)
    )
    if not files:
        raise ValueError(f"source {source.name!r}: no {source.kind} files ({', '.join(sorted(extensions))}) under {root}")
    return files


def _group_key(path: Path, source: SourceConfig) -> str:
    root = Path(source.path)
    rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
    if source.group:
        match = re.search(source.group, rel)
        if match:
            return match.group(0)
    return rel


def split_files(files: list[Path], source: SourceConfig, val_fraction: float) -> dict[str, list[Path]]:
    """Hold out whole files (whole groups) for validation, deterministically.

    Groups are ordered by a hash of their key (so the split does not depend on file order or the
    machine) and the first round(groups * val_fraction) go to "val", at least one when
    val_fraction > 0 and there are two or more groups. A single group stays in "train".
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(_group_key(path, source), []).append(path)
    keys = sorted(groups, key=lambda k: hashlib.sha1(f"{source.name}/{k}".encode()).hexdigest())
    n_val = round(len(keys) * val_fraction)
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    val = {k for k in keys[:n_val]}
    return {
        "train": sorted(p for k in keys if k not in val for p in groups[k]),
        "val": sorted(p for k in val for p in groups[k]),
    }


class SkipReport:
    """Counts skipped files by reason and keeps a few example paths of each for the report."""

    def __init__(self, examples: int = 3):
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.max_examples = examples

    def add(self, error_or_path, reason: str | None = None) -> None:
        """Count a `BadMediaError`, or a (path, reason) pair."""
        if isinstance(error_or_path, BadMediaError):
            path, reason = error_or_path.path, error_or_path.reason
        else:
            path = error_or_path
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(str(path))

    def merge(self, other: SkipReport) -> None:
        """Add another report's counts and examples (e.g. one chunk's into the run's)."""
        self.counts.update(other.counts)
        for reason, paths in other.examples.items():
            shown = self.examples.setdefault(reason, [])
            shown.extend(paths[: self.max_examples - len(shown)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def report(self) -> str:
        if not self.total:
            return "skipped files: none"
        lines = [f"skipped files: {self.total}"]
        for reason, count in sorted(self.counts.items(), key=lambda item: -item[1]):
            examples = ", ".join(self.examples.get(reason, []))
            lines.append(f"  {reason}: {count}" + (f" (e.g. {examples})" if examples else ""))
        return "\n".join(lines)

    def print(self) -> None:
        print(self.report())
