"""Deprecated public names: they keep working and warn, naming what replaces them.

A public name that goes away is deprecated first: a function becomes a wrapper made by
:func:`deprecated`, a module constant or alias is served by a module ``__getattr__`` made by
:func:`deprecated_attributes`, a keyword argument is renamed with :func:`renamed_keyword`.
Each warns with a :class:`DeprecationWarning` whose message names the replacement.

>>> import warnings
>>> @deprecated("old_double", "tbnn.core.new_double")
... def old_double(x):
...     return 2 * x
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     old_double(2), str(caught[0].message)
(4, 'old_double is deprecated; use tbnn.core.new_double instead.')
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["deprecated", "deprecated_attributes", "renamed_keyword", "warn_deprecated"]


def warn_deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated, naming ``new`` (a DeprecationWarning at the caller's caller)."""
    warnings.warn(f"{old} is deprecated; use {new} instead.", DeprecationWarning, stacklevel=stacklevel)


def deprecated(old: str, new: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function so that each call warns that ``old`` is deprecated in favour of ``new``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(old, new)
            return fn(*args, **kwargs)

        wrapper.__doc__ = f"Deprecated: use :func:`{new}` instead.\n\n{fn.__doc__ or ''}"
        return wrapper

    return wrap


def deprecated_attributes(module: str, names: Mapping[str, tuple[str, Callable[[], Any]]]
                          ) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving the deprecated ``names``: ``{old: (new, value getter)}``.

    >>> getattr_ = deprecated_attributes("m", {"OLD": ("m.NEW", lambda: 3)})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     getattr_("OLD")
    3
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new, value = names[name]
        warn_deprecated(f"{module}.{name}", new)
        return value()

    return __getattr__


def renamed_keyword(kwargs: dict[str, Any], old: str, new: str, value: Any, default: Any, where: str) -> Any:
    """The value of the keyword ``new``, taking a deprecated ``old`` spelling out of ``kwargs``.

    ``value`` is what the caller passed as ``new`` (``default`` when not passed); passing both
    spellings with different values is an error naming both.

    Raises
    ------
    TypeError
        ``old`` and ``new`` both given.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     renamed_keyword({"mode": "folded"}, "mode", "arithmetic", "step", "step", "f")
    'folded'
    """
    if old not in kwargs:
        return value
    old_value = kwargs.pop(old)
    if value is not default and value != old_value:
        raise TypeError(f"{where}() got both {new}= and its deprecated spelling {old}=; pass {new}= only.")
    warn_deprecated(f"{where}({old}=...)", f"{where}({new}=...)", stacklevel=4)
    return old_value
