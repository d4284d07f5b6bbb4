"""Token shards: fixed-shape rows in raw binary files plus a JSON each, written atomically.

A shard is `<name>.bin` (rows of `row_shape` and `dtype`, C order, e.g. uint16 token sequences
of length T*g*g+2) and `<name>.json` (rows, row_shape, dtype, and whatever the writer adds). The
JSON is written after the data, so a shard counts as finished only when both exist with the
right size: a killed tokenizer never leaves a half shard that readers or resume would trust.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from toto_robot.io import atomic_write, remove_stale_temps


def write_shard(directory: str | os.PathLike, name: str, rows: np.ndarray, **meta) -> Path:
    """Write `rows` (N, *row_shape) as shard `name` in `directory`; return the .bin path."""
    directory = Path(directory)
    rows = np.ascontiguousarray(rows)
    if rows.ndim < 2 or len(rows) == 0:
        raise ValueError(f"a shard needs at least one row of data, got shape {rows.shape}")
    with atomic_write(directory / f"{name}.bin") as tmp:
        rows.tofile(tmp)
    info = {"rows": int(rows.shape[0]), "row_shape": list(rows.shape[1:]), "dtype": rows.dtype.name, **meta}
    with atomic_write(directory / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return directory / f"{name}.bin"


def shard_finished(directory: str | os.PathLike, name: str) -> bool:
    """True when shard `name` was written completely (JSON present and the data size matches)."""
    meta_path, data_path = Path(directory) / f"{name}.json", Path(directory) / f"{name}.bin"
    if not (meta_path.is_file() and data_path.is_file()):
        return False
    try:
        info = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    expected = info["rows"] * int(np.prod(info["row_shape"])) * np.dtype(info["dtype"]).itemsize
    return data_path.stat().st_size == expected


class ShardSet:
    """All finished shards in a directory as one indexable array of rows (memory-mapped)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"token directory {self.directory} does not exist; run stage=tokenize first")
        remove_stale_temps(self.directory)
        names = sorted(p.stem for p in self.directory.glob("*.json") if shard_finished(self.directory, p.stem))
        if not names:
            raise ValueError(f"{self.directory} holds no finished token shards; run stage=tokenize first")
        self.infos = [json.loads((self.directory / f"{n}.json").read_text()) for n in names]
        shapes = {(tuple(i["row_shape"]), i["dtype"]) for i in self.infos}
        if len(shapes) != 1:
            raise ValueError(f"{self.directory} mixes shards of different row shapes/dtypes: {sorted(shapes)}")
        (self.row_shape, dtype), = shapes
        self.dtype = np.dtype(dtype)
        self.arrays = [
            np.memmap(self.directory / f"{n}.bin", dtype=self.dtype, mode="r", shape=(i["rows"], *self.row_shape))
            for n, i in zip(names, self.infos)
        ]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return np.asarray(self.arrays[shard][index - self.offsets[shard]])
