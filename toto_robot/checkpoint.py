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


# `format` in every JSON save_weights writes. Files without it are format 0 (written before it
# existed): same fields, except an FSQ tokenizer's config without `local` (FSQConfig.from_saved).
FORMAT = 1


def save_weights(directory: str | os.PathLike, name: str, state_dict: dict, kind: str, config: dict, **extra: Any) -> Path:
    """Write `<name>.safetensors` then `<name>.json` atomically; return the JSON path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_write(directory / f"{name}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {"kind": kind, "format": FORMAT, "config": config, **extra}
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



def _type_problem(value, hint) -> str | None:
    """Why `value` (from JSON) does not fit the type `hint`, or None if it does."""
    import dataclasses
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return None
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, a) for a in args]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if hint is type(None):
        return None if value is None else f"expected null, got {type(value).__name__}"
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, dict) else f"expected an object, got {type(value).__name__}"
    base = origin or hint
    if base in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return f"expected a list, got {type(value).__name__}"
        inner = [a for a in args if a is not Ellipsis]
        for item in value if inner else []:
            problem = _type_problem(item, inner[0])
            if problem:
                return f"an item: {problem}"
        return None
    if base is dict:
        return None if isinstance(value, dict) else f"expected an object, got {type(value).__name__}"
    if base is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if base is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"expected an integer, got {value!r}"
    if base is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else f"expected a number, got {value!r}"
    if base is str:
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    return None


def read_fields(data, schema, where: str, field: str = "config", require_all: bool = False) -> dict:
    """`data` (a saved JSON object) checked against the dataclass `schema`: an unknown key, a missing
    required key (with `require_all`, any missing key but the schema's ADDED_FIELDS: configs saved whole) or a value of the wrong
    type is one CheckpointError naming `where` and the field. Nested dataclass fields are checked too.
    Returns `data` (a dict) for the caller to build from."""
    import dataclasses
    import typing

    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: {field} must be an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(f"{where}: unknown field {field}.{unknown[0]} (valid: {', '.join(sorted(fields))})")
    added = getattr(schema, "ADDED_FIELDS", ())  # newer than some saved files, which meant their defaults
    missing = [name for name, f in fields.items() if name not in data and ((require_all and name not in added) or (
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING))]
    if missing:
        raise CheckpointError(f"{where}: missing field {field}.{missing[0]}")
    hints = typing.get_type_hints(schema)
    for name, value in data.items():
        hint = hints.get(name, typing.Any)
        problem = _type_problem(value, hint)
        if problem:
            raise CheckpointError(f"{where}: field {field}.{name}: {problem}")
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            read_fields(value, hint, where, f"{field}.{name}", require_all)
    return data


def with_added_fields(data: dict, schema) -> dict:
    """`data` (a saved config) with the schema's ADDED_FIELDS it predates set to their defaults: what it meant."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(schema) if f.name in getattr(schema, "ADDED_FIELDS", ())}
    return {**{k: v for k, v in defaults.items() if k not in data}, **data}


def fingerprint(directory: str | os.PathLike) -> str:
    """Content hash (sha256, 16 hex digits) of the weight files in `directory`: which export a policy
    was trained on, wherever it was moved to since."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory} holds no .safetensors weights to fingerprint")
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
