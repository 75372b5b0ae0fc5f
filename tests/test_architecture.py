"""The design's invariants, checked on the source: no import cycles, no long functions."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "noisemod"
MAX_FUNCTION_LINES = 70
LONG_FUNCTIONS_ALLOWED = {"noisemod.cli.build_parser"}  # the argument parser: one declaration per option


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package's name is its ``__init__``)."""
    out = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, known: dict[str, Path]) -> bool:
    return name in known and known[name].name == "__init__.py"


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (inside functions too).

    ``from X import y`` imports ``X.y`` when that is a module, else ``X``. Importing ``A.B.c``
    also runs the ``__init__`` of the subpackage ``A.B`` (not of the root package, whose names
    load lazily), so it counts as importing ``A.B`` too, unless ``name`` is inside ``A.B``."""
    package = name if _is_package(name, known) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # import noisemod.data.loader as x: the module itself
                target = target.rpartition(".")[0]
            if not target:
                continue
            found.add(target)
            parent = target.rpartition(".")[0]
            while parent and parent != ROOT and not f"{name}.".startswith(f"{parent}."):
                if _is_package(parent, known):
                    found.add(parent)
                parent = parent.rpartition(".")[0]
    found.discard(name)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    known = modules(src)
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_through_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / ROOT
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import g\n")  # lazy, into a subpackage
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import x\n")
    graph = import_graph(tmp_path)
    assert graph[f"{ROOT}.b"] == {f"{ROOT}.sub.c", f"{ROOT}.sub"}
    assert find_cycle(graph) == [f"{ROOT}.a", f"{ROOT}.b", f"{ROOT}.sub.c", f"{ROOT}.a"]
    (pkg / "sub" / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(tmp_path)) is None


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert len(graph) > 30 and f"{ROOT}.train" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def functions(src: Path = SRC):
    """``(qualified name, lines)`` of every function and method in the package."""
    for name, path in modules(src).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stack = [(node, name) for node in tree.body]
        while stack:
            node, prefix = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualified = f"{prefix}.{node.name}"
                if not isinstance(node, ast.ClassDef):
                    yield qualified, node.end_lineno - node.lineno + 1
                stack.extend((child, qualified) for child in node.body)


def test_no_function_is_longer_than_the_design_allows():
    lengths = dict(functions())
    assert lengths["noisemod.train.fit"] > 10  # the walk sees module functions
    assert any(name.startswith("noisemod.training.build.Training.") for name in lengths)  # and methods
    long = {n: k for n, k in lengths.items() if k > MAX_FUNCTION_LINES and n not in LONG_FUNCTIONS_ALLOWED}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("module", ["noisemod.train", "noisemod.evaluation"])
def test_the_trainer_and_evaluation_do_not_import_the_experiments_or_the_cli(module):
    reachable, todo, graph = set(), [module], import_graph()
    while todo:
        for nxt in graph[todo.pop()] - reachable:
            reachable.add(nxt)
            todo.append(nxt)
    assert not {m for m in reachable if m.startswith((f"{ROOT}.experiments", f"{ROOT}.cli", f"{ROOT}.report"))}
