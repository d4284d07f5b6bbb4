"""ROS-free bring-up: the nodes of launch/cube_pick.launch.py as plain processes, without `ros2 launch`.

    python -m real.bringup                                        # camera, franka, recorder: record demos
    python -m real.bringup --checkpoint runs/real/bc/<run>        # ... and the policy node
    python -m real.bringup --robot-ip 10.0.0.2 --nodes camera,franka,policy

Which nodes start is `launch_plan`'s rule, shared with the launch file: camera, franka and
recorder, plus the policy node when a checkpoint is set (argument or parameters file); without
one, a line says that no policy runs. Unset arguments keep the parameters file's values (the
robot at Franka's usual FCI address, 172.16.0.2). Same executables, same parameters file, same
two overrides as the launch file: each node runs as
`python -m real.nodes.<name> --ros-args -r __node:=<name> --params-file <config> [-p key:=value]`.
The config and overrides are checked first (real.config.load_config): a bad one is one line and
exit 2, before anything starts. Each child's output lines are prefixed with `[<name>]`. Ctrl-C or
SIGTERM: SIGINT to every node, wait `--stop-timeout`, SIGKILL the rest, exit 0. A node exiting on its
own with a non-zero code stops the others and the bring-up exits with that code, naming the node;
the franka node exiting at all ends everything (the launch file's on_exit=Shutdown). Stdlib only.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from real.config import load_config
from real.entry_points import NODES

ROOT = Path(__file__).resolve().parents[1]  # holds the `real` and `toto_robot` packages
ALL = [name.removesuffix("_node") for name in NODES]  # camera, franka, policy, recorder
OVERRIDES = {"robot_ip": "franka", "checkpoint": "policy"}  # launch argument -> node
_print_lock = threading.Lock()


def say(text: str, stream=sys.stderr) -> None:
    with _print_lock:
        print(text, file=stream, flush=True)


try:
    _prctl = ctypes.CDLL(None).prctl  # loaded here: the child between fork and exec only calls it
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child: SIGTERM if the bring-up dies without stopping it (Linux; best effort)."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _command(name: str, launch: LaunchPlan) -> list[str]:
    cmd = [sys.executable, "-m", NODES[f"{name}_node"].split(":")[0], "--ros-args", "-r", f"__node:={name}",
           "--params-file", str(Path(launch.config).resolve())]
    for arg, value in launch.overrides.get(name, {}).items():
        cmd += ["-p", f"{arg}:={value}"]
    return cmd


def _pump(name: str, stream) -> None:
    for line in stream:
        say(f"[{name}] {line.rstrip()}", sys.stdout)


DEFAULT_CONFIG = ROOT / "real" / "params" / "cube_pick.yaml"
NO_POLICY = ("no checkpoint: camera, franka and recorder run and no policy acts (record demos); "
             "checkpoint:=<python real/train_bc.py run> adds the policy node")


@dataclass(frozen=True)
class LaunchPlan:
    config: str  # the parameters file every node reads
    nodes: list[str]  # node names to start, in order
    overrides: dict[str, dict[str, str]]  # node -> parameters given as arguments (over the file's)
    note: str | None  # one line to print (no policy)


def launch_plan(config=None, robot_ip: str | None = None, checkpoint: str | None = None,
                nodes: list[str] | None = None) -> LaunchPlan:
    """What `ros2 launch real cube_pick.launch.py` and this bring-up start; ValueError (one line) for
    a bad config, override or node selection. Empty arguments count as not given."""
    config = str(config or DEFAULT_CONFIG)
    given = {"robot_ip": robot_ip or None, "checkpoint": checkpoint or None}
    overrides: dict[str, dict[str, str]] = {}
    for arg, value in given.items():
        if value is not None:
            overrides.setdefault(OVERRIDES[arg], {})[arg] = value
    loaded = load_config(config, {f"{node}.{k}": v for node, params in overrides.items() for k, v in params.items()})
    has_policy = bool(loaded.policy.checkpoint)
    note = None
    if nodes is None:
        nodes = [n for n in ALL if n != "policy" or has_policy]
        note = None if has_policy else NO_POLICY
    unknown = [n for n in nodes if n not in ALL]
    if unknown or not nodes:
        raise ValueError(f"--nodes: {','.join(unknown) or 'empty'} (valid: {','.join(ALL)})")
    if "policy" in nodes and not has_policy:
        raise ValueError("the policy node needs a checkpoint: --checkpoint <run> (or policy.checkpoint in the config)")
    return LaunchPlan(config, list(nodes), overrides, note)


def plan(args) -> LaunchPlan:
    """`launch_plan` for the command line, and a check that every node module exists."""
    names = None if args.nodes is None else [n.strip() for n in args.nodes.split(",") if n.strip()]
    result = launch_plan(args.config, args.robot_ip, args.checkpoint, names)
    for name in result.nodes:
        module = NODES[f"{name}_node"].split(":")[0]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"{name}: node module {module} not found")
    return result


def stop(procs: dict[str, subprocess.Popen], timeout: float) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for name, proc in procs.items():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"bringup: {name} did not stop within {timeout:g} s: killed")
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m real.bringup", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--robot-ip", help="the robot's FCI address (default: franka.robot_ip of the config)")
    parser.add_argument("--checkpoint", help="policy checkpoint (default: policy.checkpoint of the config; none: no policy node)")
    parser.add_argument("--nodes", help=f"comma-separated subset of {','.join(ALL)} (default: all, policy only with a checkpoint)")
    parser.add_argument("--stop-timeout", type=float, default=5.0, help="seconds before SIGKILL on stop")
    args = parser.parse_args(argv)
    try:
        launch = plan(args)
    except ValueError as e:
        say(f"bringup: error: {e}")
        return 2
    names = launch.nodes
    if launch.note:
        say(f"bringup: {launch.note}")

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    procs: dict[str, subprocess.Popen] = {}
    pumps = []
    code = 0
    try:
        for name in names:  # own session: a terminal Ctrl-C reaches the nodes once, through stop()
            procs[name] = proc = subprocess.Popen(
                _command(name, launch), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True, preexec_fn=_die_with_parent)
            pumps.append(threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True))
            pumps[-1].start()
        say(f"bringup: started {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}")
        running = set(names)
        while running and not stopping.wait(0.1):
            for name in sorted(running):
                rc = procs[name].poll()
                if rc is None:
                    continue
                running.discard(name)
                if rc != 0:
                    code = rc if rc > 0 else 128 - rc  # killed by signal N -> 128 + N, as shells do
                    say(f"bringup: {name} exited with code {rc}: stopping the other nodes")
                    running.clear()
                    break
                elif name == "franka":
                    say("bringup: franka exited: stopping the other nodes")
                    running.clear()
                    break
                else:
                    say(f"bringup: {name} exited")
    finally:
        stop(procs, args.stop_timeout)
        for pump in pumps:
            pump.join(2.0)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
