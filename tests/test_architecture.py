"""The design's invariants, checked on the source: imports go down the layers that
docs/architecture.md lists, no import cycles, no long functions."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
DOC = SRC.parent / "docs" / "architecture.md"
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


LAYER_NAME = re.compile(r"(?:[\w]+/)*(?:[\w]+\.py|[\w]+/)")  # cli.py, analysis/docgen.py, training/


def layers_of(doc: str) -> list[list[str]]:
    """The layers of the architecture doc, top first: the code block under "## The layers", one
    layer per line that starts in the first column, named by the paths it starts with, up to two
    spaces or the first word that is not a path (a line indented is the description going on)."""
    section = doc.split("\n## The layers\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    layers = []
    for line in block.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        names = []
        for token in re.split(r"\s{2,}", line, maxsplit=1)[0].split():  # the names end at two spaces
            if not LAYER_NAME.fullmatch(token):
                break
            names.append(token)
        assert names, f"a layer line of the architecture doc names no module: {line!r}"
        layers.append(names)
    return layers


def _module(path: str) -> str:
    """``analysis/docgen.py`` -> ``noisemod.analysis.docgen``, ``training/`` -> ``noisemod.training``,
    ``__init__.py`` -> ``noisemod``."""
    parts = [ROOT, *path.rstrip("/").removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(layers: list[list[str]], known) -> dict[str, int]:
    """Each module's layer (0: the top): the line naming it, else the line naming its innermost
    package (``name/``). A name that is not a module, a module named twice, or one no line
    covers fails."""
    named, packages = {}, {}
    for i, names in enumerate(layers):
        for name in names:
            module = _module(name)
            assert module in known, f"the architecture doc names {name}, which is not a module of {ROOT}"
            assert module not in named, f"the architecture doc names {name} on two lines"
            named[module] = i
            if name.endswith("/"):
                packages[module] = i
    out = {}
    for module in known:
        owner = module.rpartition(".")[0]
        while owner and owner not in packages:
            owner = owner.rpartition(".")[0]
        assert module in named or owner, f"no line of the architecture doc's layers names {module} (or its package)"
        out[module] = named[module] if module in named else packages[owner]
    return out


def upward_imports(graph: dict[str, set[str]], layer: dict[str, int]) -> list[str]:
    """The imports that go up the layers: a module may import only modules of its layer or below."""
    return [
        f"{a} (layer {layer[a] + 1}) imports {b} (layer {layer[b] + 1}, above it)"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if layer[b] < layer[a]
    ]


def test_the_layer_check_finds_an_import_that_goes_up(tmp_path):
    pkg = tmp_path / ROOT
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "top.py", "low.py", "sub/__init__.py", "sub/a.py", "sub/b.py"):
        (pkg / name).write_text("")
    (pkg / "top.py").write_text("from .sub import a\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import top\n")  # lazy, and up
    doc = "# x\n\n## The layers\n\n```\ntop.py      the top\n            (going on)\nsub/b.py    b\n"
    doc += "sub/        the rest of sub.py files\nlow.py __init__.py the bottom\n```\n\n## Next\n"
    layers = layers_of(doc)
    assert layers == [["top.py"], ["sub/b.py"], ["sub/"], ["low.py", "__init__.py"]]
    layer = layer_of(layers, modules(tmp_path))
    assert layer[f"{ROOT}.sub.a"] == layer[f"{ROOT}.sub"] == 2 and layer[ROOT] == 3
    assert upward_imports(import_graph(tmp_path), layer) == [
        f"{ROOT}.sub.b (layer 2) imports {ROOT}.top (layer 1, above it)"
    ]
    with pytest.raises(AssertionError, match="no line of the architecture doc's layers names noisemod.low"):
        layer_of(layers[:-1] + [["__init__.py"]], modules(tmp_path))
    with pytest.raises(AssertionError, match="names gone.py, which is not a module"):
        layer_of(layers + [["gone.py"]], modules(tmp_path))


def test_every_import_goes_down_the_layers_of_the_architecture_doc():
    layers = layers_of(DOC.read_text(encoding="utf-8"))
    assert layers[0] == ["__main__.py", "cli.py"] and layers[-1][0] == "registry.py"
    up = upward_imports(import_graph(), layer_of(layers, modules()))
    assert not up, "imports against the layers of docs/architecture.md:\n" + "\n".join(up)


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
