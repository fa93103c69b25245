"""Old import paths: every module that moved into a subpackage still imports from its old path.

``import tbnn`` installs :class:`ShimFinder` (at the end of ``sys.meta_path``, so real
modules always win). It answers the old names of :data:`MOVED` with a thin shim module that
forwards every attribute to the module's new home and warns with a :class:`DeprecationWarning`
naming the new path, so ``from tbnn.quant import fake_quantize`` keeps working while code
moves to ``from tbnn.core.quant import fake_quantize``. The shims are not files, so they are
outside the layering rules by construction.

>>> import warnings
>>> import tbnn.quant as old
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     f = old.fake_quantize
>>> from tbnn.core.quant import fake_quantize
>>> f is fake_quantize, "tbnn.core.quant" in str(caught[0].message)
(True, True)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["forward", "MOVED", "MOVED_NAMES", "ShimFinder", "install"]

#: old module -> new module, for every module that moved (the shims and their test read it)
MOVED: dict[str, str] = {
    "tbnn.validate": "tbnn.core.validate", "tbnn.quant": "tbnn.core.quant", "tbnn.coding": "tbnn.core.coding",
    "tbnn.firing": "tbnn.core.firing", "tbnn.codes": "tbnn.core.codes",
    "tbnn.codes.base": "tbnn.core.codes.base", "tbnn.codes.binary": "tbnn.core.codes.binary",
    "tbnn.codes.latency": "tbnn.core.codes.latency", "tbnn.codes.rate": "tbnn.core.codes.rate",
    "tbnn.codes.sigma_delta": "tbnn.core.codes.sigma_delta",
    "tbnn.codes.thermometer": "tbnn.core.codes.thermometer",
    "tbnn.machine": "tbnn.runtime.machine", "tbnn.device": "tbnn.runtime.device",
    "tbnn.session": "tbnn.engine.session",
    "tbnn.fileio": "tbnn.io.files", "tbnn.checkpoint": "tbnn.io.checkpoint", "tbnn.spikefile": "tbnn.io.spikes",
    "tbnn.data": "tbnn.io.datasets", "tbnn.cache": "tbnn.io.cache", "tbnn.userdata": "tbnn.io.userdata",
    "tbnn.recording": "tbnn.io.recording",
    "tbnn.neurons": "tbnn.nn.neurons", "tbnn.layers": "tbnn.nn.layers", "tbnn.models": "tbnn.nn.models",
    "tbnn.regularize": "tbnn.nn.regularize", "tbnn.distributed": "tbnn.parallel.distributed",
    "tbnn.style": "tbnn.viz.style", "tbnn.plot": "tbnn.viz.plot", "tbnn.timebase": "tbnn.analysis.timebase",
}

#: names that left their module's new home: old module -> {name: module that holds it now}
MOVED_NAMES: dict[str, dict[str, str]] = {
    "tbnn.checkpoint": {"read_run": "tbnn.nn.runs"},
}


def forward(old: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the shim module ``old`` (a key of :data:`MOVED`)."""
    new = MOVED[old]

    def __getattr__(name: str) -> Any:
        home = MOVED_NAMES.get(old, {}).get(name, new)
        value = getattr(importlib.import_module(home), name)
        if not (name.startswith("__") and name.endswith("__")):
            warnings.warn(f"{old}.{name} moved to {home}.{name}; import it from there (the old path is "
                          f"deprecated and will be removed).", DeprecationWarning, stacklevel=2)
        return value

    def __dir__() -> list[str]:
        return dir(importlib.import_module(new))

    return __getattr__, __dir__


class ShimFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths of :data:`MOVED` and makes each a forwarding shim."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        is_package = any(k.startswith(fullname + ".") for k in MOVED)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        module.__doc__ = f"Deprecated path: moved to {MOVED[module.__name__]} (this shim forwards to it)."
        module.__getattr__, module.__dir__ = forward(module.__name__)  # type: ignore[attr-defined]
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            module.__path__ = []  # type: ignore[attr-defined]


def install() -> None:
    """Put one :class:`ShimFinder` at the end of ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, ShimFinder) for f in sys.meta_path):
        sys.meta_path.append(ShimFinder())
