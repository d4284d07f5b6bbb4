"""Crash-safe file writing: a file appears under its final name only once it is complete.

Long jobs (recording, training) are killed at arbitrary points; readers and resume logic then
trust that any file under a final name is whole. Temporary files are named `.<name>.<random>.tmp`
in the target's directory (same filesystem, so the rename is atomic).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TEMP_SUFFIX = ".tmp"
_UMASK = os.umask(0)  # read once, at import (single-threaded): checkpoints are also written from a thread
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file; some writers (safetensors) create theirs 0600
LOW_SPACE = 1 << 20  # free bytes under which a failed write is taken for a full disk


class DiskFullError(OSError):
    """A write failed because its filesystem is full; the message is one line with the folder and sizes."""


def _disk_full(error: BaseException, tmp: Path) -> DiskFullError | None:
    """The one-line error for a write that ran out of space (some writers hide ENOSPC behind their own
    errors, e.g. torch.save's `basic_ios::clear` / `inline_container`), else None."""
    folder = tmp.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if getattr(error, "errno", None) != errno.ENOSPC and free >= LOW_SPACE:
        return None
    written = tmp.stat().st_size if tmp.exists() else 0
    return DiskFullError(errno.ENOSPC, f"disk full writing {_final_name(tmp)} in {folder}: "
                         f"{free / 2**20:.1f} MB free, over {written / 2**20:.1f} MB were needed; the previous files are intact")


def _final_name(tmp: Path) -> str:
    """`x.safetensors` from the temp name `.x.safetensors.<hex>.tmp`."""
    return tmp.name[1:].rsplit(".", 2)[0]


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
        os.chmod(tmp, FILE_MODE)  # weights follow the umask like every other file (a lab's shared filesystem)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as error:
        full = _disk_full(error, tmp) if isinstance(error, Exception) else None  # writers wrap ENOSPC in their own types
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from None
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
