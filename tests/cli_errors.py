"""The project's bad-input convention, checked the same way for every entry point: exit code 2 and
exactly one `error:` line on stderr, no traceback."""
from __future__ import annotations

import subprocess


def one_line_error(process: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a failed CLI run (asserts the convention)."""
    assert process.returncode == 2, process.stderr[-2000:]
    lines = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr[-2000:]
    return lines[0]
