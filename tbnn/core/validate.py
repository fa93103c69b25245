"""Argument checks shared by every public function: one sentence naming the argument.

Each check raises ``ValueError("<name> must be <what is allowed>; got <value>.")`` and
returns the value it accepted. Each accepts torch tensors and NumPy arrays alike where an
array is expected. :func:`json_ready` is the one JSON cleaner of the package.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["check_block", "check_choice", "check_dt", "check_fraction", "check_int", "check_labels", "check_lam", "check_number",
           "check_tensor", "compute_in_float32", "json_ready"]


def check_choice(value: Any, allowed: Sequence[Any], name: str) -> Any:
    """``value`` must be one of ``allowed``."""
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
    return value


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None, why: str = "") -> int:
    """``value`` must be an integer (Python or NumPy, not bool) in ``[minimum, maximum]``.

    Raises
    ------
    ValueError
        Naming ``name``: not an integer, below ``minimum`` or above ``maximum``.

    >>> check_int(3, "bins"), check_int(0, "seed", minimum=0)
    (3, 0)
    >>> check_int(True, "bins")
    Traceback (most recent call last):
    ValueError: bins must be an integer >= 1; got True.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{why}; got {value!r}.")
    return int(value)


def check_number(value: Any, name: str, *, minimum: float = 0.0, inclusive: bool = False,
                 what: str = "a finite number", units: str = "") -> float:
    """``value`` must be a finite real number ``> minimum`` (``>=`` with ``inclusive``).

    A Python or NumPy number, or a one-element tensor or array; a bool or a string is
    refused (``"2"`` is not a number of milliseconds). Returns it as a float.

    Raises
    ------
    ValueError
        ``"<name> must be <what> > <minimum> <units>; got <value>."``

    >>> check_number(2, "dt_ms", what="a finite number of milliseconds")
    2.0
    >>> check_number(0, "dt_ms", what="a finite number of milliseconds")
    Traceback (most recent call last):
    ValueError: dt_ms must be a finite number of milliseconds > 0; got 0.
    >>> check_number(0.0, "R_ms", inclusive=True, units="ms")
    0.0
    """
    bound = f"{'>=' if inclusive else '>'} {minimum:g}{' ' + units if units else ''}"
    msg = f"{name} must be {what} {bound}; got {value!r}."
    if isinstance(value, (bool, str, bytes)) or getattr(value, "dtype", None) is not None and (
            str(value.dtype) == "bool" or str(value.dtype) == "torch.bool"):
        raise ValueError(msg)
    try:  # a NumPy or torch scalar, or a one-element array or tensor, through .item()
        v = float(value.item() if getattr(value, "dtype", None) is not None else value)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        raise ValueError(msg) from None
    if not math.isfinite(v) or v < minimum or (v == minimum and not inclusive):
        raise ValueError(msg)
    return v


def check_fraction(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1] (a bool, a string or a non-finite value refused).

    Raises
    ------
    ValueError
        ``"<name> must be a fraction in [0, 1], got <value>."``

    >>> check_fraction(0.25, "rate_target")
    0.25
    >>> check_fraction(1.5, "rate_target")
    Traceback (most recent call last):
    ValueError: rate_target must be a fraction in [0, 1], got 1.5.
    """
    msg = f"{name} must be a fraction in [0, 1], got {value!r}."
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(msg)
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if not math.isfinite(f) or not 0.0 <= f <= 1.0:
        raise ValueError(msg)
    return f


def check_dt(dt_ms: Any, name: str = "dt_ms") -> float:
    """A time step (or any duration) in milliseconds: a finite number ``> 0``, as a float.

    :func:`check_number` with the unit in its message; a one-element tensor or array is
    accepted, a bool or a string is not.

    Raises
    ------
    ValueError
        ``"<name> must be a finite number of milliseconds > 0; got <value>."``

    >>> check_dt(2)
    2.0
    >>> check_dt(float("nan"), "bin_ms")
    Traceback (most recent call last):
    ValueError: bin_ms must be a finite number of milliseconds > 0; got nan.
    """
    return check_number(dt_ms, name, what="a finite number of milliseconds")


def check_lam(lam: Any, name: str = "lam") -> float:
    """The ridge penalty must be a finite number ``>= 0``.

    >>> check_lam(0.01)
    0.01
    """
    return check_number(lam, name, inclusive=True)


def check_labels(labels: Any, n_samples: int | None = None, name: str = "labels", *,
                 minimum: int | None = 0, numpy: bool = False) -> Any:
    """Class labels: a 1-D integer array or tensor with one entry per sample, each ``>= minimum``.

    Returns an int64 tensor for a tensor (unless ``numpy``), else an int64 NumPy array.
    Bool labels are refused (a class index is not a truth value); ``minimum=None`` accepts
    negative labels.

    Raises
    ------
    ValueError
        Naming ``name``: not 1-D integer, not one per sample, or a label below ``minimum``.

    >>> check_labels([0, 2], 2).dtype
    dtype('int64')
    >>> check_labels([0, -1], 2)
    Traceback (most recent call last):
    ValueError: labels must be class indices >= 0; got -1.
    """
    import numpy as np

    is_tensor = type(labels).__module__.startswith("torch")
    if is_tensor:  # a float, complex or bool tensor is refused before any conversion
        dtype, shape = labels.dtype, tuple(labels.shape)
        integer = not (labels.is_floating_point() or labels.is_complex() or str(dtype) == "torch.bool")
        arr = labels.detach().cpu().numpy() if integer else None
    else:
        arr = np.asarray(labels)
        dtype, shape, integer = arr.dtype, arr.shape, np.issubdtype(arr.dtype, np.integer)
    if len(shape) != 1 or not integer or (n_samples is not None and shape[0] != n_samples):
        raise ValueError(f"{name} must be a 1-D integer array with one class per sample"
                         f"{'' if n_samples is None else f' ({n_samples})'}, got dtype {dtype} and shape {shape}.")
    if minimum is not None and arr.size and int(arr.min()) < minimum:
        raise ValueError(f"{name} must be class indices >= {minimum}; got {int(arr.min())}.")
    return labels.long() if is_tensor and not numpy else arr.astype(np.int64)


def json_ready(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: the package's one JSON cleaner.

    Mapping keys become strings; tuples, lists, NumPy arrays and tensors become lists; NumPy
    and one-element torch scalars become Python numbers; paths become strings; NaN and
    infinities become ``None`` (JSON has no NaN; ``null`` reads back as "undefined").

    >>> import numpy as np
    >>> json_ready({"a": np.float64("nan"), "b": np.arange(2), 3: (np.bool_(True), float("inf"))})
    {'a': None, 'b': [0, 1], '3': [True, None]}
    """
    import os

    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and (hasattr(obj, "dtype") or hasattr(obj, "numel")):
        return json_ready(obj.tolist())  # NumPy arrays and scalars, torch tensors
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def check_block(block: Any, name: str = "block") -> int | None:
    """A block length must be a positive integer, or ``None`` for the whole axis."""
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"{name} must be a positive integer or None (whole axis); got {block!r}.")
    return block


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
