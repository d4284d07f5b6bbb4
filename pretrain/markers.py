"""File markers that join the pipeline's stages across ranks without a collective.

Why not a barrier: a barrier is a collective, so it is bounded by the process group's timeout
(NCCL's watchdog kills the job after it). Rank 0 training the tokenizer, or ranks tokenizing
shares that finish hours apart, would hit it. Ranks wait instead for a file in the run's `out`
directory (a shared filesystem on a cluster) holding this launch's nonce, which rank 0 sends once
at start: a marker left by an earlier launch never counts. If a rank dies, torchrun stops the others.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pretrain import distributed
from toto_robot.io import atomic_write

MARKERS_DIR = ".markers"
POLL_S = 2.0  # how often a waiting rank looks (a stat of one small file)


def launch_nonce(info: distributed.DistInfo) -> str:
    """An id of this launch, the same on every rank (rank 0's, sent by one short collective)."""
    return distributed.broadcast_object(uuid.uuid4().hex if info.is_main else None, info)


def mark(path: Path, nonce: str) -> None:
    """Say `path`'s stage is done for launch `nonce` (atomic: a waiter never reads half a marker)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(nonce)


def is_marked(path: Path, nonce: str) -> bool:
    try:
        return path.read_text() == nonce
    except OSError:
        return False


def wait_until(done: Callable[[], bool], what: str, poll_s: float = POLL_S, report_s: float = 300.0) -> float:
    """Poll `done()` until it is true; print what is awaited every `report_s`. Returns the seconds waited."""
    start = last = time.monotonic()
    while not done():
        time.sleep(poll_s)
        now = time.monotonic()
        if now - last >= report_s:
            print(f"still waiting for {what} ({(now - start) / 60:.0f} min)", flush=True)
            last = now
    return time.monotonic() - start


def wait_for(path: Path, nonce: str, what: str, poll_s: float = POLL_S) -> float:
    """Wait for `mark(path, nonce)` by another rank."""
    return wait_until(lambda: is_marked(path, nonce), what, poll_s)
