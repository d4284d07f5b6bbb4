"""Paths of the ROS 2 package `real` and what its setup.py would pass to setuptools."""
import runpy
from pathlib import Path

import setuptools

REAL = Path(__file__).resolve().parents[2] / "real"


def setup_kwargs(monkeypatch) -> dict:
    """Run real/setup.py as colcon does (from its folder) with setuptools.setup captured."""
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REAL)
    runpy.run_path(str(REAL / "setup.py"), run_name="__main__")
    return captured
