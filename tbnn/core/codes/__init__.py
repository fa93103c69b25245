"""Spike codes, one class per file behind the :class:`~tbnn.core.codes.base.Code` interface.

Registering a new code: write ``tbnn/core/codes/NAME.py`` with a :class:`Code` subclass and
add one line to :data:`BUILTIN` below (or call :func:`register_code` with an instance from
your own code); ``encode``, the neurons, the layers, the simulator, the error messages and
``tbnn train --help`` then accept and list ``scheme="NAME"``.

The names are listed without importing torch (``tbnn --help`` stays light): a built-in
code's class is imported on first use.

>>> sorted(CODES)
['binary', 'latency', 'rate', 'sigma_delta', 'thermometer']
>>> get_code("binary").max_timesteps
24
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from tbnn.core.registry import MappingView, NamesView, add_entry, find_entry

__all__ = ["BUILTIN", "CODES", "SCHEMES", "Code", "get_code", "register_code", "unregister_code"]

#: the built-in codes: name -> "module:Class" in this package, in registration order
BUILTIN: dict[str, str] = {
    "binary": "binary:Binary",
    "sigma_delta": "sigma_delta:SigmaDelta",
    "rate": "rate:Rate",
    "thermometer": "thermometer:Thermometer",
    "latency": "latency:Latency",
}

_REGISTRY: dict[str, Any] = dict(BUILTIN)  # name -> Code instance, or "module:Class" not imported yet


def __getattr__(name: str) -> Any:
    if name == "Code":  # the interface, imported on first use (it imports torch)
        from tbnn.core.codes.base import Code

        return Code
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_code(scheme: str) -> Any:
    """The :class:`Code` registered as ``scheme``; ``ValueError`` naming the choices otherwise."""
    code = find_entry(_REGISTRY, scheme, lambda: f"scheme must be one of {', '.join(_REGISTRY)}; got {scheme!r}.")
    if isinstance(code, str):
        module, cls = code.split(":")
        code = _REGISTRY[scheme] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return code


def register_code(code: Any, *, replace: bool = False) -> Any:
    """Register ``code`` (an instance of a :class:`Code` subclass) under ``code.name``.

    Raises
    ------
    ValueError
        ``code`` is not a :class:`Code`, its name is not an identifier, or the name is
        taken (without ``replace``).
    """
    from tbnn.core.codes.base import Code

    if not isinstance(code, Code):
        raise ValueError(f"code must be an instance of a tbnn.core.codes.Code subclass; got {type(code).__name__}.")
    if not isinstance(code.name, str) or not code.name.isidentifier():
        raise ValueError(f"code.name must be an identifier (letters, digits, _); got {code.name!r}.")
    return add_entry(_REGISTRY, code.name, code, "code.name", replace=replace)


def unregister_code(scheme: str) -> None:
    """Remove the code registered as ``scheme``."""
    if scheme not in _REGISTRY:
        raise ValueError(f"scheme must be one of {', '.join(_REGISTRY)}; got {scheme!r}.")
    del _REGISTRY[scheme]


class _Codes(MappingView):
    """Live read-only view name -> :class:`Code` (a built-in code is imported on first access)."""

    def __getitem__(self, name: str) -> Any:
        if name not in _REGISTRY:
            raise KeyError(name)
        return get_code(name)


#: every registered code by name (a live view)
CODES: Mapping[str, Any] = _Codes(_REGISTRY)
#: the scheme names, in registration order (a live view)
SCHEMES: Sequence[str] = NamesView(_REGISTRY)
