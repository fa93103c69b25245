"""Argument checks shared by every public function: one sentence naming the argument.

Each check raises ``ValueError("<name> must be <what is allowed>; got <value>.")`` and
returns the value it accepted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["LOW_PRECISION", "check_block", "check_choice", "check_int", "check_lam", "check_tensor", "compute_in_float32"]


def check_choice(value: Any, allowed: Sequence[Any], name: str) -> Any:
    """``value`` must be one of ``allowed``."""
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
    return value


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None, why: str = "") -> int:
    """``value`` must be an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{why}; got {value!r}.")
    return int(value)


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


#: Floating dtypes too narrow to compute in: their inputs are computed in float32.
LOW_PRECISION = ("float16", "bfloat16")


def check_tensor(x: Any, name: str = "x", allow_empty_axis: int | None = None) -> Any:
    """``x`` must be a real floating-point torch tensor with at least one element.

    Integer, boolean and complex tensors are refused (a quantizer would silently round,
    saturate or drop the imaginary part), as is an empty tensor, except one whose only empty
    axis is ``allow_empty_axis`` (an empty block axis quantizes to an empty result).

    >>> import torch
    >>> check_tensor(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    >>> check_tensor(torch.ones(2, 3, dtype=torch.int64))
    Traceback (most recent call last):
    ValueError: x must be a floating-point tensor (float32, float64, float16 or bfloat16); got dtype torch.int64.
    >>> check_tensor(torch.empty(0, 130))
    Traceback (most recent call last):
    ValueError: x must have at least one element; got shape (0, 130).
    """
    import torch

    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}.")
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16); "
                         f"got dtype {x.dtype}.")
    if x.numel() == 0:
        empty = [i for i, s in enumerate(x.shape) if s == 0]
        ok = allow_empty_axis is not None and x.dim() > 0 and empty == [allow_empty_axis % x.dim()]
        if not ok:
            raise ValueError(f"{name} must have at least one element; got shape {tuple(x.shape)}.")
    return x


def compute_in_float32(fn: Any) -> Any:
    """Decorate a function of tensors so float16 / bfloat16 inputs are computed in float32.

    Every float16 / bfloat16 tensor argument is converted to float32; a tensor result is
    returned in the (first) low-precision input dtype. Low-precision sums and squares
    overflow (float16 tops out at 65504) or lose the ridge fit's precision; float32 does not.

    >>> import torch
    >>> @compute_in_float32
    ... def square_sum(x):
    ...     return (x * x).sum(-1, keepdim=True)
    >>> square_sum(torch.full((1, 4), 300.0).half())
    tensor([[inf]], dtype=torch.float16)
    >>> square_sum(torch.full((1, 4), 30.0).half())
    tensor([[3600.]], dtype=torch.float16)
    """
    import functools

    import torch

    low = (torch.float16, torch.bfloat16)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        dtype = None

        def up(v: Any) -> Any:
            nonlocal dtype
            if torch.is_tensor(v) and v.dtype in low:
                dtype = dtype or v.dtype
                return v.float()
            return v

        args = tuple(up(a) for a in args)
        kwargs = {k: up(v) for k, v in kwargs.items()}
        out = fn(*args, **kwargs)
        if dtype is not None and torch.is_tensor(out) and out.is_floating_point():
            return out.to(dtype)
        return out

    return wrapper
