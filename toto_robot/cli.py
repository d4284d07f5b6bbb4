"""The one-line bad-input convention of every hydra entry point, in one place.

A user's mistake (missing file, wrong value) surfaces as ValueError or FileNotFoundError deep in a
job; the entry point prints `error: <message>` on stderr and exits 2 instead of a traceback.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

BAD_INPUT = (ValueError, FileNotFoundError)


@contextmanager
def bad_input_exits(*also: type[BaseException]):
    """`with bad_input_exits(): ...`: BAD_INPUT (and `also`) -> one stderr line, exit code 2."""
    try:
        yield
    except (*BAD_INPUT, *also) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
