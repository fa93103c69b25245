"""Checks on spike arrays and their companions (time step, counts, labels), numpy and torch alike."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def check_dt(dt_ms: Any, name: str = "dt_ms") -> float:
    """Return ``dt_ms`` as a float, or raise ValueError unless it is finite and > 0.

    >>> check_dt(2)
    2.0
    """
    if isinstance(dt_ms, bool):
        raise ValueError(f"{name} must be a finite number of milliseconds > 0, got {dt_ms!r}.")
    try:
        dt = float(dt_ms)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number of milliseconds > 0, "
                         f"got {dt_ms!r}.") from None
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"{name} must be a finite number of milliseconds > 0, got {dt_ms!r}.")
    return dt


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ValueError unless it is an integer >= minimum.

    >>> check_positive_int(3, "bins")
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_labels(labels: Any, n_samples: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as int64 ``[samples]``, or raise ValueError.

    >>> check_labels([0, 2], 2).dtype
    dtype('int64')
    """
    arr = to_numpy(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.shape[0] != n_samples:
        raise ValueError(f"{name} must be a 1-D integer array with one class per sample "
                         f"({n_samples}), got dtype {arr.dtype} and shape {arr.shape}.")
    return arr.astype(np.int64)


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


def check_int_vector(x: Any, name: str) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(
            f"{name} must be a 1-D integer array with one entry per sample, "
            f"got dtype {arr.dtype} and shape {arr.shape}."
        )
    return arr.astype(np.int64)
