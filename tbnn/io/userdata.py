"""The user's own data for :func:`tbnn.fit`: arrays, tensors, a ``Dataset`` or a ``DataLoader``.

:func:`as_training_data` validates what a user passes and returns a :class:`TrainingData`
that yields shuffled mini-batches. ``(x, y)`` pairs of tensors or numpy arrays are checked
up front (shapes, dtypes, NaN / inf, labels that are non-negative integers); a
``torch.utils.data.Dataset`` is batched with a seeded shuffle; a ``DataLoader`` is used as
it is (its own batch size and order). :func:`read_npz_arrays` reads the arrays of
``tbnn train --dataset npz:PATH`` (``x``, ``y`` and optional ``x_test``, ``y_test``) with
the same checks and no pickle.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from tbnn.io.bounded import open_npz

__all__ = ["TrainingData", "as_training_data", "check_arrays", "check_inputs", "check_logits", "read_npz_arrays"]

#: Largest class count accepted from labels (a guard against a stray label such as 255).
MAX_CLASSES = 100_000


def check_arrays(x: Any, y: Any, name: str = "train") -> tuple[Tensor, Tensor]:
    """Validate ``(x, y)`` and return them as float32 / int64 tensors.

    ``x``: real numbers, ``[N, ...]`` with ``N >= 1``, finite. ``y``: ``[N]`` integer class
    labels ``>= 0`` (integer-valued floats are accepted).

    Raises
    ------
    ValueError
        A sentence naming ``name`` and what is wrong.

    Examples
    --------
    >>> x, y = check_arrays(np.zeros((3, 2)), [0, 1, 1])
    >>> x.dtype, y.dtype
    (torch.float32, torch.int64)
    """
    xt = check_inputs(x, f"{name} x").float()
    if isinstance(y, np.ndarray) and y.dtype.kind == "u" and y.size and int(y.max()) >= MAX_CLASSES:
        raise ValueError(f"{name} y must hold class labels in [0, {MAX_CLASSES}); got values up to "
                         f"{int(y.max())} (dtype {y.dtype}).")  # before a cast to int64 wraps them
    yt = _as_tensor(y, f"{name} y")
    if yt.dim() != 1 or yt.shape[0] != xt.shape[0]:
        raise ValueError(f"{name} y must be one label per sample, shape [{xt.shape[0]}]; got shape {tuple(yt.shape)}.")
    if yt.is_complex() or yt.dtype == torch.bool:
        raise ValueError(f"{name} y must hold integer class labels; got dtype {yt.dtype}.")
    if yt.is_floating_point() and not (bool(torch.isfinite(yt).all()) and bool((yt == yt.round()).all())):
        raise ValueError(f"{name} y must hold integer class labels; got non-integer values.")
    yt = yt.long()
    if int(yt.min()) < 0 or int(yt.max()) >= MAX_CLASSES:
        raise ValueError(f"{name} y must hold class labels in [0, {MAX_CLASSES}); got values from "
                         f"{int(yt.min())} to {int(yt.max())}.")
    return xt, yt


def check_inputs(x: Any, name: str = "x") -> Tensor:
    """Validate inputs ``[N, ...]`` (tensor or array): real numbers, at least one sample, finite.

    Integer and float16 / bfloat16 inputs come back as float32, float32 / float64 as they are.

    Raises
    ------
    ValueError
        A sentence naming ``name`` and what is wrong.

    Examples
    --------
    >>> check_inputs(np.ones((2, 3), dtype=np.int64)).dtype
    torch.float32
    """
    xt = _as_tensor(x, name)
    if xt.dtype == torch.bool or xt.is_complex():
        raise ValueError(f"{name} must hold real numbers; got dtype {xt.dtype}.")
    if xt.dim() < 2 or xt.shape[0] == 0:
        raise ValueError(f"{name} must be [samples, features...] with at least one sample; got shape {tuple(xt.shape)}.")
    if not xt.is_floating_point() or xt.dtype in (torch.float16, torch.bfloat16):
        xt = xt.float()
    if not bool(torch.isfinite(xt).all()):
        bad = int((~torch.isfinite(xt)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s).")
    return xt


def _as_tensor(v: Any, name: str) -> Tensor:
    if isinstance(v, Tensor):
        return v.detach()
    try:
        arr = np.asarray(v)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a tensor or an array; got {type(v).__name__} ({err}).") from None
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(arr))


def check_logits(logits: Any, y: Tensor) -> None:
    """Refuse labels outside the model's classes (``logits`` ``[B, classes]``), in one sentence."""
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits [batch, classes]; got {shape}.")
    if int(y.max()) >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}) for a model with {logits.shape[1]} outputs; "
                         f"got label {int(y.max())}.")


@dataclass
class TrainingData:
    """Validated training (or test) data that yields mini-batches.

    ``tensors`` holds ``(x, y)`` for array data; ``source`` a ``Dataset`` or ``DataLoader``.
    """

    tensors: tuple[Tensor, Tensor] | None = None
    source: TorchDataset | DataLoader | None = None

    def __len__(self) -> int:
        if self.tensors is not None:
            return len(self.tensors[1])
        ds = self.source.dataset if isinstance(self.source, DataLoader) else self.source
        return len(ds)  # type: ignore[arg-type]

    def batches(self, batch: int, generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Mini-batches ``(x, y)``: shuffled by ``generator`` when given (a DataLoader keeps its own order)."""
        if self.tensors is not None:
            x, y = self.tensors
            n = len(y)
            order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                yield x[idx], y[idx]
            return
        if isinstance(self.source, DataLoader):
            loader = self.source
        else:
            loader = DataLoader(self.source, batch_size=batch, shuffle=generator is not None, generator=generator)
        for item in loader:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError("a Dataset / DataLoader for tbnn.fit must yield (x, y) pairs.")
            yield item[0], torch.as_tensor(item[1]).long()


def as_training_data(data: Any, name: str = "train") -> TrainingData:
    """Wrap ``(x, y)`` arrays / tensors, a ``Dataset`` or a ``DataLoader`` as :class:`TrainingData`.

    Raises
    ------
    ValueError
        Data of another kind, or arrays that :func:`check_arrays` refuses.

    Examples
    --------
    >>> d = as_training_data((np.zeros((5, 3)), np.arange(5) % 2))
    >>> [tuple(xb.shape) for xb, _ in d.batches(2)]
    [(2, 3), (2, 3), (1, 3)]
    """
    if isinstance(data, TrainingData):
        return data
    if isinstance(data, (DataLoader, TorchDataset)):
        return TrainingData(source=data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return TrainingData(tensors=check_arrays(data[0], data[1], name))
    raise ValueError(f"{name} must be (x, y) arrays or tensors, a torch Dataset or a DataLoader; "
                     f"got {type(data).__name__}.")


def read_npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``x``, ``y`` and optional ``x_test``, ``y_test`` from an ``.npz`` file (no pickle).

    Raises
    ------
    ValueError
        A missing or unreadable file, a pickled (object) array, missing ``x`` / ``y``, a
        lone ``x_test`` or ``y_test``, unknown keys, or arrays :func:`check_arrays` refuses;
        the sentence names the file and the array.
    """
    path = Path(path)
    try:
        with open_npz(path, "npz dataset") as z:  # sizes, headers and CRCs checked first
            keys = list(z.files)
            allowed = {"x", "y", "x_test", "y_test"}
            unknown = sorted(set(keys) - allowed)
            if unknown:
                raise ValueError(f"npz dataset {path} has unknown arrays {unknown}; allowed: x, y, x_test, y_test.")
            for k in ("x", "y"):
                if k not in keys:
                    raise ValueError(f"npz dataset {path} has no array {k!r} (it needs x and y).")
            if ("x_test" in keys) != ("y_test" in keys):
                raise ValueError(f"npz dataset {path} must hold both x_test and y_test, or neither.")
            arrays = {k: z[k] for k in keys}
    except ValueError as err:
        msg = str(err)
        if msg.startswith("npz dataset"):
            raise
        raise ValueError(f"npz dataset {path} cannot be read without pickle or is not an npz file ({msg}).") from None
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise ValueError(f"npz dataset {path} is truncated or not an npz file ({err}).") from None
    for split, xk, yk in (("train", "x", "y"), ("test", "x_test", "y_test")):
        if xk in arrays:
            check_arrays(arrays[xk], arrays[yk], f"npz dataset {path}: {split}")
    if "x_test" in arrays and arrays["x_test"].shape[1:] != arrays["x"].shape[1:]:
        raise ValueError(f"npz dataset {path}: x_test samples have shape {arrays['x_test'].shape[1:]}, "
                         f"x samples {arrays['x'].shape[1:]}.")
    return arrays
