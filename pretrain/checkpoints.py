"""Training checkpoints: one directory per step, a `latest.json` pointer written last, rotation.

    out_dir/checkpoints/step_0001000/toto.safetensors   model weights (save_weights)
                                    /toto.json          kind "toto" + model config
                                    /state.pt           optimizer, step, RNG, configs (save_state)
    out_dir/checkpoints/latest.json                     {"step": 1000, "dir": "step_0001000"}

Every file is written atomically and the pointer only after the directory is complete, so a
crash or a full disk mid-save leaves `latest.json` naming the previous, whole checkpoint.
Old directories are deleted only after the pointer has moved.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from toto_robot.checkpoint import CheckpointError, load_state, load_weights, read_meta, save_state, save_weights, with_added_fields
from toto_robot.io import atomic_write, remove_stale_temps

WEIGHTS_NAME = "toto"
STATE_FILE = "state.pt"
LATEST_FILE = "latest.json"
_STEP_DIR = re.compile(r"step_(\d+)$")


def checkpoints_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def save_checkpoint(out_dir: str | os.PathLike, step: int, model_state: dict, model_config: dict, train_state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step`, point latest.json at it, keep the newest `keep`; return its dir."""
    if keep < 1:
        raise ValueError(f"keep_checkpoints={keep}: keep at least 1 (the one resume needs)")
    root = checkpoints_dir(out_dir)
    directory = root / f"step_{step:07d}"
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in (root, directory):  # temp files of a save killed mid-write
        remove_stale_temps(leftover)
    save_weights(directory, WEIGHTS_NAME, model_state, kind="toto", config=model_config, step=step)
    save_state(directory / STATE_FILE, train_state)
    with atomic_write(root / LATEST_FILE) as tmp:
        tmp.write_text(json.dumps({"step": step, "dir": directory.name}))
    _prune(root, step, keep)
    return directory


def _prune(root: Path, newest: int, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints up to `newest`, and any leftovers past it
    (half-written saves of an abandoned run, which resume never uses)."""
    steps = sorted(int(m.group(1)) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir())
    kept = [s for s in steps if s <= newest][-keep:]
    for s in steps:
        if s not in kept:
            shutil.rmtree(root / f"step_{s:07d}", ignore_errors=True)


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The directory latest.json names, or None when nothing was saved yet."""
    pointer = checkpoints_dir(out_dir) / LATEST_FILE
    if not pointer.is_file():
        return None
    try:
        directory = pointer.parent / json.loads(pointer.read_text())["dir"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"{pointer} is unreadable: delete it to start fresh or use another out_dir") from None
    if not (directory / STATE_FILE).is_file():
        raise CheckpointError(f"{pointer} names {directory}, which is incomplete or gone: use another out_dir or resume=false")
    return directory


def describe_config(config: dict) -> str:
    keys = ("dim", "n_layers", "n_heads", "max_seq_len", "vocab_size")
    return " ".join(f"{k}={config[k]}" for k in keys if k in config)


def check_compatible(directory: Path, saved: dict, current: dict, schema=None) -> None:
    """CheckpointError when the checkpoint's model config differs from this run's (fields added to
    `schema` since the checkpoint was saved count as their defaults)."""
    current = json.loads(json.dumps(current))  # tuples -> lists, as stored
    saved = with_added_fields(saved, schema) if schema is not None else saved
    if saved == current:
        return
    keys = sorted(set(saved) | set(current))
    diff = ", ".join(f"{k} {saved.get(k)!r} vs {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k))
    raise CheckpointError(
        f"{directory} holds a model with {describe_config(saved)} but this run builds {describe_config(current)} "
        f"(differs in: {diff}): use another out_dir or resume=false"
    )


def load_checkpoint(directory: Path, model_config: dict, tensors: bool = True, schema=None) -> tuple[dict, dict]:
    """(model state dict, training state) of a checkpoint made for `model_config`.

    tensors=False only checks the config and returns ({}, {}) (FSDP ranks that receive rank 0's
    tensors by broadcast)."""
    check_compatible(directory, read_meta(directory, WEIGHTS_NAME, kind="toto")["config"], model_config, schema)
    if not tensors:
        return {}, {}
    model_state, _ = load_weights(directory, WEIGHTS_NAME, kind="toto")
    return model_state, load_state(directory / STATE_FILE)


class BackgroundWriter:
    """Writes checkpoints on a thread, so training goes on while a large one reaches the disk.

    At `1b` a full checkpoint is ~14 GB; written on the training thread it stalls every rank
    (they wait at the next collective) for minutes. Here rank 0 hands over host copies of the
    tensors and trains on. One write at a time: `submit` first waits for the previous one, and
    `wait` (at the end of training, or before a resume reads latest.json) re-raises its error.
    The files are atomic and latest.json moves last, so a crash mid-write loses only that save.
    """

    def __init__(self):
        self._thread, self._error = None, None

    def submit(self, write, *args) -> None:
        import threading

        self.wait()

        def run():
            try:
                write(*args)
            except BaseException as error:  # re-raised on the training thread by wait()
                self._error = error

        self._thread = threading.Thread(target=run, name="checkpoint-writer", daemon=False)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def host_copy(tree):
    """Tensors of a (nested) state dict copied to the host, detached from anything training updates."""
    import torch

    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: host_copy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(host_copy(v) for v in tree)
    return tree
