"""Checkpoint files that load without executing pickled code (docs/design.md section 3).

Weights: `<name>.safetensors` plus `<name>.json` holding `kind` (what built them, e.g. "toto" or
"fsq_tokenizer") and the config to rebuild the module. Training state (optimizer, scheduler, RNG,
data position) is a `torch.save` file of tensors and plain containers, read with
`weights_only=True`. Every file is written atomically, JSON last, so a crash mid-save leaves the
previous checkpoint whole.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toto_robot.io import atomic_write


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or of the wrong kind; the message says what to do."""


def save_weights(directory: str | os.PathLike, name: str, state_dict: dict, kind: str, config: dict, **extra: Any) -> Path:
    """Write `<name>.safetensors` then `<name>.json` atomically; return the JSON path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_write(directory / f"{name}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {"kind": kind, "config": config, **extra}
    with atomic_write(directory / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory / f"{name}.json"


def read_meta(directory: str | os.PathLike, name: str, kind: str | None = None) -> dict:
    """The JSON beside `<name>.safetensors`; CheckpointError if missing or of another kind."""
    path = Path(directory) / f"{name}.json"
    if not Path(directory).exists():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not path.is_file() or not path.with_suffix(".safetensors").is_file():
        raise CheckpointError(f"{path.with_suffix('.safetensors')} (+ .json) not found: not a {kind or name} checkpoint")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    return meta


def load_weights(directory: str | os.PathLike, name: str, kind: str | None = None) -> tuple[dict, dict]:
    """(state_dict, meta) of a checkpoint written by `save_weights`."""
    from safetensors.torch import load_file

    meta = read_meta(directory, name, kind)
    try:
        state = load_file(str(Path(directory) / f"{name}.safetensors"))
    except Exception as error:  # safetensors raises its own types for truncated/corrupt files
        raise CheckpointError(f"{Path(directory) / name}.safetensors is unreadable ({error})") from None
    return state, meta


def save_state(path: str | os.PathLike, state: dict) -> None:
    """Training state (tensors, numbers, strings, lists, dicts) atomically via torch.save."""
    import torch

    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike) -> dict:
    """Read a `save_state` file with weights_only=True (no pickled code runs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable training state ({error.__class__.__name__})") from None
