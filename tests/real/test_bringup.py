"""ROS-free bring-up (real/bringup.py): config checked before anything starts; the nodes as processes
against franky-sim on loopback; Ctrl-C stops everything with exit 0; a dying node stops the rest.

The process tests need rclpy (PyPI ROS 2 wheels), franky-control, franky-sim and OpenCV (docs/design.md
section 6): skipped otherwise. Own loopback addresses (libfranka's ports are fixed) and ROS domain;
every process started here is stopped here.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.real.ros import ros_domain  # noqa: E402

import yaml

from tests.real.processes import REPO, Proc, alive, bringup, franky_sim_exe, ros_env, start_sim

CONFIG = REPO / "real" / "params" / "cube_pick.yaml"
RUN_HOST, KILL_HOST, RECORD_HOST = "127.0.0.83", "127.0.0.84", "127.0.0.86"
ENV = ros_env(ros_domain("bringup"))


@pytest.mark.parametrize("args, words", [
    (["--robot-ip", "127.0.0.83", "--nodes", "franka,arm"], "--nodes: arm (valid: camera,franka,policy,recorder)"),
    (["--nodes", "camera,policy"], "the policy node needs a checkpoint: --checkpoint <run>"),
    (["--nodes", "policy"], "the policy node needs a checkpoint"),
    (["--config", "missing.yaml", "--robot-ip", "127.0.0.83", "--nodes", "franka"], "cannot read the config file"),
])
def test_bad_config_or_override_is_one_line_exit_2_before_starting(args, words):
    out = subprocess.run(bringup(*args), capture_output=True, text=True, env=ENV, cwd=REPO, timeout=60)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("bringup: error: ") and words in lines[0], lines


def test_as_typed_the_plan_takes_the_config_and_runs_no_policy_without_a_checkpoint(tmp_path):
    from real.bringup import NO_POLICY, launch_plan

    plan = launch_plan()
    assert plan.nodes == ["camera", "franka", "recorder"] and plan.note == NO_POLICY and plan.overrides == {}
    plan = launch_plan(robot_ip="10.0.0.2", checkpoint="runs/real/bc/run1")
    assert plan.nodes == ["camera", "franka", "policy", "recorder"] and plan.note is None
    assert plan.overrides == {"franka": {"robot_ip": "10.0.0.2"}, "policy": {"checkpoint": "runs/real/bc/run1"}}
    raw = yaml.safe_load(CONFIG.read_text())
    raw["franka"]["ros__parameters"]["robot_ip"] = ""
    (tmp_path / "no_ip.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="franka.robot_ip: must not be empty"):
        launch_plan(tmp_path / "no_ip.yaml")


# ---- processes against franky-sim ----------------------------------------------------------

@pytest.fixture
def sim_at():
    started = []

    def start(host: str) -> Proc:
        started.append(start_sim(host))
        return started[-1]

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def config(tmp_path):
    """cube_pick.yaml for franky-sim (no realtime kernel) and a video file as the camera."""
    franky_sim_exe()  # skips unless rclpy, franky, OpenCV and franky-sim are all there
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, (80, 60))
    for i in range(5):
        writer.write(np.full((60, 80, 3), 40 * i, np.uint8))
    writer.release()
    data = yaml.safe_load(CONFIG.read_text())
    data["franka"]["ros__parameters"].update(realtime=False, guiding=False)  # franky-sim: no RT kernel, no guiding
    data["camera"]["ros__parameters"]["device"] = str(clip)
    data["recorder"]["ros__parameters"].update(out_dir=str(tmp_path / "demos"), resolution=32)
    path = tmp_path / "cube_pick.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(config: Path, host: str) -> Proc:
    return Proc(bringup("--config", str(config), "--robot-ip", host, "--nodes", "camera,franka"), env=ENV)


@pytest.mark.ros
def test_ctrl_c_stops_every_node_with_exit_0(sim_at, config):
    sim_at(RUN_HOST)
    run = _run(config, RUN_HOST)
    try:
        assert run.wait_for("[franka] ", f"connected to the robot at {RUN_HOST}", "[camera] ", "camera '",
                            timeout=30.0), "".join(run.lines)
        pids = run.child_pids()
        assert len(pids) == 2 and all(alive(p) for p in pids), "".join(run.lines)
        run.proc.send_signal(signal.SIGINT)
        t = time.monotonic()
        code = run.proc.wait(10.0)
        assert time.monotonic() - t < 6.0, "".join(run.lines)
        assert code == 0, "".join(run.lines)
        assert not any(alive(p) for p in pids), "orphaned node processes"
        assert "did not stop" not in "".join(run.lines)
    finally:
        run.stop()


@pytest.mark.ros
def test_robot_lost_stops_the_rest_and_exits_nonzero_naming_franka_and_a_restart_works(sim_at, config):
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
        assert not any(alive(p) for p in pids), "orphaned node processes"
    finally:
        run.stop()
    # franky-sim back up (a robot power-cycled): the same command connects again
    sim_at(KILL_HOST)
    again = _run(config, KILL_HOST)
    try:
        assert again.wait_for(f"connected to the robot at {KILL_HOST}", "camera '", timeout=30.0), again.text
        assert again.proc.poll() is None, again.text
    finally:
        again.stop()
    assert again.proc.returncode == 0, again.text


@pytest.mark.ros
def test_recording_a_demo_through_the_services(sim_at, config, tmp_path):
    """camera + franka + recorder as processes: recorder/start frees the arm through franka/guiding,
    recorder/stop saves one valid episode of the sim arm's joints and hands the arm back."""
    from real.demo_layout import read_layout

    sim_at(RECORD_HOST)
    run = Proc(bringup("--config", str(config), "--robot-ip", RECORD_HOST, "--nodes", "camera,franka,recorder"),
               env=ENV)

    def call(*args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "real.call", *args, "--timeout-s", "10"], capture_output=True,
                              text=True, env=ENV, cwd=REPO, timeout=60)

    try:
        assert run.wait_for(f"connected to the robot at {RECORD_HOST}", "[recorder] ", "camera '", timeout=30.0), run.text
        t0 = time.monotonic()
        started = call("recorder/start")
        assert started.returncode == 0, started.stderr
        assert run.wait_for("no motion commanded (franka.guiding is false", timeout=5.0), run.text
        time.sleep(1.5)
        stopped = call("recorder/stop", "true")
        window = time.monotonic() - t0  # the episode was open within this
        assert stopped.returncode == 0, stopped.stderr
        assert run.wait_for("guiding released: accepting actions", timeout=5.0), run.text
        assert call("recorder/stop", "true").returncode == 1  # nothing open any more: one line, exit 1
    finally:
        run.stop()
    episodes = sorted((tmp_path / "demos").glob("episode_*.hdf5"))
    assert len(episodes) == 1, run.text
    layout, samples, successes = read_layout(episodes[0])
    assert layout.resolution == 32 and layout.control_hz == 10.0 and successes == [True]
    assert 14 <= samples[0] <= 10 * window, (samples, window)  # >= 1.5 s at 10 Hz, less the last sample
