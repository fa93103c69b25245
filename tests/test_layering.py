"""The import graph inside the analysis layer (with the archive, plot and style modules it
stands on): no upward arrow, no cycle, no private name imported across files.
(``test_architecture`` checks the order of the subpackages themselves.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [*sorted((ROOT / "tbnn" / "io" / "spikes").glob("*.py")), *sorted((ROOT / "tbnn" / "analysis" / "measures").glob("*.py")), *sorted((ROOT / "tbnn" / "viz" / "plot").glob("*.py")), ROOT / "tbnn" / "viz" / "style.py",
         *sorted((ROOT / "tbnn" / "analysis").glob("*.py"))]

#: What each module may import from tbnn (its own layer or below).
LEVEL = {"tbnn.io.files": 0, "tbnn.io.bounded": 0.05, "tbnn.io.spikes.record": 0.1, "tbnn.io.spikes.checks": 0.2,
         "tbnn.io.spikes.archive": 0.5, "tbnn.io.spikes.neo": 0.5, "tbnn.io.spikes": 1, "tbnn.viz.style": 1, "tbnn.viz.plot.axes": 2, "tbnn.viz.plot.raster": 3,
         "tbnn.viz.plot.histograms": 3, "tbnn.viz.plot.panels": 3, "tbnn.viz.plot": 4,
         "tbnn.analysis.goodness_of_fit": 1.9, "tbnn.analysis.rates": 2, "tbnn.analysis.reference": 3.95, "tbnn.analysis.irregularity": 3,
         "tbnn.analysis.variability": 3, "tbnn.analysis.correlation": 3,
         "tbnn.analysis.sparseness": 3, "tbnn.analysis.catalogue": 4, "tbnn.analysis.energy": 4,
         "tbnn.analysis.runfiles": 4.5, "tbnn.analysis.markdown": 4, "tbnn.analysis.figures": 5,
         "tbnn.analysis.raster": 5, "tbnn.analysis.report": 6, "tbnn.analysis": 7,
         "tbnn.io.recording": 1, "tbnn.analysis.recording_measures": 5, "tbnn.analysis.recording_figure": 5,
         "tbnn.analysis.timebase": 4, "tbnn.analysis.measures.registry": 3.5,
         "tbnn.analysis.measures.context": 3.6, "tbnn.analysis.measures.rates": 3.8,
         "tbnn.analysis.measures.irregularity": 3.8, "tbnn.analysis.measures.variability": 3.8,
         "tbnn.analysis.measures.correlation": 3.8, "tbnn.analysis.measures.sparseness": 3.8,
         "tbnn.analysis.measures": 3.9, "tbnn.viz.formats": 0.5, "tbnn.core.registry": -1, "tbnn.core.validate": -1}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    pkg = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            names = [a.name for a in node.names]
            if mod in ("tbnn", "tbnn.analysis", "tbnn.analysis.measures", "tbnn.viz", "tbnn.io"):  # `from tbnn.viz import plot`: a module
                yield from ((f"{mod}.{n}", []) for n in names
                            if f"{mod}.{n}" in LEVEL)
                names = [n for n in names if f"{mod}.{n}" not in LEVEL]
                if mod not in ("tbnn.analysis", "tbnn.analysis.measures") or not names:
                    continue
            yield mod, names
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_no_upward_import_and_no_private_names():
    for path in FILES:
        me = _module(path)
        for mod, names in _imports(path):
            if not mod.startswith("tbnn"):
                continue
            if mod not in LEVEL and not mod.startswith(("tbnn.analysis", "tbnn.viz", "tbnn.io.spikes")):
                continue  # another subpackage: its order is test_architecture's
            assert mod in LEVEL, f"{me} imports {mod}, outside the analysed layers"
            assert LEVEL[mod] < LEVEL[me] or (me == "tbnn.analysis"), \
                f"{me} (level {LEVEL[me]}) imports {mod} (level {LEVEL[mod]}): upward or sideways"
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{me} imports private names {private} from {mod}"


def test_plot_and_spikefile_do_not_import_analysis():
    for path in [*(ROOT / "tbnn" / "io" / "spikes").glob("*.py"), *(ROOT / "tbnn" / "viz").rglob("*.py")]:
        for mod, _ in _imports(path):
            assert not mod.startswith("tbnn.analysis"), f"{path} imports {mod}"
