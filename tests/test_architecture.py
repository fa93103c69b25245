"""The package's import graph: no cycle (no upward import) and no private name imported across files."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tbnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported tbnn module, names) for every import in the file, function-level ones included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "tbnn":
                names = [a.name for a in node.names]
                if node.module is None:  # from . import engine
                    out.extend((f"{mod}.{n}", []) for n in names)
                else:
                    out.append((mod, names))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names if a.name.split(".")[0] == "tbnn")
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps = set()
        for target, names in _imports(path):
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in files]
            deps.update(subs)  # from tbnn.analysis import rates: an arrow to the submodule
            if subs and len(subs) == len(names):
                continue
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in files and target != mod and target != "tbnn":
                deps.add(target)
        graph[mod] = deps
    return graph


def test_no_private_names_imported_across_files():
    bad = [f"{p.relative_to(PKG.parent)}: {mod} {n}" for p in PKG.rglob("*.py") for mod, names in _imports(p)
           for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad


def test_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert "tbnn.engine" in graph and "tbnn.layers" in graph["tbnn.sim"] | graph["tbnn.models"]


def test_engine_is_below_layers_and_simulator():
    graph = _graph()
    assert "tbnn.engine" in graph["tbnn.layers"] and "tbnn.engine" in graph["tbnn.sim"]
    assert not {"tbnn.layers", "tbnn.sim", "tbnn.neurons", "tbnn.models"} & graph["tbnn.engine"]
