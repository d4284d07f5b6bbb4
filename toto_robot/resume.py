"""May a run directory be resumed with these settings? One rule for every resumable job.

A job saves the settings that decide its output next to it; a rerun into the same directory
compares them with its own. Settings listed as `may_change` (more rounds, another device, progress
bars) may differ; any other difference is a one-line ValueError naming each setting, its saved and
its new value, because mixing work done under different settings would silently make a run no one
asked for. Nested settings are compared key by key ("algo.rounds").
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping


def flat(settings: Mapping, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; values as JSON would store them (tuples -> lists)."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return out


def changed(saved: Mapping, current: Mapping, may_change: Iterable[str] = ()) -> list[str]:
    """The settings (flattened keys) that differ, other than `may_change`, sorted."""
    old, new, free = flat(saved), flat(current), set(may_change)
    return sorted(k for k in old.keys() | new.keys() if k not in free and old.get(k) != new.get(k))


def check_resumable(directory: str | os.PathLike, what: str, saved: Mapping, current: Mapping,
                    may_change: Iterable[str] = (), hint: str = "rerun with those, or use another out") -> None:
    """ValueError "<directory> holds <what> made with other k=<saved> (now <current>), ...: <hint>" on a difference."""
    keys = changed(saved, current, may_change)
    if keys:
        old, new = flat(saved), flat(current)
        details = ", ".join(f"{k}={old.get(k)!r} (now {new.get(k)!r})" for k in keys)
        raise ValueError(f"{directory} holds {what} made with other {details}: {hint}")
