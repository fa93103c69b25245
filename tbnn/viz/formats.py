"""The registry of figure formats: every format a figure can be written in.

Each :class:`FigureFormat` names a matplotlib output format; the raster format (PNG) is
always written, a vector format on request (``tbnn analyze --format svg``,
``save_figure(..., formats=("pdf",))``). The command line's ``--format`` choices, its
``--help``, :func:`tbnn.viz.style.save_figure` and the report's checks read this registry.
Adding a format: one :func:`register_format` call (matplotlib must be able to write it).

This module imports nothing heavy (the command line lists the choices from it).

>>> list(FORMATS), vector_formats()
(['png', 'svg', 'pdf'], ('svg', 'pdf'))
>>> check_formats(["pdf"])
('pdf',)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tbnn.core.registry import NamesView, add_entry, find_entry

__all__ = ["FORMATS", "FigureFormat", "check_formats", "get_format", "register_format",
           "suffix_list", "unregister_format", "vector_formats"]


@dataclass(frozen=True)
class FigureFormat:
    """A figure format: its name (the file suffix without the dot, and matplotlib's
    ``savefig(format=...)``), whether it is a vector format, and a one-line description."""

    name: str
    vector: bool
    description: str = ""

    @property
    def suffix(self) -> str:
        """The file suffix, with its dot."""
        return "." + self.name


_REGISTRY: dict[str, FigureFormat] = {}


def register_format(fmt: FigureFormat, *, replace: bool = False) -> FigureFormat:
    """Add ``fmt`` to the registry and return it.

    Raises
    ------
    ValueError
        ``fmt`` is not a :class:`FigureFormat`, its name is not lowercase alphanumeric, or
        the name is taken (without ``replace``).
    """
    if not isinstance(fmt, FigureFormat):
        raise ValueError(f"fmt must be a tbnn.viz.formats.FigureFormat; got {type(fmt).__name__}.")
    if not isinstance(fmt.name, str) or not fmt.name.isalnum() or fmt.name != fmt.name.lower():
        raise ValueError(f"fmt.name must be a lowercase file suffix without the dot; got {fmt.name!r}.")
    return add_entry(_REGISTRY, fmt.name, fmt, "fmt.name", replace=replace)


def unregister_format(name: str) -> FigureFormat:
    """Remove the format ``name`` and return its record."""
    return _REGISTRY.pop(get_format(name).name)


def get_format(name: str) -> FigureFormat:
    """The record of ``name``; ``ValueError`` naming the registered formats otherwise."""
    return find_entry(_REGISTRY, name, lambda: f"format must be one of {', '.join(_REGISTRY)}; got {name!r}.")


def vector_formats() -> tuple[str, ...]:
    """The names of the registered vector formats, in registration order."""
    return tuple(k for k, f in _REGISTRY.items() if f.vector)


def suffix_list() -> str:
    """The registered suffixes in words: raster formats first, then vector ones by name.

    >>> suffix_list()
    '.png, .pdf or .svg'
    """
    names = [f.suffix for f in sorted(_REGISTRY.values(), key=lambda f: (f.vector, f.name))]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_formats(formats: Iterable[Any], name: str = "formats") -> tuple[str, ...]:
    """``formats`` must be registered vector formats (the extra formats of a figure).

    Raises
    ------
    ValueError
        Naming ``name`` and the vector formats, on a format that is not one of them.

    >>> check_formats(["png"])
    Traceback (most recent call last):
    ValueError: formats must be among svg, pdf; got 'png'.
    """
    if isinstance(formats, str):
        formats = (formats,)
    out = tuple(formats)
    allowed = vector_formats()
    for f in out:
        if f not in allowed:
            raise ValueError(f"{name} must be among {', '.join(allowed)}; got {f!r}.")
    return out


#: every registered figure format's name, in registration order (a live view)
FORMATS: Sequence[str] = NamesView(_REGISTRY)

register_format(FigureFormat("png", vector=False, description="raster image (always written)"))
register_format(FigureFormat("svg", vector=True, description="scalable vector graphics"))
register_format(FigureFormat("pdf", vector=True, description="PDF, vector"))
