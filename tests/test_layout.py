"""The package's layout: no module imports a module that imports it (directly or round a longer loop),
counting the imports inside functions too, since a lazy import still ties the two modules together."""

from __future__ import annotations

import ast
from pathlib import Path

import liveportrait

ROOT = Path(liveportrait.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The liveportrait modules ``path`` imports (``from pkg import name`` counts as pkg.name when that
    is a module, else as pkg)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target)
    return {m for m in found if m in modules and m != name}


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only: never imported when run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None)
            if isinstance(child, ast.If) and getattr(test, "id", getattr(test, "attr", "")) == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_sees_known_edges():
    graph = import_graph()
    assert "liveportrait.plan" in graph["liveportrait.pipeline.driving"]  # from ..plan import MediaInput
    assert "liveportrait.pipeline.frames" in graph["liveportrait.pipeline.render"]  # from .frames import ...
    assert "liveportrait.media.streams" in graph["liveportrait.api"]  # imported inside a method


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The layers, from the bottom up: a module may import its own package and the layers below its own, never one
# beside or above it. Top-level modules are named as themselves. audio sits below api, since the API animates
# from speech (``pipe(photo, audio=...)``); its command-line part is commands/speech.py.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "timing", "_lazy"),
    ("liveportrait", "config", "files"),  # "liveportrait": the package's root (its version, lazy public names)
    ("provenance",),
    ("media",),
    ("face", "motion", "networks"),
    ("speed",),
    ("animator", "plan"),
    ("pipeline",),
    ("audio",),
    ("api", "uploads"),
    ("live",),  # the live loop, under the app: its Live tab runs the same engine as `liveportrait live`
    ("app", "serve", "train", "bench", "conformance"),
    ("commands",),
    ("cli", "__main__"),
)


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"{module}: its package is in no layer of tests/test_layout.py's LAYERS")


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a module in a layer beside or above the importer's (its own package aside)."""
    out = []
    for a, deps in sorted(graph.items()):
        for b in sorted(deps):
            pa, pb = (m.split(".")[1] if "." in m else m for m in (a, b))
            if pa != pb and layer_of(b) >= layer_of(a):
                out.append(f"{a} -> {b}")
    return out


def test_every_package_imports_only_from_the_layers_below():
    assert crossings(import_graph()) == []


def test_a_crossing_is_found():
    graph = {"liveportrait.media.image": {"liveportrait.pipeline.render"}, "liveportrait.pipeline.render": set(),
             "liveportrait.face.mask": {"liveportrait.motion.compose"}, "liveportrait.motion.compose": set()}
    assert crossings(graph) == ["liveportrait.face.mask -> liveportrait.motion.compose",
                                "liveportrait.media.image -> liveportrait.pipeline.render"]
