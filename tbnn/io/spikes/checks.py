"""Checks on spike arrays, numpy and torch alike.

The checks on their companions (the time step, counts, labels) are the package's one set in
:mod:`tbnn.core.validate`; ``check_dt`` is re-exported from there, and the old twins
``check_positive_int``, ``check_labels`` and ``check_int_vector`` warn and forward to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.core.deprecation import deprecated
from tbnn.core.validate import check_dt, check_int
from tbnn.core.validate import check_labels as core_check_labels
from tbnn.io.spikes.record import SHAPES

__all__ = ["to_numpy", "check_spikes", "check_dt", "check_positive_int", "check_labels", "as_stream"]


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array; torch tensors are detached and moved to the CPU (torch is
    not imported).

    >>> to_numpy([1, 0]).tolist()
    [1, 0]
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_spikes(spikes: Any, name: str = "spikes", ndims: tuple[int, ...] = (1, 2, 3)
                 ) -> np.ndarray:
    """Return ``spikes`` as a boolean NumPy array, or raise ValueError.

    Accepts NumPy arrays, nested lists of bools and torch tensors. The array must be
    boolean (a 0/1 float or integer array is refused, so that a membrane potential or a
    count is never mistaken for spikes), of one of the ranks in ``ndims``, and hold at
    least one time step and one neuron.

    Raises
    ------
    ValueError
        Naming ``name``, if the dtype, rank or size is wrong.

    >>> check_spikes([[True, False]]).shape
    (1, 2)
    """
    arr = to_numpy(spikes)
    allowed = " or ".join(SHAPES[d] for d in ndims)
    if arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array of shape {allowed}, got dtype "
                         f"{arr.dtype}.")
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must have shape {allowed}, got rank {arr.ndim} "
                         f"(shape {arr.shape}).")
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one time step and one neuron, got "
                         f"shape {arr.shape}.")
    return arr


@deprecated("tbnn.io.spikes.check_positive_int", "tbnn.core.validate.check_int")
def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or ValueError unless it is an integer >= ``minimum``."""
    return check_int(value, name, minimum)


@deprecated("tbnn.io.spikes.check_labels", "tbnn.core.validate.check_labels(..., minimum=None, numpy=True)")
def check_labels(labels: Any, n_samples: int, name: str = "labels") -> np.ndarray:
    """``labels`` as int64 ``[samples]`` (any integers), or ValueError."""
    return core_check_labels(labels, n_samples, name, minimum=None, numpy=True)


def as_stream(spikes: Any) -> np.ndarray:
    """Return spikes as ``[time, neurons]``; ``[samples, T, neurons]`` is concatenated in
    sample order (stream view) and ``[time]`` becomes one neuron.

    >>> as_stream(np.zeros((2, 3, 4), bool)).shape
    (6, 4)
    """
    arr = check_spikes(spikes)
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim == 3:
        return arr.reshape(arr.shape[0] * arr.shape[1], arr.shape[2])
    return arr


@deprecated("tbnn.io.spikes.checks.check_int_vector", "tbnn.core.validate.check_labels(..., minimum=None, numpy=True)")
def check_int_vector(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D int64 array (any integers), or ValueError."""
    return core_check_labels(x, None, name, minimum=None, numpy=True)
