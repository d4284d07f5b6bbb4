"""Test-wide settings: quiet, single-threaded numeric libraries (CI has 2 cores)."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from sim.gl import choose_backend  # noqa: E402  (before any test module imports mujoco)

choose_backend()
