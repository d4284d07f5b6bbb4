"""Demonstrations as robomimic-schema HDF5, so robomimic-style loaders and our policies share them.

    data                      attrs: total (samples over all demos), env_args (JSON:
                                     {"env_name", "type", "env_kwargs"}, as robomimic)
    data/demo_<i>             attrs: num_samples, success (bool), seed
        actions (T, A)  rewards (T,)  dones (T,)  states (T, S)  obs/<key> (T, ...)

`obs` holds the observation each action was taken in; `states` the privileged state vectors.
A recorder writes one single-demo file per episode (atomically) and merges them at the end.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from toto_robot.io import atomic_write

ARRAYS = ("actions", "rewards", "dones", "states")
DEMO_ATTRS = ("num_samples", "success", "seed")
ENV_ARGS_KEYS = ("env_name", "type", "env_kwargs")
GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE
# Rendered frames compress well: lzf costs no write time over none; gzip is smaller and readable
# outside h5py, at twice the write time (docs/benchmarks.md, measurements behind defaults).
IMAGE_COMPRESSION: str | None = "lzf"


@dataclass
class Demo:
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray
    obs: dict[str, np.ndarray] = field(default_factory=dict)
    success: bool = False
    seed: int = 0

    @property
    def num_samples(self) -> int:
        return len(self.actions)


def env_args(env_name: str, env_kwargs: dict) -> dict:
    return {"env_name": env_name, "type": GYM_ENV_TYPE, "env_kwargs": env_kwargs}


def _demo_index(name: str) -> int:
    match = re.fullmatch(r"demo_(\d+)", name)
    if match is None:
        raise ValueError(f"unexpected group data/{name}: demo groups are named demo_<i>")
    return int(match.group(1))


def _write_group(group: h5py.Group, demo: Demo, image_compression: str | None) -> None:
    n = demo.num_samples
    for key in ARRAYS:
        group.create_dataset(key, data=getattr(demo, key))
    for key, value in demo.obs.items():
        value = np.asarray(value)
        is_image = value.dtype == np.uint8 and value.ndim == 4
        if is_image and image_compression:
            group.create_dataset(f"obs/{key}", data=value, chunks=(1, *value.shape[1:]), compression=image_compression)
        else:
            group.create_dataset(f"obs/{key}", data=value)
    group.attrs.update({"num_samples": n, "success": bool(demo.success), "seed": int(demo.seed)})


def write_demo_file(
    path: str | os.PathLike, index: int, demo: Demo, args: dict, image_compression: str | None = IMAGE_COMPRESSION
) -> None:
    """Atomically write one demo (as data/demo_<index>) into a file of its own."""
    lengths = {key: len(getattr(demo, key)) for key in ARRAYS} | {f"obs/{k}": len(v) for k, v in demo.obs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"demo arrays differ in length: {lengths}")
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        _write_group(data.create_group(f"demo_{index}"), demo, image_compression)
        data.attrs.update({"total": demo.num_samples, "env_args": json.dumps(args)})


def merge_demo_files(sources: Iterable[str | os.PathLike], path: str | os.PathLike) -> int:
    """Atomically merge per-episode demo files into one file at `path`; return the demo count."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError(f"no demo files to merge into {path}")
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as out:
        data = out.create_group("data")
        total, args = 0, None
        for source in sources:
            with h5py.File(source, "r") as f:
                validate(f, source)
                if args is None:
                    args = f["data"].attrs["env_args"]
                elif f["data"].attrs["env_args"] != args:
                    raise ValueError(f"{source}: env_args differ from {sources[0]}; not merging")
                for name, group in f["data"].items():
                    if name in data:
                        raise ValueError(f"{source}: data/{name} already merged from another file")
                    f.copy(group, data, name=name)
                    total += int(group.attrs["num_samples"])
        data.attrs.update({"total": total, "env_args": args})
    return len(sources)


def validate(f: h5py.File, where: str | os.PathLike = "") -> None:
    """Check an open file against the schema; a ValueError names the first missing or bad key."""
    where = f"{where or f.filename}: "
    if "data" not in f:
        raise ValueError(f"{where}missing group 'data'")
    data = f["data"]
    for key in ("total", "env_args"):
        if key not in data.attrs:
            raise ValueError(f"{where}missing attribute data.attrs[{key!r}]")
    try:
        args = json.loads(data.attrs["env_args"])
    except (TypeError, json.JSONDecodeError):
        raise ValueError(f"{where}data.attrs['env_args'] is not a JSON string") from None
    for key in ENV_ARGS_KEYS:
        if key not in args:
            raise ValueError(f"{where}missing key {key!r} in data.attrs['env_args']")
    total = 0
    for name, group in data.items():
        _demo_index(name)
        for key in (*ARRAYS, "obs"):
            if key not in group:
                raise ValueError(f"{where}missing key data/{name}/{key}")
        for key in DEMO_ATTRS:
            if key not in group.attrs:
                raise ValueError(f"{where}missing attribute data/{name}.attrs[{key!r}]")
        n = int(group.attrs["num_samples"])
        for key in (*ARRAYS, *(f"obs/{k}" for k in group["obs"])):
            if len(group[key]) != n:
                raise ValueError(f"{where}data/{name}/{key} has {len(group[key])} samples, num_samples is {n}")
        total += n
    if int(data.attrs["total"]) != total:
        raise ValueError(f"{where}data.attrs['total'] is {int(data.attrs['total'])}, the demos hold {total}")


def read_demo_file(path: str | os.PathLike, obs_keys: Iterable[str] | None = None) -> tuple[dict, list[Demo]]:
    """Validate and load a demo file: (env_args, demos in index order); `obs_keys` limits obs loaded."""
    with h5py.File(path, "r") as f:
        validate(f, path)
        data = f["data"]
        demos = []
        for name in sorted(data, key=_demo_index):
            group = data[name]
            keys = list(group["obs"]) if obs_keys is None else list(obs_keys)
            missing = [k for k in keys if k not in group["obs"]]
            if missing:
                raise ValueError(f"{path}: missing key data/{name}/obs/{missing[0]}")
            arrays = {key: group[key][()] for key in ARRAYS}
            obs = {key: group["obs"][key][()] for key in keys}
            attrs = group.attrs
            demos.append(Demo(**arrays, obs=obs, success=bool(attrs["success"]), seed=int(attrs["seed"])))
        return json.loads(data.attrs["env_args"]), demos
