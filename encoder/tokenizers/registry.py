"""Every tokenizer kind in one table, and saving and loading through it.

The one module that imports all tokenizers (base.py imports none of them): a new tokenizer is its
module (a `Tokenizer` with `kind`, `checkpoint_kind`, `checkpoint` and `from_checkpoint`) plus one
entry in `TOKENIZERS`.
"""
from __future__ import annotations

from pathlib import Path

from encoder.tokenizers.base import Tokenizer
from encoder.tokenizers.dalle import DalleTokenizer, load_dalle
from encoder.tokenizers.fsq import FSQTokenizer
from encoder.tokenizers.patch import PatchTokenizer
from toto_robot.checkpoint import CheckpointError, load_weights, save_weights

TOKENIZERS: dict[str, type[Tokenizer]] = {cls.checkpoint_kind: cls for cls in (FSQTokenizer, DalleTokenizer, PatchTokenizer)}
TOKENIZER_NAME = "tokenizer"  # checkpoint files: tokenizer.safetensors + tokenizer.json

__all__ = ["TOKENIZERS", "TOKENIZER_NAME", "load_tokenizer", "save_tokenizer"]


def save_tokenizer(tokenizer: Tokenizer, directory, **extra):
    """Write `directory`/tokenizer.safetensors + tokenizer.json (config to rebuild it, plus `extra`); return the JSON path."""
    if type(tokenizer).checkpoint_kind not in TOKENIZERS:
        raise ValueError(f"cannot save a tokenizer of kind {tokenizer.kind!r}")
    config, state = tokenizer.checkpoint()
    return save_weights(directory, TOKENIZER_NAME, state, kind=tokenizer.checkpoint_kind, config=config, **extra)


def load_tokenizer(spec, *, allow_pickle: bool = False) -> Tokenizer:
    """A tokenizer from a spec string (the `tokenizer=` config value).

    - "patch" or "patch:<patch_size>": continuous patch tokens (no weights);
    - a directory with tokenizer.safetensors + tokenizer.json (written by `save_tokenizer`, e.g. a
      trained FSQ tokenizer);
    - the official DALL-E dVAE `encoder.pkl` (only with allow_pickle=True: unpickling runs code) or
      its converted `.safetensors` (`python -m encoder.tokenizers.dalle convert`).
    Missing paths and checkpoints of another kind raise CheckpointError.
    """
    spec = str(spec)
    if spec == "patch" or spec.startswith("patch:"):
        size = spec.partition(":")[2] or "8"
        if not size.isdigit() or int(size) < 1:
            raise ValueError(f"tokenizer spec {spec!r}: use 'patch' or 'patch:<patch_size>' with a positive integer size")
        return PatchTokenizer(int(size))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".safetensors" and path.with_suffix(".json").is_file():
        path, name = path.parent, path.stem  # a checkpoint named by its weights file
    elif path.is_file():
        return load_dalle(path, allow_pickle=allow_pickle)
    elif path.is_dir():
        name = TOKENIZER_NAME
    else:
        raise CheckpointError(f"tokenizer {spec!r} not found: expected a directory with tokenizer.safetensors + tokenizer.json, "
                              "'patch[:<size>]', or a DALL-E encoder.pkl / converted .safetensors")
    state, meta = load_weights(path, name)
    kind = meta.get("kind")
    if kind not in TOKENIZERS:
        raise CheckpointError(f"{path}/{name}.json holds a {kind!r} checkpoint, not a tokenizer ({', '.join(TOKENIZERS)})")
    return TOKENIZERS[kind].from_checkpoint(meta.get("config") or {}, state, f"{path}/{name}")
