"""The package's shape: no import cycle among rayevolve's modules (imports at any depth
of a module count, those inside functions too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rayevolve"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n for n in names if n in known}
    return found


def test_no_import_cycle():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "shims" not in p.parts}
    known = set(files)
    graph = {name: imports_of(path, known) - {name} for name, path in files.items()}
    for name in graph:  # a package's __init__ is reached through its modules' imports
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_sdist_carries_every_folder_the_wheel_packages():
    """setup.py copies conf/ and the task folders conf/task/*.yaml name into the wheel;
    the wheel is built from the sdist, so MANIFEST.in must graft each of them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rayevolve_setup", ROOT / "setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)  # setup() itself only runs as __main__
    grafted = {
        line.split()[1]
        for line in (ROOT / "MANIFEST.in").read_text().splitlines()
        if line.startswith("graft ")
    }
    packaged = setup.packaged_folders()
    assert "conf" in packaged and "experiments/circle_packing" in packaged
    assert set(packaged) <= grafted, f"add to MANIFEST.in: {sorted(set(packaged) - grafted)}"
    assert all((ROOT / folder).is_dir() for folder in packaged)


def test_the_architecture_diagram_shows_every_actor_role():
    from rayevolve.roles import Role

    doc = (ROOT / "docs" / "architecture.md").read_text()
    diagram = doc.split("```mermaid", 1)[1].split("```", 1)[0]
    missing = [role for role in Role if f"{role}" not in diagram]
    assert not missing, f"docs/architecture.md's diagram lacks the actors {missing}"
