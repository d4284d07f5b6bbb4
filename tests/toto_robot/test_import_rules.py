"""The folders' import rules (docs/design.md, "Folders and what each may import"), checked over every module.

Every import counts, also one inside a function: a lazy import is still a dependency. The only
modules allowed to import any folder are the composition roots below: the facade and the
entry points that wire folders together (e.g. encoder/probe.py hands sim's renderer to the probes).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("toto_robot", "encoder", "policies", "sim", "pretrain", "real")
MAY_IMPORT = {
    "toto_robot": set(),  # the core: compute, io, checkpoints, media, ... below everything
    "encoder": {"toto_robot"},  # pixels -> features; no robots, no training loops, no sim
    "policies": {"toto_robot", "encoder"},  # learning on features; talks to envs through gymnasium only
    "sim": {"toto_robot", "encoder", "policies"},
    "pretrain": {"toto_robot", "encoder", "sim"},  # sim: the embedded corpus renders expert episodes
    "real": {"toto_robot", "encoder", "policies"},  # the robot stack never imports the simulator
}
COMPOSITION_ROOTS = {
    "toto_robot/__init__.py": "the public facade (load_encoder, make_env), imports inside its functions",
    "toto_robot/main_job.py": "the main job runs every stage",
    "encoder/probe.py": "passes sim's episode renderer to the probes' embedded robot clips",
    "encoder/track.py": "passes sim's mask-set renderer to tracking's embedded videos",
}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(root: Path) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (root / folder).rglob("*.py"))


def violations(root: Path) -> list[str]:
    broken = []
    for path in modules(root):
        relative = path.relative_to(root).as_posix()
        if relative in COMPOSITION_ROOTS:
            continue
        folder = path.relative_to(root).parts[0]
        for module in sorted(imports(path)):
            top = module.split(".")[0]
            if top in FOLDERS and top != folder and top not in MAY_IMPORT[folder]:
                broken.append(f"{relative} imports {module}")
    return broken


def test_every_folder_imports_only_what_the_design_allows():
    broken = violations(ROOT)
    assert not broken, "import rules (docs/design.md):\n" + "\n".join(broken)


def test_the_rules_cover_every_folder_and_the_roots_exist():
    assert set(MAY_IMPORT) == set(FOLDERS)
    assert all((ROOT / root).is_file() for root in COMPOSITION_ROOTS)
    assert len(modules(ROOT)) > 100  # the walk found the code


def test_a_lazy_import_across_the_rules_is_caught(tmp_path):
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "bad.py").write_text("def f():\n    from sim.tasks import TASKS\n")
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "fine.py").write_text("import policies.actor\nfrom encoder import tokens\n")
    assert violations(tmp_path) == ["encoder/bad.py imports sim.tasks"]
