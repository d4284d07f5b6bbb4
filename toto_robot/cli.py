"""The one-line bad-input convention of every hydra entry point, and its one door (`hydra_entry`), in one place.

A user's mistake (missing file, wrong value) surfaces as ValueError or FileNotFoundError deep in a
job; the entry point prints `error: <message>` on stderr and exits 2 instead of a traceback.
`settings(cfg)` turns the composed config into its schema's object after checking that every key
is the schema's: hydra accepts `+train.stpes=2` (its own hint for a misspelt key) and the typo
would be ignored.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from toto_robot.io import DiskFullError

BAD_INPUT = (ValueError, FileNotFoundError)
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with where the job stood (e.g. "at step 40"); raised by loops that know it."""


@contextmanager
def bad_input_exits(*also: type[BaseException]):
    """`with bad_input_exits(): ...`: BAD_INPUT (and `also`) and a full disk -> one stderr line, exit
    code 2; Ctrl-C -> one line saying how to resume, exit code 130 (files are written atomically, so
    nothing truncated is left under a final name)."""
    try:
        yield
    except (*BAD_INPUT, DiskFullError, *also) as error:
        print(f"error: {error.strerror if isinstance(error, DiskFullError) else error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as error:
        where = f" {error}" if str(error) else ""
        print(f"interrupted{where}; rerun the same command to resume", file=sys.stderr)
        sys.exit(INTERRUPTED)


def unknown_keys(cfg, schema=None, prefix: str = "") -> list[tuple[str, list[str]]]:
    """[(dotted key, the valid keys beside it)] for keys of `cfg` that its structured schema lacks.

    Fields typed as dictionaries (e.g. compare's `variants`) and list items are the user's to fill."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    schema = schema or OmegaConf.get_type(cfg)
    if not dataclasses.is_dataclass(schema):
        return []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = []
    for key in cfg:
        if key not in fields:
            out.append((f"{prefix}{key}", sorted(fields)))
            continue
        child = cfg._get_node(key)
        child_type = OmegaConf.get_type(cfg, key) if isinstance(child, DictConfig) else None
        if isinstance(child, DictConfig) and dataclasses.is_dataclass(child_type):
            out += unknown_keys(child, child_type, f"{prefix}{key}.")
    return out


def settings(cfg):
    """The schema object of a composed hydra config; a key outside the schema is one ValueError line
    naming it and the closest valid keys."""
    import difflib

    from omegaconf import OmegaConf

    bad = unknown_keys(cfg)
    if bad:
        key, valid = bad[0]
        parent, _, leaf = key.rpartition(".")
        close = difflib.get_close_matches(leaf, valid, n=3, cutoff=0.5)
        where = f"{parent}." if parent else ""
        hint = f"did you mean {', '.join(where + c for c in close)}?" if close else f"valid: {', '.join(where + v for v in valid)}"
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"unknown setting {key}{more}, with or without +: {hint}")
    return OmegaConf.to_object(cfg)


def refuse_file_as_out(argv: list[str] | None = None, key: str = "out") -> None:
    """Before hydra starts: `out=` naming an existing file is one line (hydra would first fail to make
    its run folder there, with a traceback). Call it ahead of an entry point's hydra main."""
    for arg in (sys.argv[1:] if argv is None else argv):
        name, _, value = arg.lstrip("+").partition("=")
        if name == key and value:
            if Path(value).expanduser().is_file():
                print(f"error: {key}={value} is a file, not a run folder: give a folder path", file=sys.stderr)
                sys.exit(2)


def conf_dir(module_file: str) -> str:
    """The absolute `conf/` beside an entry module: hydra resolves a relative config_path as a Python package
    (`encoder.conf`) when the module runs from a console script, and the conf folders are data, not packages."""
    return str(Path(module_file).resolve().parent / "conf")


def hydra_entry(main: Callable[[], None], *checks: Callable[[list[str]], None]) -> Callable[[], None]:
    """The one door of a hydra entry point, for `python -m <module>`, its console script and `python <file>.py`
    alike: each of `checks(argv)` (a ValueError) and `out=` naming a file fail in one line before hydra starts."""

    def start() -> None:
        for check in checks:
            try:
                check(sys.argv[1:])
            except ValueError as error:
                print(f"error: {error}", file=sys.stderr)
                sys.exit(2)
        refuse_file_as_out()
        main()

    return start
