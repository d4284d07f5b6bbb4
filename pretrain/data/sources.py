"""Where pre-training media come from: source configs, file listing and train/val splits.

A source is one directory tree of videos or of images with a mixture weight (the paper mixes
20% ImageNet, 10% Ego4D, 10% Kinetics, 60% HowTo100M per batch, see `PAPER_MIX`). Reading the
files, and counting the bad ones, is toto_robot/media/.
"""
from __future__ import annotations

import contextlib
import csv
import fnmatch
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from toto_robot.media.kinds import MEDIA_KINDS
from toto_robot.io import atomic_write

# Share of each source's files held out for validation, by tokenization and by the tokenizer
# trainer's frames alike, so the tokenizer never trains on the transformer's validation files.
DEFAULT_VAL_FRACTION = 0.05
MANIFEST_SUFFIXES = frozenset({".csv", ".txt", ".lst"})
# folders that hold a dataset's evaluation split: under a source root they must be excluded
EVAL_FOLDERS = frozenset({"val", "validation"})


@dataclass
class SourceConfig:
    """One directory tree of media, or a manifest listing them.

    `path`: a directory (walked recursively, symlinks followed), one media file, or a manifest
    (.csv with a `path` column or paths in the first column; .txt/.lst with one path per line,
    optionally followed by whitespace and a label; relative paths are relative to the manifest's
    folder; labels are read past, pre-training does not use them).
    `exclude`: glob patterns matched against each file's and folder's name and its path relative
    to the source's folder (`val`, `val/*`, `*_dup.mp4`); a matching folder is not walked. A
    folder named val or validation under a source must be excluded: it is the dataset's
    evaluation split, and pre-training on it would leak into every evaluation.
    `group`: a regex searched in each file's relative path; files with the same match (e.g. two
    cameras of one robot episode) always land in the same train/val split.
    `clips_per_video` (else tokenize.clips_per_video) or `clips_per_minute` (clips from each
    video's duration, at least 1): long-video sources like HowTo100M want more than a fixed 4.
    """

    name: str
    path: str
    kind: str  # "video" or "image"
    weight: float
    exclude: tuple[str, ...] = ()
    group: str | None = None
    clips_per_video: int | None = None
    clips_per_minute: float | None = None

    def __post_init__(self):
        if self.kind not in MEDIA_KINDS:
            raise ValueError(f"source {self.name!r}: kind={self.kind!r}, use 'video' or 'image'")
        if not self.weight >= 0:
            raise ValueError(f"source {self.name!r}: weight={self.weight} must be >= 0")
        self.exclude = tuple(self.exclude)
        if self.clips_per_video is not None and self.clips_per_video < 1:
            raise ValueError(f"source {self.name!r}: clips_per_video={self.clips_per_video} must be >= 1")
        if self.clips_per_minute is not None and not self.clips_per_minute > 0:
            raise ValueError(f"source {self.name!r}: clips_per_minute={self.clips_per_minute} must be > 0")
        if self.clips_per_video is not None and self.clips_per_minute is not None:
            raise ValueError(f"source {self.name!r}: set clips_per_video or clips_per_minute, not both")

    @functools.cached_property
    def root(self) -> Path:
        """The folder relative paths of this source's files are taken from (one stat, not one a file)."""
        path = Path(self.path)
        return path if path.is_dir() else path.parent

    def relative(self, path: Path) -> str:
        """`path` relative to the source's folder (posix), or absolute when it lies outside."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


# The paper's pre-training mix (docs/design.md section 8). The paths are placeholders: these
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


_LISTED: dict[str, list[Path]] | None = None  # inside `listed_once`: each source is walked once


@contextlib.contextmanager
def listed_once():
    """Within this block (a pipeline run), each source is walked once however many stages list it;
    outside it, `list_media` always walks (files may have been added since)."""
    global _LISTED
    outer, _LISTED = _LISTED, ({} if _LISTED is None else _LISTED)
    try:
        yield
    finally:
        _LISTED = outer


def _listing_key(source: SourceConfig) -> str:
    return json.dumps([str(Path(source.path).resolve()), source.kind, list(source.exclude)])


def _excluded(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def _walk(root: Path, source: SourceConfig) -> list[Path]:
    """Files under `root`, following symlinked folders (each real folder once: no loops)."""
    files, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        rel_folder = os.path.relpath(folder, root)
        kept = []
        for sub in sorted(subfolders):
            rel = sub if rel_folder == "." else f"{rel_folder}/{sub}"
            if sub.startswith(".") or _excluded(rel, sub, source.exclude):
                continue
            if sub.lower() in EVAL_FOLDERS:
                raise ValueError(f"source {source.name!r}: {root / rel} looks like the dataset's evaluation split; "
                                 f"add exclude: [{rel}] to the source (or point path at the training folder)")
            kept.append(sub)
        subfolders[:] = kept
        for name in names:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if not _excluded(rel, name, source.exclude):
                files.append(Path(folder) / name)
    return files


def _read_manifest(path: Path, source: SourceConfig) -> list[Path]:
    """Paths of a .csv (a `path` column, else the first) or .txt/.lst (first field of each line)."""
    rows: list[str] = []
    with open(path, newline="") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.reader(f)
            header = next(reader, [])
            names = [h.strip().lower() for h in header]
            column = names.index("path") if "path" in names else 0
            if column == 0 and header and Path(header[0]).suffix.lower() in MEDIA_KINDS[source.kind]:
                rows.append(header[0])  # no header: the first row is data
            rows += [row[column] for row in reader if len(row) > column]
        else:
            rows = [line.split()[0] for line in f if line.strip() and not line.lstrip().startswith("#")]
    base = path.parent
    return [Path(r) if Path(r).is_absolute() else base / r for r in (r.strip() for r in rows) if r]


def list_media(source: SourceConfig) -> list[Path]:
    """The media files of `source` (a folder walked recursively, one file, or a manifest), sorted;
    hidden and excluded files left out, wrong extensions ignored. Inside `listed_once` each source is walked once."""
    key = _listing_key(source)
    if _LISTED is not None and key in _LISTED:
        return list(_LISTED[key])
    root = Path(source.path)
    if not root.exists():
        raise FileNotFoundError(
            f"source {source.name!r}: {root} does not exist; download the data there or set the source's path"
        )
    extensions = MEDIA_KINDS[source.kind]
    if root.is_file() and root.suffix.lower() in MANIFEST_SUFFIXES:
        candidates = [p for p in _read_manifest(root, source) if not _excluded(source.relative(p), p.name, source.exclude)]
    elif root.is_file():
        candidates = [root]
    else:
        candidates = _walk(root, source)
    files = sorted(p for p in candidates if p.suffix.lower() in extensions and not p.name.startswith("."))
    if not files:
        raise ValueError(f"source {source.name!r}: no {source.kind} files ({', '.join(sorted(extensions))}) under {root}")
    if _LISTED is not None:
        _LISTED[key] = files
    return list(files)


def save_listings(sources: list[SourceConfig], directory: Path) -> None:
    """Write each source's listing (rank 0), so other ranks read it instead of walking again."""
    for source in sources:
        files = list_media(source)
        with atomic_write(directory / f"{source.name}.json") as tmp:
            tmp.write_text(json.dumps({"key": _listing_key(source), "files": [str(p) for p in files]}))


def load_listings(sources: list[SourceConfig], directory: Path) -> None:
    """Take the listings `save_listings` wrote for these sources, inside `listed_once` (ones made
    for other settings are ignored)."""
    for source in sources:
        path = directory / f"{source.name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved["key"] == _listing_key(source) and _LISTED is not None:
                _LISTED[saved["key"]] = [Path(p) for p in saved["files"]]


def _group_key(path: Path, source: SourceConfig) -> str:
    rel = source.relative(path)
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
