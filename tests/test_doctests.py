"""Every ``>>>`` example in the package runs and gives what it shows.

The modules are found by walking the package (no hand-kept list), so a new module's
examples are tested as soon as it exists.
"""

import doctest
import importlib
import pkgutil

import pytest

import tbnn


def _modules() -> list[str]:
    names = ["tbnn"]
    for info in pkgutil.walk_packages(tbnn.__path__, "tbnn."):
        if info.name != "tbnn.__main__":
            names.append(info.name)
    return sorted(names)


def _has_examples(name: str) -> bool:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return any(t.examples for t in finder.find(importlib.import_module(name)))


MODULES = [m for m in _modules() if _has_examples(m)]


def test_walk_finds_the_core_modules():
    assert {"tbnn.core.quant.fast", "tbnn.engine.integer", "tbnn.sim.simulator", "tbnn.io.checkpoint.weights"} <= set(MODULES)
    assert len(MODULES) >= 25


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples failed in {name}"
