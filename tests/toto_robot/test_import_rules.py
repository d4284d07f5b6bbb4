"""The folders' import rules (docs/design.md, "Folders and what each may import"), checked over every module,
and no import cycle between modules.

Every import counts, also one inside a function: a lazy import is still a dependency (and a cycle that
works only because one side imports late is still a cycle). The only
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


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports (`from a.b import c` counts a.b.c when c is a module)."""
    known = {module_name(p, root): p for p in modules(root)}
    graph = {}
    for name, path in known.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known] or [node.module]
            else:
                continue
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(root: Path) -> list[list[str]]:
    """The import cycles among the project's modules: strongly connected groups of two or more (Tarjan)."""
    graph, index, low, stack, on_stack, found = import_graph(root), {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


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


def test_no_module_imports_itself_through_others():
    found = cycles(ROOT)
    assert not found, "import cycles (move the shared piece down into a module both can import):\n" + "\n".join(
        " <-> ".join(group) for group in found)


def test_a_cycle_closed_by_a_lazy_import_is_caught(tmp_path):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "scene.py").write_text("from sim.tasks import TaskSpec\n")
    (tmp_path / "sim" / "tasks.py").write_text("def layout():\n    from sim import kinds\n")
    (tmp_path / "sim" / "kinds.py").write_text("import sim.scene\n")
    (tmp_path / "sim" / "plain.py").write_text("from sim.tasks import layout\n")
    assert cycles(tmp_path) == [["sim.kinds", "sim.scene", "sim.tasks"]]
