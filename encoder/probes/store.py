"""Probe features on disk: written batch by batch, read back memory-mapped.

Why: a probe at ImageNet scale cannot hold every layer's features in RAM (a `base` layer's token
grids for 1.28M images are ~126 GB). Extraction appends each batch to one raw file per (layer,
kind) and keeps nothing; the heads then train on memory-mapped tensors, reading only the rows of
each batch. `meta.json`, written last and atomically, marks the store complete and records the key
(a fingerprint of encoder, data and settings): a store without it, or with another key, is
extracted again.

    <dir>/meta.json  <dir>/labels.i64  <dir>/pooled_<layer>.f32  <dir>/tokens_<layer>.f16
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from toto_robot.media.errors import SkipReport
from toto_robot.io import atomic_write

DTYPES = {"labels": np.int64, "pooled": np.float32, "tokens": np.float16}
SUFFIX = {"labels": "i64", "pooled": "f32", "tokens": "f16"}


@dataclass
class Features:
    """Cached features of one split: per layer, pooled vectors and (optionally) token grids."""

    labels: torch.Tensor  # (N,) int64
    pooled: dict[int, torch.Tensor]  # layer -> (N, dim) float32
    tokens: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (N, n, dim) float16
    skipped: SkipReport = field(default_factory=SkipReport)
    seconds: float = 0.0


class FeatureWriter:
    """Appends rows to the store in `directory` (emptied first)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.files: dict[str, object] = {}
        self.shapes: dict[str, list[int]] = {}

    def append(self, name: str, kind: str, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=DTYPES[kind])
        if name not in self.files:
            self.files[name] = open(self.directory / f"{name}.{SUFFIX[kind]}", "wb")
            self.shapes[name] = [0, *rows.shape[1:]]
        if list(rows.shape[1:]) != self.shapes[name][1:]:
            raise ValueError(f"{name}: rows of shape {rows.shape[1:]} after {self.shapes[name][1:]}")
        self.files[name].write(rows.tobytes())
        self.shapes[name][0] += len(rows)

    def finish(self, key: str, skipped: SkipReport, seconds: float):
        """Mark the store complete; return its Features, memory-mapped."""
        for f in self.files.values():
            f.close()
        meta = {"key": key, "shapes": self.shapes, "skipped": skipped.as_dict(), "seconds": seconds}
        with atomic_write(self.directory / "meta.json") as tmp:
            tmp.write_text(json.dumps(meta))
        return read_store(self.directory)


class MemorySink:
    """The same interface kept in RAM: small datasets and tests, no directory."""

    def __init__(self):
        self.rows: dict[str, list[np.ndarray]] = {}
        self.shapes: dict[str, list[int]] = {}

    def append(self, name: str, kind: str, rows: np.ndarray) -> None:
        self.rows.setdefault(name, []).append(np.ascontiguousarray(rows, dtype=DTYPES[kind]))
        self.shapes.setdefault(name, [0, *rows.shape[1:]])[0] += len(rows)

    def finish(self, key: str, skipped: SkipReport, seconds: float):
        tensors = {name: torch.from_numpy(np.concatenate(parts)) for name, parts in self.rows.items()}
        by_kind = {kind: {int(n.split("_")[1]): t for n, t in tensors.items() if n.startswith(f"{kind}_")}
                   for kind in ("pooled", "tokens")}
        return Features(tensors["labels"], by_kind["pooled"], by_kind["tokens"], skipped, seconds)


def _mapped(path: Path, kind: str, shape: list[int]) -> torch.Tensor:
    if shape[0] == 0:
        return torch.from_numpy(np.zeros(shape, dtype=DTYPES[kind]))
    # copy-on-write: a writable view for torch, the file itself is never changed
    return torch.from_numpy(np.memmap(path, dtype=DTYPES[kind], mode="c", shape=tuple(shape)))


def read_store(directory: Path, key: str | None = None):
    """The store's Features (memory-mapped), or None when incomplete or made with another `key`."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if key is not None and meta["key"] != key:
        return None
    tensors: dict[str, dict[int, torch.Tensor]] = {"pooled": {}, "tokens": {}}
    labels = None
    for name, shape in meta["shapes"].items():
        kind = name.split("_")[0]
        tensor = _mapped(directory / f"{name}.{SUFFIX[kind]}", kind, shape)
        if kind == "labels":
            labels = tensor
        else:
            tensors[kind][int(name.split("_")[1])] = tensor
    skipped = SkipReport()
    skipped.counts.update(meta["skipped"])
    return Features(labels, tensors["pooled"], tensors["tokens"], skipped, meta["seconds"])
