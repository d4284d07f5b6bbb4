"""ROS-free bring-up (real/bringup.py): config checked before anything starts; the nodes as processes
against franky-sim on loopback; Ctrl-C stops everything with exit 0; a dying node stops the rest.

The process tests need rclpy (PyPI ROS 2 wheels), franky-control, franky-sim and OpenCV (DESIGN.md
section 6): skipped otherwise. Own loopback addresses (libfranka's ports are fixed) and ROS domain;
every process started here is stopped here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "real" / "config" / "cube_pick.yaml"
RUN_HOST, KILL_HOST = "127.0.0.83", "127.0.0.84"
ENV = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(60 + os.getpid() % 20),
       "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def _bringup(*args) -> list[str]:
    return [sys.executable, "-m", "real.bringup", *args]


@pytest.mark.parametrize("args, words", [
    (["--robot-ip", "", "--nodes", "franka"], "franka.robot_ip: must not be empty"),
    (["--robot-ip", "127.0.0.83", "--nodes", "franka,arm"], "--nodes: arm (valid: camera,franka,policy,recorder)"),
    (["--nodes", "franka"], "--robot-ip is required to start the franka node"),
    (["--nodes", "policy"], "--checkpoint is required to start the policy node"),
    (["--config", "missing.yaml", "--robot-ip", "127.0.0.83", "--nodes", "franka"], "cannot read the config file"),
])
def test_bad_config_or_override_is_one_line_exit_2_before_starting(args, words):
    out = subprocess.run(_bringup(*args), capture_output=True, text=True, env=ENV, cwd=REPO, timeout=60)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("bringup: error: ") and words in lines[0], lines


# ---- processes against franky-sim ----------------------------------------------------------

def _need(module: str, what: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{what} not installed (DESIGN.md section 6)")


def _franky_sim_exe() -> str:
    for module, what in (("rclpy", "rclpy"), ("franky", "franky-control"), ("cv2", "opencv-python-headless")):
        _need(module, what)
    exe = shutil.which("franky-sim") or os.path.join(sys.prefix, "bin", "franky-sim")
    if not os.path.exists(exe):
        pytest.skip("franky-sim not installed (pip install franky-sim, DESIGN.md section 6)")
    return exe


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Proc:
    """A process whose merged output is collected line by line in a thread."""

    def __init__(self, cmd):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO)
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                       daemon=True)
        self.thread.start()

    def wait_for(self, *needles: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = "".join(self.lines)
            if all(n in text for n in needles):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return False

    def child_pids(self) -> list[int]:
        started = next(line for line in self.lines if line.startswith("bringup: started"))
        return [int(p) for p in re.findall(r"pid (\d+)", started)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def sim_at():
    started = []

    def start(host: str) -> Proc:
        sim = Proc([_franky_sim_exe(), "-s", "mujoco", "--hostname", host])
        started.append(sim)
        if not sim.wait_for("Connect to the server", timeout=20.0):
            pytest.fail(f"franky-sim on {host} did not start: {''.join(sim.lines)}")
        return sim

    yield start
    for sim in started:
        _stop(sim.proc)


@pytest.fixture
def config(tmp_path):
    """cube_pick.yaml for franky-sim (no realtime kernel) and a video file as the camera."""
    _franky_sim_exe()  # skips unless rclpy, franky, OpenCV and franky-sim are all there
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, (80, 60))
    for i in range(5):
        writer.write(np.full((60, 80, 3), 40 * i, np.uint8))
    writer.release()
    data = yaml.safe_load(CONFIG.read_text())
    data["franka"]["ros__parameters"]["realtime"] = False
    data["camera"]["ros__parameters"]["device"] = str(clip)
    path = tmp_path / "cube_pick.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(config: Path, host: str) -> Proc:
    return Proc(_bringup("--config", str(config), "--robot-ip", host, "--nodes", "camera,franka"))


def test_ctrl_c_stops_every_node_with_exit_0(sim_at, config):
    sim_at(RUN_HOST)
    run = _run(config, RUN_HOST)
    try:
        assert run.wait_for("[franka] ", f"connected to the robot at {RUN_HOST}", "[camera] ", "camera '",
                            timeout=30.0), "".join(run.lines)
        pids = run.child_pids()
        assert len(pids) == 2 and all(_alive(p) for p in pids), "".join(run.lines)
        run.proc.send_signal(signal.SIGINT)
        t = time.monotonic()
        code = run.proc.wait(10.0)
        assert time.monotonic() - t < 6.0, "".join(run.lines)
        assert code == 0, "".join(run.lines)
        assert not any(_alive(p) for p in pids), "orphaned node processes"
        assert "did not stop" not in "".join(run.lines)
    finally:
        _stop(run.proc)


def test_robot_lost_stops_the_rest_and_exits_nonzero_naming_franka(sim_at, config):
    sim = sim_at(KILL_HOST)
    run = _run(config, KILL_HOST)
    try:
        assert run.wait_for(f"connected to the robot at {KILL_HOST}", "camera '", timeout=30.0), "".join(run.lines)
        pids = run.child_pids()
        sim.proc.kill()
        sim.proc.wait()
        code = run.proc.wait(15.0)
        run.thread.join(2.0)
        text = "".join(run.lines)
        assert code == 1, text
        assert "[franka] franka_node: error: lost the connection" in text, text
        assert "bringup: franka exited with code 1: stopping the other nodes" in text, text
        assert not any(_alive(p) for p in pids), "orphaned node processes"
    finally:
        _stop(run.proc)
