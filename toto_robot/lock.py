"""One writer per run folder: `with run_lock(out): ...` around every command that writes a run.

Two commands writing one `out` at once (two terminals, a resubmitted job) both trained before,
with no word, each overwriting the other's checkpoints. The lock is a file `out/.lock` holding the
holder's PID and host, created with O_EXCL; a second command is refused in one line naming the
holder. A lock left by a killed run (its PID gone on this host) is taken over, and the takeover is
said. Under torchrun only rank 0 locks (the ranks of one launch share `out` by design).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def acquire(out: str | os.PathLike) -> Path | None:
    """Create out/.lock for this process; ValueError if a live process holds it. Returns the lock path
    (None when this process holds it already: the outer holder releases it)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={out} is a file, not a run folder: give a folder path")
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = _holder(path) or {}
            pid, host = holder.get("pid"), holder.get("host")
            if holder == me:
                return None  # this process already holds it
            if isinstance(pid, int) and (host != me["host"] or _alive(pid)):
                where = f" on {host}" if host != me["host"] else ""
                raise ValueError(f"{out} is in use by PID {pid}{where} (lock {path}): wait for it to finish, or use another out") from None
            print(f"{out}: taking over the lock of PID {pid}, which is no longer running", flush=True)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise ValueError(f"could not lock {out}: another process keeps taking {path}")


def release(path: Path) -> None:
    """Remove the lock if this process holds it."""
    holder = _holder(path)
    if holder and holder.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(out: str | os.PathLike, enabled: bool = True, create: bool = True) -> Iterator[None]:
    """Hold out/.lock for the duration (a no-op when not `enabled`, e.g. on ranks other than 0, and
    with create=False when `out` does not exist: a reader's own error then says what is missing)."""
    if not enabled or (not create and not Path(out).is_dir()):
        yield
        return
    path = acquire(out)
    try:
        yield
    finally:
        if path is not None:
            release(path)
