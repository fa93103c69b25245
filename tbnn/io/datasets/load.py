"""``load_dataset``: a named source's arrays checked, subset, split and normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tbnn.core.validate import check_labels
from tbnn.io.datasets.registry import get_dataset, parse_dataset_name
from tbnn.io.datasets.spec import MAX_LABEL_CLASSES, STD_FLOOR, Dataset, RawArrays, data_digest

__all__ = ["load_dataset"]


# --------------------------------------------------------------------------- assembly


def _check_finite(name: str, raw: RawArrays) -> None:
    """Raise ValueError naming the dataset and split if any input is NaN or inf."""
    big = float(np.finfo(np.float32).max)
    for split, x in (("train", raw.x_train), ("test", raw.x_test)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(
                f"dataset {name!r}: {split} split contains {bad} non-finite value(s) "
                "(NaN or inf) in its inputs"
            )
        huge = int(np.count_nonzero(np.abs(x) > big)) if np.size(x) else 0
        if huge:
            raise ValueError(
                f"dataset {name!r}: {split} split holds {huge} value(s) beyond float32's range "
                f"(|x| > {big:.3g}), which training would overflow; rescale the data"
            )


def _check_labels(name: str, raw: RawArrays) -> int:
    """Validate labels (:func:`~tbnn.core.validate.check_labels`: 1-D integer class indices
    ``>= 0``, one per sample) and what a dataset adds (2-D inputs, no empty split, as many
    features in both splits, every class ``0..classes-1`` in the training split); return
    n_classes."""
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if np.ndim(x) != 2:
            raise ValueError(f"dataset {name!r}: {split} split has inputs of shape {np.shape(x)}; "
                             f"a loader returns them flattened, [samples, features]")
        check_labels(y, x.shape[0], f"dataset {name!r}: {split} labels")
        if x.shape[0] == 0:
            raise ValueError(f"dataset {name!r}: {split} split is empty")
    if raw.x_train.shape[1] != raw.x_test.shape[1]:
        raise ValueError(
            f"dataset {name!r}: train has {raw.x_train.shape[1]} features, "
            f"test has {raw.x_test.shape[1]}"
        )
    n_classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
    if n_classes > MAX_LABEL_CLASSES:
        raise ValueError(
            f"dataset {name!r}: labels reach {n_classes - 1}, more than {MAX_LABEL_CLASSES} classes; "
            f"labels must be 0..classes-1"
        )
    missing = sorted(set(range(n_classes)) - {int(v) for v in np.unique(raw.y_train)})
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"dataset {name!r}: labels run from 0 to {n_classes - 1} but {len(missing)} of these "
            f"{n_classes} classes ({shown}) have no training sample; labels must be 0..classes-1"
        )
    return n_classes


def _subset_indices(
    n_available: int, n: int | None, what: str, rng: np.random.Generator
) -> np.ndarray | None:
    """Sorted random indices of ``n`` of ``n_available`` samples, or None for all."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what} must be a positive integer or None, got {n!r}")
    if not 1 <= n <= n_available:
        raise ValueError(f"{what} must be between 1 and {n_available}, got {n}")
    return np.sort(rng.permutation(n_available)[:n])


def _standardise(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise both splits per feature with training mean and (floored) std."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std < STD_FLOOR, 1.0, std)
    return (x_train - mean) / std, (x_test - mean) / std, mean, std


NORMALIZATIONS: tuple[str, ...] = ("auto", "standard", "unit")


def _unit_scale(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One global affine map of the training range onto [0, 1] (image intensities)."""
    lo, hi = float(x_train.min()), float(x_train.max())
    span = hi - lo if hi > lo else 1.0
    mean = np.full(x_train.shape[1], lo)
    std = np.full(x_train.shape[1], span)
    return (x_train - lo) / span, (x_test - lo) / span, mean, std


def load_dataset(
    name: str,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    normalize: str = "auto",
) -> Dataset:
    """Load a dataset by name, standardised, as torch tensors; never downloads.

    Args:
        name: a registered dataset (:data:`~tbnn.io.datasets.registry.DATASETS`):
            ``"digits"``, ``"mnist1d"``, ``"synthetic"``, ``"idx:PATH"``, ``"npz:PATH"``, ...
        seed: seeds a seeded source (the ``synthetic`` problem) and the choice of subsets;
            the digits split and the MNIST-1D data themselves do not depend on it.
        n_train: if given, use a random subset of this many training samples
            (deterministic for a given seed). Normalisation statistics come from the
            subset actually returned.
        n_test: likewise for the test split.
        normalize: ``"standard"`` (per-feature z-score), ``"unit"`` (one global map of
            the training range onto [0, 1], keeping image geometry; spike encoders see
            intensities rather than z-scores whose rare outliers, up to 37 sigma on digits
            pixels, would set every sample's grid), or ``"auto"``: ``unit`` for image
            datasets (digits, IDX), ``standard`` otherwise. Statistics from the training
            split only.

    Returns:
        A :class:`Dataset` with float32 inputs standardised per feature using training
        statistics only, and int64 labels.

    Raises:
        ValueError: unknown name, invalid subset size, non-finite values in the data,
            invalid labels, or invalid IDX / npz files.
        TypeError: a name that is not a string, a subset size that is not an integer, or a
            loader that does not return ``RawArrays``.
        FileNotFoundError: ``idx:PATH`` / ``npz:PATH`` whose directory or files are missing.
    """
    kind, path = parse_dataset_name(name)
    if path is not None:
        path = str(Path(path).expanduser().resolve())  # stored absolute: the run is read from anywhere
    canonical = f"{kind}:{path}" if path is not None else kind
    raw = get_dataset(kind).load_raw(path, seed)
    if not isinstance(raw, RawArrays):
        raise TypeError(f"dataset {canonical!r}: its loader must return tbnn.io.datasets.RawArrays; "
                        f"got {type(raw).__name__}")
    _check_finite(canonical, raw)
    n_classes = _check_labels(canonical, raw)

    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    idx = _subset_indices(len(y_train), n_train, "n_train", rng)
    if idx is not None:
        x_train, y_train = x_train[idx], y_train[idx]
    idx = _subset_indices(len(y_test), n_test, "n_test", rng)
    if idx is not None:
        x_test, y_test = x_test[idx], y_test[idx]

    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {normalize!r}."
        )
    if normalize == "auto":
        normalize = "unit" if raw.image_shape is not None else "standard"
    scale = _unit_scale if normalize == "unit" else _standardise
    x_train_n, x_test_n, mean, std = scale(
        np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    )
    input_shape = (int(x_train.shape[1]),)
    tensors = (torch.tensor(x_train_n, dtype=torch.float32), torch.tensor(y_train, dtype=torch.int64),
               torch.tensor(x_test_n, dtype=torch.float32), torch.tensor(y_test, dtype=torch.int64))
    for split, t in (("train", tensors[0]), ("test", tensors[2])):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"dataset {canonical!r}: the {split} inputs overflow float32 once normalised "
                             f"({normalize}); rescale the data (values near 1e308 cannot be normalised).")
    return Dataset(
        name=canonical,
        x_train=tensors[0],
        y_train=tensors[1],
        x_test=tensors[2],
        y_test=tensors[3],
        sha256=data_digest(*tensors),
        n_classes=n_classes,
        input_shape=input_shape,
        image_shape=raw.image_shape,
        channels=raw.channels,
        feature_mean=torch.tensor(mean, dtype=torch.float32),
        feature_std=torch.tensor(std, dtype=torch.float32),
    )
