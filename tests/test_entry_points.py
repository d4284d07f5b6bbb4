"""Every entry point starts the same three ways: its console script, `python -m <module>`, and, for the
commands users type (README), `python pretrain/run.py` / `python sim/train_policy.py` from any folder.

Nothing edits sys.path: a file run as a script imports the installed package. So no module in a folder
whose files users run may share its name with an importable top-level module (it would shadow it).
`ros2 launch real cube_pick.launch.py` needs ROS 2's launch package: tests/real/test_launch_file.py.
"""
from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PACKAGES = ("toto_robot", "encoder", "policies", "sim", "pretrain", "real")
TYPED = [["pretrain/run.py"], ["sim/train_policy.py", "task=franka_pick"]]  # as the README has users type them
RUN_AS_FILES = ("pretrain", "sim", "real")  # folders with files users run as `python <folder>/<file>.py`


def run_all(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """The commands side by side (each --help costs an interpreter and hydra's start-up)."""
    procs = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


def test_every_console_script_is_installed_and_answers_help(tmp_path):
    missing = [name for name in SCRIPTS if shutil.which(name) is None]
    assert not missing, f"not on PATH: {missing} (reinstall: pip install -e . after a change to [project.scripts])"
    for name, done in zip(SCRIPTS, run_all([[shutil.which(name), "--help"] for name in SCRIPTS], tmp_path)):
        assert done.returncode == 0, f"{name} --help: {done.stderr[-1500:]}"
        assert "usage" in done.stdout or "powered by Hydra" in done.stdout, f"{name} --help printed {done.stdout[:300]!r}"


def test_the_hydra_entry_points_run_as_modules(tmp_path):
    hydra_modules = sorted(target.partition(":")[0] for target in SCRIPTS.values() if target.endswith(":cli"))
    assert len(hydra_modules) == 7
    for module, done in zip(hydra_modules, run_all([[sys.executable, "-m", m, "--help"] for m in hydra_modules], tmp_path)):
        assert done.returncode == 0 and "powered by Hydra" in done.stdout, f"python -m {module} --help: {done.stderr[-1500:]}"


def test_the_typed_commands_work_from_another_folder(tmp_path):
    for command, done in zip(TYPED, run_all([[sys.executable, str(ROOT / c[0]), *c[1:], "--help"] for c in TYPED], tmp_path)):
        assert done.returncode == 0 and "powered by Hydra" in done.stdout, f"python {' '.join(command)} --help: {done.stderr[-1500:]}"


def test_an_encoder_file_run_as_a_script_says_how_to_run_it(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "encoder" / "probe.py")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == (
        "run it as `python -m encoder.probe` or `toto-probe`: as a file, encoder/tokenizers/ shadows `tokenizers`")


def test_no_module_edits_sys_path():
    edits = []
    for path in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
            target = node.targets[0].value if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) else target
            if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", "") == "sys":
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not edits, f"sys.path edits: {edits}"


@pytest.mark.parametrize("folder", RUN_AS_FILES)
def test_no_module_in_a_run_as_file_folder_shadows_an_installed_one(folder):
    names = {p.stem for p in (ROOT / folder).glob("*.py")} | {p.name for p in (ROOT / folder).iterdir() if (p / "__init__.py").is_file()}
    names -= {"__init__"}
    clashes = sorted(n for n in names if n in sys.stdlib_module_names or _installed_elsewhere(n))
    assert not clashes, f"{folder}/ modules shadow importable modules when a file there runs as a script: {clashes}"


def _installed_elsewhere(name: str) -> bool:
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    return spec is not None and spec.origin is not None and not Path(spec.origin).resolve().is_relative_to(ROOT)
