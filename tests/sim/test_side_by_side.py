"""sim/side_by_side.py: a study's children run `workers` at a time, each with its share of the cores."""
from __future__ import annotations

import threading

import pytest

from sim.side_by_side import child_env, run_each
from toto_robot.compute import usable_cores


def test_two_workers_run_two_items_at_once_and_a_failure_stops_new_ones():
    meet = threading.Barrier(2, timeout=20)  # breaks (an error) unless two items are running at the same time
    seen = []
    run_each(range(4), lambda i: (meet.wait(), seen.append(i)), workers=2)
    assert sorted(seen) == [0, 1, 2, 3]
    started = []

    def step(i):
        started.append(i)
        if i == 0:
            raise ValueError("cell 0 failed")

    with pytest.raises(ValueError, match="cell 0 failed"):
        run_each(range(50), step, workers=1)
    assert started == [0]
    started.clear()
    with pytest.raises(ValueError, match="cell 0 failed"):
        run_each(range(50), step, workers=2)
    assert 0 in started and len(started) < 50  # what had started finishes; nothing new starts after the failure


def test_each_child_gets_its_share_of_the_cores_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert child_env(1) is None  # one worker: the children inherit everything
    assert child_env(2)["OMP_NUM_THREADS"] == str(max(1, usable_cores() // 2))
    assert child_env(4 * usable_cores())["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert child_env(2) is None  # the user's setting stands
