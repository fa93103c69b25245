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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
    try:
        code = _REGISTRY[scheme]
    except (KeyError, TypeError):
        raise ValueError(f"scheme must be one of {', '.join(_REGISTRY)}; got {scheme!r}.") from None
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
    if code.name in _REGISTRY and not replace:
        raise ValueError(f"code.name {code.name!r} is already registered; pass replace=True to replace it.")
    _REGISTRY[code.name] = code
    return code


def unregister_code(scheme: str) -> None:
    """Remove the code registered as ``scheme``."""
    if scheme not in _REGISTRY:
        raise ValueError(f"scheme must be one of {', '.join(_REGISTRY)}; got {scheme!r}.")
    del _REGISTRY[scheme]


class _Codes(Mapping):
    """Live read-only view: name -> :class:`Code` (imported on first access)."""

    def __getitem__(self, name: str) -> Any:
        if name not in _REGISTRY:
            raise KeyError(name)
        return get_code(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"CODES({', '.join(_REGISTRY)})"


class _Schemes(Sequence):
    """Live read-only tuple of the registered names, in registration order."""

    def __getitem__(self, i: Any) -> Any:
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    __hash__ = None  # a live view is not hashable

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


#: every registered code by name (a live view)
CODES: Mapping[str, Any] = _Codes()
#: the scheme names, in registration order (a live view)
SCHEMES: Sequence[str] = _Schemes()
