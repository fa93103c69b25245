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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tbnn.core.validate import check_choice

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


def renamed_keyword(where: str, old: str, new: str, old_value: Any, value: Any, default: Any,
                    choices: Sequence[Any] | None = None, stacklevel: int = 4) -> Any:
    """The value of the keyword ``new`` of ``where()``, given its deprecated spelling ``old``.

    ``old_value`` is what the caller passed as ``old`` (``None``: not passed) and ``value``
    what it passed as ``new`` (``default`` when not passed). The old spelling warns; passing
    both with different values is an error naming both. With ``choices``, the value must be
    one of them; the error names the spelling the caller used. ``stacklevel`` points the
    warning at the caller of ``where`` (4: ``where`` calls this function itself).

    Raises
    ------
    TypeError
        ``old`` and ``new`` both given, with different values.
    ValueError
        The value is not one of ``choices``.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     renamed_keyword("simulate", "mode", "schedule", "folded", "step", "step")
    'folded'
    """
    if old_value is None:
        if choices is not None:
            check_choice(value, choices, new)
        return value
    if value != default and value != old_value:
        raise TypeError(f"{where}() got both {new}= and its deprecated spelling {old}=; pass {new}= only.")
    warn_deprecated(f"{where}({old}=...)", f"{where}({new}=...)", stacklevel=stacklevel)
    if choices is not None:
        check_choice(old_value, choices, old)
    return old_value
