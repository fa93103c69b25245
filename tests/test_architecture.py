"""The package's architecture: subpackages by layer, each importing only its own package and
those below it; no cycle; no private name imported across files; the old import paths forward."""

import ast
import importlib
import io
import tokenize
import warnings
from pathlib import Path

import pytest

from tbnn.compat import MOVED

PKG = Path(__file__).resolve().parents[1] / "tbnn"

#: Layer of each top-level part of the package: a module may import its own subpackage and
#: any part of a lower layer, never a part of its own layer or above.
LAYERS = {
    "tbnn.compat": 0, "tbnn.core": 0, "tbnn.runtime": 0,
    "tbnn.io": 1,
    "tbnn.kernels": 2,
    "tbnn.engine": 3,
    "tbnn.nn": 4, "tbnn.parallel": 4, "tbnn.viz": 4,
    "tbnn.train": 5, "tbnn.sim": 5, "tbnn.analysis": 5,
    "tbnn.demo": 6, "tbnn.cli": 7, "tbnn.__main__": 8,
}


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
                out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names if a.name.split(".")[0] == "tbnn")
    return out


def _part(module: str) -> str:
    """The top-level part of the package a module belongs to (``tbnn.io.files`` -> ``tbnn.io``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


FILES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _targets(mod: str, names: list[str]) -> set[str]:
    """The tbnn modules an import statement reaches (``from tbnn.engine import session``: the submodule)."""
    subs = {f"{mod}.{n}" for n in names if f"{mod}.{n}" in FILES}
    rest = [n for n in names if f"{mod}.{n}" not in FILES]
    return subs | ({mod} if rest or not names else set())


def test_every_module_belongs_to_a_layer():
    missing = sorted({_part(m) for m in FILES if m != "tbnn"} - set(LAYERS))
    assert not missing, f"parts of tbnn without a layer in LAYERS: {missing}"


def test_no_import_of_the_same_layer_or_above():
    bad = []
    for me, path in FILES.items():
        if me == "tbnn":
            continue
        mine = _part(me)
        for mod, names in _imports(path):
            for target in _targets(mod, names):
                if target == "tbnn":  # the package root: only __version__ and lazy names
                    assert set(names) <= {"__version__", "compat"}, (me, names)
                    continue
                other = _part(target)
                assert target in FILES or target in MOVED or other in LAYERS, f"{me} imports unknown {target}"
                assert target not in MOVED or target in FILES, f"{me} imports the deprecated path {target}"
                if other != mine and LAYERS[other] >= LAYERS[mine]:
                    bad.append(f"{me} (layer {LAYERS[mine]}) imports {target} (layer {LAYERS[other]})")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_files():
    bad = [f"{p.relative_to(PKG.parent)}: {mod} {n}" for p in PKG.rglob("*.py") for mod, names in _imports(p)
           for n in names if n.startswith("_") and n != "__version__" and n != "__all__"]
    assert not bad, bad


def test_import_graph_has_no_cycle():
    graph = {m: {t for mod, names in _imports(p) for t in _targets(mod, names) if t in FILES and t != m}
             for m, p in FILES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1 and not (d == "tbnn" or m == "tbnn"):
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert "tbnn.engine.integer" in graph["tbnn.nn.layers"]
    assert "tbnn.engine.integer" in graph["tbnn.sim.simulator"]


def test_io_layer_never_imports_models():
    for me, path in FILES.items():
        if me.startswith("tbnn.io"):
            for mod, _ in _imports(path):
                assert not mod.startswith("tbnn.nn"), f"{me} imports {mod}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_forward_with_a_warning(old):
    new = importlib.import_module(MOVED[old])
    shim = importlib.import_module(old)
    public = [n for n in getattr(new, "__all__", dir(new)) if not n.startswith("_")]
    assert public, f"{MOVED[old]} exports nothing"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(shim, public[0])
    assert value is getattr(new, public[0])
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)


def test_no_module_over_600_lines():
    long = {m: n for m, p in FILES.items() if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"modules over 600 lines (one concern per file): {long}"


#: Longest function body allowed, in lines of code (its docstring, comments and blank lines
#: not counted): a function longer than this holds several jobs and is split into helpers.
MAX_FUNCTION_LINES = 60

#: The functions allowed a longer body, each with its reason (``path::qualified name``).
LONG_FUNCTION_EXEMPTIONS = {
    "tbnn/cli.py::build_parser": "the declarative table of every subcommand and flag, one "
                                 "add_argument each; cli.py is reworked on its own branch",
}


def _code_lines(source: str) -> set[int]:
    """Numbers of the lines that hold code: not blank, not only a comment, not a docstring."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines -= set(range(first.lineno, first.end_lineno + 1))
    return lines


def _function_lengths(source: str) -> dict[str, int]:
    """Lines of code in the body of every function (methods and nested functions included,
    named by their qualified name; a nested function counts in its parent's body too)."""
    code = _code_lines(source)
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                body = range(child.body[0].lineno, child.end_lineno + 1)
                out[name] = sum(1 for line in body if line in code)
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def _all_function_lengths() -> dict[str, int]:
    return {f"{p.relative_to(PKG.parent).as_posix()}::{name}": n
            for p in sorted(PKG.rglob("*.py")) for name, n in _function_lengths(p.read_text()).items()}


def test_function_length_counts_code_only():
    body = "\n".join(f"    x{i} = {i}  # note" for i in range(61))
    source = (f'def f():\n    """Doc.\n\n    Long.\n    """\n    # a comment\n\n{body}\n\n'
              f'class C:\n    def g(self):\n        """Doc."""\n        return (1,\n                2)\n')
    assert _function_lengths(source) == {"f": 61, "C.g": 2}


def test_no_function_over_60_lines():
    lengths = _all_function_lengths()
    long = {f: n for f, n in lengths.items() if n > MAX_FUNCTION_LINES and f not in LONG_FUNCTION_EXEMPTIONS}
    assert not long, (f"function bodies over {MAX_FUNCTION_LINES} lines of code (split them into "
                      f"helpers with one job each): {long}")
    stale = {f: lengths.get(f) for f in LONG_FUNCTION_EXEMPTIONS if lengths.get(f, 0) <= MAX_FUNCTION_LINES}
    assert not stale, f"exemptions no longer needed (remove them from LONG_FUNCTION_EXEMPTIONS): {stale}"
