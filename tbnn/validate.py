"""Argument checks shared by every public function: one sentence naming the argument.

Each check raises ``ValueError("<name> must be <what is allowed>; got <value>.")`` and
returns the value it accepted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["check_choice", "check_int", "check_lam", "check_block"]


def check_choice(value: Any, allowed: Sequence[Any], name: str) -> Any:
    """``value`` must be one of ``allowed``."""
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
    return value


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None, why: str = "") -> int:
    """``value`` must be an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{why}; got {value!r}.")
    return value


def check_lam(lam: Any, name: str = "lam") -> float:
    """The ridge penalty must be a finite number ``>= 0``."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {lam!r}.")
    return float(lam)


def check_block(block: Any, name: str = "block") -> int | None:
    """A block length must be a positive integer, or ``None`` for the whole axis."""
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"{name} must be a positive integer or None (whole axis); got {block!r}.")
    return block
