"""Run a study's children side by side: `workers` at a time, each with its share of the cores.

Why: a policy cell on a CPU does not scale to two threads (small batches, MuJoCo rendering, Python between steps).
On a 2-core machine two cells at one thread each finished 2.5x as many cells an hour as one cell at two threads (3.7
min a cell each, against 4.6 min; docs/results.md section 4). A study's cells are independent, so they can run so.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from toto_robot.compute import usable_cores


def child_env(workers: int) -> dict | None:
    """The environment of a child when `workers` run at once: OMP_NUM_THREADS = cores // workers (at least 1),
    unless the user set it; None (inherit everything) for one worker."""
    if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return {**os.environ, "OMP_NUM_THREADS": str(max(1, usable_cores() // workers))}


def run_each(items: Iterable, step: Callable, workers: int) -> None:
    """step(item) for every item, `workers` at a time, in order of start. After a failure no new item starts; the
    running ones finish (their children are whole runs that resume anyway) and the first error is raised."""
    items = list(items)
    if workers <= 1:
        for item in items:
            step(item)
        return
    failed: list[BaseException] = []
    stop = threading.Event()

    def guarded(item) -> None:
        if stop.is_set():
            return
        try:
            step(item)
        except BaseException as error:  # noqa: BLE001  (re-raised below, in the caller's thread)
            failed.append(error)
            stop.set()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(guarded, items))
    if failed:
        raise failed[0]
