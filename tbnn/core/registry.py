"""What every registry of the package shares: live read-only views and one insertion rule.

A registry is a ``dict`` from name to entry, filled by ``register_*`` functions (spike codes
in :mod:`tbnn.core.codes`, firing measures in :mod:`tbnn.analysis.measures`, figure formats
in :mod:`tbnn.viz.formats`, datasets in :mod:`tbnn.io.datasets.registry`). The views below
follow the dict as entries are added or removed at run time, so every place that lists
entries lists the new one. Imports nothing heavy.

>>> reg = {"a": 1}
>>> names, doubled = NamesView(reg), MappingView(reg, lambda v: 2 * v)
>>> add_entry(reg, "b", 2, "code.name")
2
>>> list(names), dict(doubled), "b" in names
(['a', 'b'], {'a': 2, 'b': 4}, True)
>>> dict(MappingView(reg, key=lambda v: f"n{v}"))
{'n1': 1, 'n2': 2}
>>> add_entry(reg, "b", 3, "code.name")
Traceback (most recent call last):
ValueError: code.name 'b' is already registered; pass replace=True to replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["MappingView", "NamesView", "add_entry", "find_entry"]


def add_entry(registry: dict[str, Any], key: str, entry: Any, name: str, *, replace: bool = False) -> Any:
    """Put ``entry`` under ``key`` unless the key is taken (``replace`` allows it); ``name`` is
    the argument named in the error."""
    if key in registry and not replace:
        raise ValueError(f"{name} {key!r} is already registered; pass replace=True to replace it.")
    registry[key] = entry
    return entry


def find_entry(registry: dict[str, Any], key: Any, unknown: Callable[[], str]) -> Any:
    """The entry under ``key``; ``ValueError(unknown())`` when there is none (or ``key`` is
    unhashable), so each registry words its own refusal."""
    try:
        return registry[key]
    except (KeyError, TypeError):
        raise ValueError(unknown()) from None


class NamesView(Sequence):
    """The keys of ``registry`` as a live read-only tuple, in registration order."""

    def __init__(self, registry: dict[str, Any]):
        self._registry = registry

    def __getitem__(self, i: Any) -> Any:
        return tuple(self._registry)[i]

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._registry

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    __hash__ = None  # a live view is not hashable

    def __repr__(self) -> str:
        return repr(tuple(self._registry))


class MappingView(Mapping):
    """A live read-only view ``key -> project(entry)`` of ``registry``, leaving out the entries
    where ``project`` gives None; ``key(entry)``, when given, names each entry in the view
    instead of its registry key (e.g. ``"idx:PATH"`` for the dataset registered as ``"idx"``)."""

    def __init__(self, registry: dict[str, Any], project: Callable[[Any], Any] = lambda v: v,
                 key: Callable[[Any], str] | None = None):
        self._registry, self._project, self._key = registry, project, key

    def _items(self) -> dict[str, Any]:
        out = {}
        for k, entry in list(self._registry.items()):
            v = self._project(entry)
            if v is not None:
                out[k if self._key is None else self._key(entry)] = v
        return out

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())
