"""Real-robot evaluation (`python -m real.evaluate`): N trials (16 as in the paper), each judged by
the operator, summarised in one JSON file with a Wilson 95% interval.

Per trial the operator resets the scene and presses Enter; the franka node moves home
(`<franka>/home`, Trigger); the policy node is enabled (`<policy>/enable`, SetBool) until
`--trial-s` passes or the operator presses Enter; the policy is disabled and the operator answers
y / n / r (redo: not recorded) / q (quit). Run the nodes with `start_enabled: false` so the policy
only acts inside trials (this script also disables it when it connects).

The JSON is rewritten atomically after every trial, so a crash, Ctrl-C or 'q' loses at most the
trial in progress, and rerunning with the same --out resumes after the last saved trial (the
checkpoint must be the same: one file is one policy). Operator input, clock and robot control are
injected (`run_trials`), so the protocol is tested without ROS; `RosTrialControl` is the ROS side.
Failures are one line on stderr: exit 1 for a missing or failing service, 2 for a bad --out file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from policies.curves import wilson_interval
from real.services import ServiceCaller, ServiceError
from toto_robot.io import atomic_write

PROG = "python -m real.evaluate"


ControlError = ServiceError  # a service missing, not answering or failing: one line, exit 1


class RecordError(Exception):
    """An --out file that cannot be resumed: one line, exit 2."""


class TrialControl(Protocol):
    def home(self) -> None: ...

    def enable(self, on: bool) -> None: ...


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --- the record --------------------------------------------------------------------------------

@dataclass
class Record:
    """The JSON summary. `trials`: the recorded (not redone) trials in order; `config`: this script's
    settings (trial length, node names, timeouts); `started`: the first session; `finished`: when the
    last trial was recorded (null until one is)."""

    path: Path
    checkpoint: str
    planned: int
    config: dict
    note: str
    started: str
    trials: list
    finished: str | None = None

    @classmethod
    def open(cls, path: Path, checkpoint: str, planned: int, config: dict, note: str) -> "Record":
        """A new record, or the one at `path` to resume (same checkpoint; its note is kept unless given)."""
        if not path.exists():
            return cls(path, checkpoint, planned, config, note, now_iso(), [])
        try:
            old = json.loads(path.read_text())
            trials, old_checkpoint = list(old["trials"]), str(old["checkpoint"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RecordError(f"{path}: cannot resume from it ({type(e).__name__}: {e}); pass a new --out") from None
        if old_checkpoint != checkpoint:
            raise RecordError(f"{path} holds trials of checkpoint {old_checkpoint!r}, not {checkpoint!r}: "
                              "pass a new --out for another policy")
        return cls(path, checkpoint, planned, config, note or old.get("note", ""), old.get("started") or now_iso(),
                   trials, old.get("finished"))

    @property
    def successes(self) -> int:
        return sum(bool(t["success"]) for t in self.trials)

    def summary(self) -> str:
        k, n = self.successes, len(self.trials)
        if n == 0:
            return "0 trials recorded"
        lo, hi = wilson_interval(k, n)
        return f"{k}/{n} successes ({100 * k / n:.0f}%, 95% CI {100 * lo:.0f}–{100 * hi:.0f}%)"

    def save(self) -> None:
        k, n = self.successes, len(self.trials)
        body = {"checkpoint": self.checkpoint, "note": self.note, "trials_done": n, "trials_planned": self.planned,
                "successes": k, "success_rate": k / n if n else None,
                "wilson_95": list(wilson_interval(k, n)) if n else None,
                "started": self.started, "finished": self.finished, "config": self.config, "trials": self.trials}
        with atomic_write(self.path) as tmp:  # temp file + fsync + os.replace
            tmp.write_text(json.dumps(body, indent=2) + "\n")


# --- the operator ------------------------------------------------------------------------------

class Console:
    """The operator at a terminal. Reads the raw file descriptor with its own line buffer: a buffered
    sys.stdin may hold lines that select() no longer sees, and piped answers (tests) arrive at once."""

    def __init__(self, fd: int | None = None, out=None, clock: Callable[[], float] = time.monotonic):
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.out = out or sys.stdout
        self.clock = clock
        self._buf, self._eof = b"", False

    def say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.out, flush=True)

    def _line(self, timeout: float | None) -> str | None:
        """The next line, None on timeout; EOFError once the input is closed and drained."""
        while b"\n" not in self._buf:
            if self._eof:
                if self._buf:
                    self._buf += b"\n"
                    break
                raise EOFError
            if not select.select([self.fd], [], [], timeout)[0]:
                return None
            chunk = os.read(self.fd, 4096)
            self._buf += chunk
            self._eof = not chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def ask(self, prompt: str) -> str:
        self.say(prompt, end=" ")
        return self._line(None)

    def wait_enter(self, seconds: float, label: str) -> bool:
        """Show the elapsed time until Enter (True) or `seconds` pass (False). Closed input just waits."""
        start = self.clock()
        live = self.out.isatty()
        while (left := seconds - (self.clock() - start)) > 0:
            if live:
                self.say(f"\r{label}: {self.clock() - start:5.1f} s of {seconds:g} s (Enter ends it) ", end="")
            try:
                if self._line(min(left, 0.2)) is not None:
                    return True
            except EOFError:
                time.sleep(min(left, 0.2))
        if live:
            self.say("")  # the operator's Enter did not end the elapsed-time line
        return False


# --- the protocol ------------------------------------------------------------------------------

def _choice(operator, prompt: str, valid: str) -> str:
    while (answer := operator.ask(prompt).lower()[:1]) not in tuple(valid):
        operator.say(f"please answer one of {'/'.join(valid)}")
    return answer


def run_trials(control: TrialControl, record: Record, operator, trial_s: float,
               clock: Callable[[], float] = time.monotonic, wall: Callable[[], str] = now_iso) -> bool:
    """Trials until `record.planned` are recorded; returns False if the operator quit. The record is
    saved after every recorded trial. `operator` has say(text), ask(prompt) -> str and
    wait_enter(seconds, label) -> bool (True: Enter pressed)."""
    while len(record.trials) < record.planned:
        index = len(record.trials) + 1
        label = f"trial {index}/{record.planned}"
        try:
            if operator.ask(f"{label}: reset the scene, then press Enter (q: quit)").lower().startswith("q"):
                return False
        except EOFError:
            return False
        operator.say(f"{label}: moving home")
        control.home()
        control.enable(True)
        started_at, t0 = wall(), clock()
        operator.say(f"{label}: policy running")
        pressed = operator.wait_enter(trial_s, label)
        control.enable(False)
        duration = clock() - t0
        ended_by = "operator" if pressed else "timeout"
        operator.say(f"{label}: ended by {ended_by} after {duration:.1f} s, policy disabled")
        try:
            answer = _choice(operator, "success? [y/n/r(edo)/q(uit)]", "ynrq")
        except EOFError:
            answer = "q"
        if answer == "q":
            return False
        if answer == "r":
            operator.say(f"{label}: redo (not recorded)")
            continue
        record.trials.append({"index": index, "success": answer == "y", "duration_s": round(duration, 3),
                              "ended_by": ended_by, "started_at": started_at})
        record.finished = wall()
        record.save()
        operator.say(f"{label}: {'success' if answer == 'y' else 'failure'}; so far {record.summary()}")
    return True


# --- ROS ---------------------------------------------------------------------------------------

class RosTrialControl:
    """home() and enable() through the franka and policy nodes' services (real.services)."""

    def __init__(self, franka_node: str = "franka", policy_node: str = "policy", service_timeout_s: float = 5.0,
                 home_timeout_s: float = 120.0):
        self._caller = ServiceCaller("evaluate", service_timeout_s)
        self._policy_node = policy_node
        self.home_timeout_s = home_timeout_s
        self._home = self._caller.client(f"{franka_node}/home", False, "is the franka node running?")
        self._enable = self._caller.client(f"{policy_node}/enable", True, "is the policy node running?")

    def connect(self) -> None:
        """Both services must be there; the policy is disabled first, so it does not act during the
        first reset even if it was started enabled."""
        self.enable(False)
        self._caller.wait(self._home)

    def policy_checkpoint(self) -> str | None:
        """The checkpoint the policy node was started with (its `checkpoint` parameter)."""
        return self._caller.get_parameter(self._policy_node, "checkpoint")

    def home(self) -> None:
        self._caller.call(self._home, None, self.home_timeout_s)

    def enable(self, on: bool) -> None:
        self._caller.call(self._enable, on)

    def close(self) -> None:
        self._caller.close()


# --- the command line --------------------------------------------------------------------------

def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


HELP = """Evaluate the policy on the real robot: N trials judged by the operator, one JSON summary.

Each trial: reset the scene and press Enter; the arm moves home (<franka-node>/home); the policy
runs (<policy-node>/enable) until --trial-s passes or you press Enter; then answer
y (success), n (failure), r (redo, not recorded) or q (quit, saved trials are kept).
The JSON is rewritten after every trial; rerunning with the same --out resumes it.
Start the stack first (ros2 launch real cube_pick.launch.py, or python -m real.bringup),
preferably with the policy's start_enabled: false."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"example: {PROG} --checkpoint runs/real_bc --note 'wrist cam, red cube'")
    p.add_argument("--trials", type=_positive(int), default=16, metavar="N",
                   help="trials to record (default 16, as the paper)")
    p.add_argument("--trial-s", type=_positive(float), default=60.0, metavar="S",
                   help="longest trial in seconds; Enter ends one earlier (default 60)")
    p.add_argument("--checkpoint", default="", metavar="DIR",
                   help="the policy the nodes run, recorded so results say which policy (a resumed file must match)")
    p.add_argument("--out", type=Path, metavar="JSON", help="summary, rewritten after every trial; an existing "
                   "one is resumed (default runs/real/eval/<checkpoint dir name or 'eval'>.json)")
    p.add_argument("--note", default="", metavar="TEXT", help="free text stored in the JSON (scene, operator, ...)")
    p.add_argument("--franka-node", default="franka", metavar="NAME",
                   help="franka node name: calls <NAME>/home (default franka)")
    p.add_argument("--policy-node", default="policy", metavar="NAME",
                   help="policy node name: calls <NAME>/enable (default policy)")
    p.add_argument("--service-timeout-s", type=_positive(float), default=5.0, metavar="S",
                   help="wait this long for a service to appear or answer (default 5)")
    p.add_argument("--home-timeout-s", type=_positive(float), default=120.0, metavar="S",
                   help="wait this long for the arm to reach home (default 120)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path("runs/real/eval") / f"{Path(args.checkpoint).name or 'eval'}.json"
    return args


def main(argv=None, make_control: Callable[[argparse.Namespace], object] | None = None, operator=None) -> int:
    """`make_control(args)` and `operator` replace ROS and the terminal in tests."""
    args = parse_args(argv)
    err = lambda text: print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)  # noqa: E731
    config = {k: getattr(args, k) for k in ("trial_s", "franka_node", "policy_node", "service_timeout_s",
                                             "home_timeout_s")}
    try:
        record = Record.open(args.out, args.checkpoint, args.trials, config, args.note)
    except RecordError as e:
        err(e)
        return 2
    operator = operator or Console()
    if len(record.trials) >= record.planned:
        operator.say(f"{args.out} already has {len(record.trials)} of {record.planned} trials: {record.summary()}")
        return 0
    if record.trials:
        operator.say(f"resuming {args.out} after trial {len(record.trials)} of {record.planned}")
    control = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's kill disables the policy like Ctrl-C
    try:
        if make_control is None:
            control = RosTrialControl(args.franka_node, args.policy_node, args.service_timeout_s, args.home_timeout_s)
            control.connect()
        else:
            control = make_control(args)
        running = getattr(control, "policy_checkpoint", lambda: None)()
        if args.checkpoint and running and Path(running).resolve() != Path(args.checkpoint).resolve():
            _disable(control)
            err(f"the policy node runs {running}, not --checkpoint {args.checkpoint}: restart it or fix --checkpoint")
            return 2
        run_trials(control, record, operator, args.trial_s)
    except ControlError as e:
        _disable(control)
        err(e)
        return 1
    except KeyboardInterrupt:
        _disable(control)
        operator.say(f"\ninterrupted: policy disabled, {len(record.trials)} trials kept in {args.out}")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if control is not None and hasattr(control, "close"):
            control.close()
    operator.say(f"{record.summary()} -> {args.out}" if record.trials else
                 f"no trials recorded ({args.out} not written)")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _disable(control) -> None:
    """Best effort on the way out: the policy must not keep acting after this script stops."""
    if control is not None:
        try:
            control.enable(False)
        except (ControlError, KeyboardInterrupt):
            pass


if __name__ == "__main__":
    raise SystemExit(main())
