"""python -m real.evaluate: the trial protocol with a fake robot, operator and clock (any python), the
terminal reader on a real pipe, and, with rclpy, the ROS service clients against in-process
`home` / `enable` servers, driven through a subprocess whose stdin is fed as an operator would.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.real.ros import ros_context, ros_domain  # noqa: E402

pytestmark = pytest.mark.ros

from real.evaluate import Console, ControlError, Record, main, parse_args, run_trials  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOMAIN = ros_domain("evaluate")
ROS_ENV = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(DOMAIN),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


class FakeRobot:
    """home()/enable(on) calls in order; `fail_home_at` makes that home call (1-based) fail."""

    def __init__(self, fail_home_at: int = 0):
        self.calls: list = []
        self.fail_home_at = fail_home_at

    def home(self):
        self.calls.append("home")
        if self.calls.count("home") == self.fail_home_at:
            raise ControlError("service /franka/home failed: joint 4 out of range")

    def enable(self, on: bool):
        self.calls.append(on)


class FakeOperator:
    """Scripted answers; `trials` gives each wait_enter: None = runs to the timeout, a number = Enter
    after that many seconds, an exception = raised. A fake clock moves only in wait_enter."""

    def __init__(self, answers, trials):
        self.answers, self.trials, self.said, self.t = list(answers), list(trials), [], 100.0

    def say(self, text, end="\n"):
        self.said.append(text)

    def ask(self, prompt):
        self.said.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)

    def wait_enter(self, seconds, label):
        pressed = self.trials.pop(0)
        if isinstance(pressed, BaseException):
            raise pressed
        self.t += seconds if pressed is None else pressed
        return pressed is not None

    def clock(self):
        return self.t


def test_protocol_records_redo_reasks_and_saves_after_every_trial(tmp_path):
    out = tmp_path / "eval.json"
    record = Record.open(out, "runs/bc", 3, {"trial_s": 30.0}, "red cube")
    operator = FakeOperator(["", "y", "", "maybe", "r", "", "N", "", "yes"], [None, 2.5, 7.0, 1.25])
    robot = FakeRobot()
    saved = []
    save = record.save
    record.save = lambda: (save(), saved.append(json.loads(out.read_text())["trials_done"]))
    assert run_trials(robot, record, operator, 30.0, clock=operator.clock, wall=lambda: "T") is True
    assert robot.calls == ["home", True, False] * 4
    assert saved == [1, 2, 3]  # rewritten after every recorded trial, not after the redo
    assert "please answer one of y/n/r/q" in operator.said
    data = json.loads(out.read_text())
    assert [(t["index"], t["success"], t["ended_by"], t["duration_s"]) for t in data["trials"]] == [
        (1, True, "timeout", 30.0), (2, False, "operator", 7.0), (3, True, "operator", 1.25)]
    assert data["trials_done"] == data["trials_planned"] == 3 and data["successes"] == 2
    assert data["success_rate"] == pytest.approx(2 / 3) and len(data["wilson_95"]) == 2
    assert data["checkpoint"] == "runs/bc" and data["note"] == "red cube" and data["config"] == {"trial_s": 30.0}
    assert data["trials"][0]["started_at"] == "T" and data["finished"] == "T" and data["started"]
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_summary_line_uses_the_wilson_interval(tmp_path):
    record = Record(tmp_path / "x.json", "", 16, {}, "", "T", [{"success": i < 11} for i in range(16)])
    assert record.summary() == "11/16 successes (69%, 95% CI 44–86%)"


def _main(argv, robot, operator, capsys):
    code = main(argv, make_control=lambda args: robot, operator=operator)
    return code, capsys.readouterr().err.strip().splitlines()


def test_quit_keeps_saved_trials_and_a_rerun_resumes(tmp_path, capsys):
    out = tmp_path / "eval.json"
    argv = ["--trials", "3", "--checkpoint", "runs/bc", "--out", str(out)]
    robot = FakeRobot()
    code, err = _main(argv, robot, FakeOperator(["", "y", "", "q"], [None, None]), capsys)
    assert (code, err) == (0, [])
    assert robot.calls[-1] is False and json.loads(out.read_text())["trials_done"] == 1
    operator = FakeOperator(["", "n", "", "y"], [1.0, None])
    code, err = _main(argv, FakeRobot(), operator, capsys)
    assert (code, err) == (0, [])
    assert f"resuming {out} after trial 1 of 3" in operator.said
    assert operator.said[-1] == f"2/3 successes (67%, 95% CI 21–94%) -> {out}"
    assert [t["index"] for t in json.loads(out.read_text())["trials"]] == [1, 2, 3]
    # complete: nothing to do, no robot needed
    code, _ = _main(argv, None, FakeOperator([], []), capsys)
    assert code == 0
    # another policy into the same file: one line, exit 2
    code, err = _main([*argv[:3], "runs/other", "--out", str(out)], FakeRobot(), FakeOperator([], []), capsys)
    assert code == 2 and len(err) == 1 and "pass a new --out" in err[0] and "'runs/bc'" in err[0], err


def test_home_failure_is_one_line_exit_1_after_disabling_the_policy(tmp_path, capsys):
    robot = FakeRobot(fail_home_at=2)
    code, err = _main(["--out", str(tmp_path / "e.json")], robot, FakeOperator(["", "y", ""], [None]), capsys)
    assert code == 1 and err == ["python -m real.evaluate: error: service /franka/home failed: joint 4 out of range"]
    assert robot.calls == ["home", True, False, "home", False]
    assert json.loads((tmp_path / "e.json").read_text())["trials_done"] == 1


def test_ctrl_c_disables_the_policy_and_keeps_saved_trials(tmp_path, capsys):
    robot = FakeRobot()
    operator = FakeOperator(["", "n", ""], [None, KeyboardInterrupt()])
    code, err = _main(["--out", str(tmp_path / "e.json")], robot, operator, capsys)
    assert code == 130 and err == [] and robot.calls[-2:] == [True, False]
    assert "1 trials kept" in operator.said[-1]
    assert json.loads((tmp_path / "e.json").read_text())["trials_done"] == 1


def test_sigterm_disables_the_policy_like_ctrl_c(tmp_path, capsys):
    class TermDuringTrial(FakeOperator):
        def wait_enter(self, seconds, label):
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. a supervisor stopping the session
            return super().wait_enter(seconds, label)

    robot = FakeRobot()
    before = signal.getsignal(signal.SIGTERM)
    code, err = _main(["--out", str(tmp_path / "e.json")], robot, TermDuringTrial([""], [None]), capsys)
    assert code == 130 and robot.calls == ["home", True, False]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only there while main runs


def test_default_out_is_named_after_the_checkpoint():
    assert parse_args(["--checkpoint", "runs/real_bc/"]).out == Path("runs/real/eval/real_bc.json")
    assert parse_args([]).out == Path("runs/real/eval/eval.json")


def test_console_reads_lines_from_a_pipe_without_blocking():
    read, write = os.pipe()
    try:
        console = Console(fd=read, out=open(os.devnull, "w"))
        os.write(write, b"a\nb\n")
        assert console.ask("?") == "a"
        assert console.wait_enter(5.0, "t") is True  # "b" was already there
        t0 = time.monotonic()
        assert console.wait_enter(0.3, "t") is False and time.monotonic() - t0 >= 0.3
        os.write(write, b"y")
        os.close(write)
        write = None
        assert console.ask("?") == "y"  # a last line without newline still counts
        with pytest.raises(EOFError):
            console.ask("?")
        assert console.wait_enter(0.2, "t") is False  # closed input: the trial runs to its end
    finally:
        os.close(read)
        if write is not None:
            os.close(write)


# --- ROS: real service clients against in-process servers --------------------------------------

@pytest.fixture
def servers(monkeypatch):
    """`servers(franka=..., policy=..., checkpoint=...)` starts Trigger `<franka>/home` and SetBool
    `<policy>/enable` (None: not offered), the policy node with a `checkpoint` parameter if given;
    returns the log of calls. `log.fail_home` makes home answer failure."""
    pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 PyPI wheels, docs/design.md section 10)")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import SetBool, Trigger

    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID"):  # for RosTrialControl in this process
        monkeypatch.setenv(key, ROS_ENV[key])
    ctx = ros_context(DOMAIN)
    ex = SingleThreadedExecutor(context=ctx)
    nodes, threads = [], []

    class Log(list):
        fail_home = False

    log = Log()

    def home(req, resp):
        log.append("home")
        resp.success, resp.message = not log.fail_home, "not homed: joint 4 out of range" if log.fail_home else ""
        return resp

    def enable(req, resp):
        log.append(bool(req.data))
        resp.success = True
        return resp

    def start(franka="franka", policy="policy", checkpoint=None):
        for name, kind, srv, cb in ((franka, Trigger, "~/home", home), (policy, SetBool, "~/enable", enable)):
            if name:
                node = rclpy.create_node(name, context=ctx)
                node.create_service(kind, srv, cb)
                if cb is enable and checkpoint is not None:  # what the real policy node declares
                    node.declare_parameter("checkpoint", checkpoint)
                ex.add_node(node)
                nodes.append(node)
        threads.append(threading.Thread(target=ex.spin, daemon=True))
        threads[0].start()
        return log

    yield start
    ex.shutdown(timeout_sec=2.0)
    for thread in threads:
        thread.join(5.0)
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_no_franka_node_is_one_line_exit_1_with_the_policy_disabled(servers, tmp_path):
    log = servers(franka=None)
    done = subprocess.run([sys.executable, "-m", "real.evaluate", "--service-timeout-s", "4",
                           "--out", str(tmp_path / "e.json")], cwd=REPO, env=ROS_ENV, input="\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "python -m real.evaluate: error: service /franka/home is not available after 4 s (is the franka node running?)"]
    assert log and set(log) == {False} and not (tmp_path / "e.json").exists()  # disabled, never enabled


def test_failed_home_is_a_control_error(servers):
    from real.evaluate import RosTrialControl

    log = servers(franka="arm_h", policy="pol_h")
    log.fail_home = True
    control = RosTrialControl("arm_h", "pol_h", service_timeout_s=5.0)
    try:
        control.connect()
        with pytest.raises(ControlError, match=r"^service /arm_h/home failed: not homed: joint 4 out of range$"):
            control.home()
    finally:
        control.close()
    assert log == [False, "home"]


def test_two_trials_through_ros_and_stdin(servers, tmp_path):
    """Trial 1 is ended by Enter and judged a success, trial 2 runs to --trial-s and fails."""
    log = servers(franka="arm", policy="pol", checkpoint=str(tmp_path / "bc_run"))
    out = tmp_path / "eval.json"
    proc = subprocess.Popen([sys.executable, "-m", "real.evaluate", "--trials", "2", "--trial-s", "1.5",
                             "--checkpoint", str(tmp_path / "bc_run"), "--out", str(out), "--franka-node", "arm",
                             "--policy-node", "pol", "--note", "test"],
                            cwd=REPO, env=ROS_ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("\n")  # scene reset
        proc.stdin.flush()
        _wait_for(lambda: log.count(True) == 1, f"trial 1 did not start: {log}")
        proc.stdin.write("\ny\n\n")  # end trial 1, success, reset for trial 2
        proc.stdin.flush()
        _wait_for(lambda: log.count(False) == 3, f"trial 2 did not end: {log}")
        stdout, stderr = proc.communicate("n\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert log == [False, "home", True, False, "home", True, False]
    data = json.loads(out.read_text())
    assert data["checkpoint"] == str(tmp_path / "bc_run") and data["note"] == "test"
    assert (data["trials_done"], data["successes"], data["trials_planned"]) == (2, 1, 2)
    (t1, t2) = data["trials"]
    assert (t1["success"], t1["ended_by"], t2["success"], t2["ended_by"]) == (True, "operator", False, "timeout")
    assert t1["duration_s"] < 1.4 and 1.5 <= t2["duration_s"] < 3.0
    assert data["config"]["franka_node"] == "arm" and data["config"]["trial_s"] == 1.5
    assert stdout.strip().splitlines()[-1] == f"1/2 successes (50%, 95% CI 9–91%) -> {out}"


def test_checkpoint_other_than_the_running_policy_is_one_line_exit_2(servers, tmp_path):
    log = servers(franka="arm_c", policy="pol_c", checkpoint=str(tmp_path / "other_run"))
    done = subprocess.run([sys.executable, "-m", "real.evaluate", "--checkpoint", str(tmp_path / "bc_run"),
                           "--out", str(tmp_path / "e.json"), "--franka-node", "arm_c", "--policy-node", "pol_c"],
                          cwd=REPO, env=ROS_ENV, input="\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"python -m real.evaluate: error: the policy node runs {tmp_path / 'other_run'}, not --checkpoint "
        f"{tmp_path / 'bc_run'}: restart it or fix --checkpoint"]
    assert set(log) == {False} and not (tmp_path / "e.json").exists()  # disabled, never homed nor enabled
