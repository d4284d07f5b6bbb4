"""Crash-safe file writing: a file appears under its final name only once it is complete.

Long jobs (recording, training) are killed at arbitrary points; readers and resume logic then
trust that any file under a final name is whole. Temporary files are named `.<name>.<random>.tmp`
in the target's directory (same filesystem, so the rename is atomic).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

TEMP_SUFFIX = ".tmp"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to `path`.

    The yielded path is a plain file name, so any writer works (h5py, PyAV, torch.save,
    safetensors). On an exception the temporary file is deleted and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies, unlike mkstemp
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files an interrupted `atomic_write` left in `directory`; return them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(directory.glob(f".*{TEMP_SUFFIX}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG atomically (a plot being read is never half-written), then close it."""
    import matplotlib.pyplot as plt

    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)
