"""The raw arrays of each source: scikit-learn's digits, the generated mnist1d, synthetic
clusters and a user's npz file, each read offline.

Each function here is a loader of :mod:`tbnn.io.datasets.registry`, registered there by a
``"tbnn.io.datasets.sources:function"`` reference and looked up at each load.
"""

from __future__ import annotations

import functools
import random

import numpy as np

from tbnn.io.cache import cached_arrays
from tbnn.io.datasets.spec import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_FEATURES,
    SYNTHETIC_TEST,
    SYNTHETIC_TRAIN,
    RawArrays,
)

# --------------------------------------------------------------------------- built-ins


def _package_version(dist: str) -> str:
    """Installed version of a distribution, read from its metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _read_only(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = tuple(np.ascontiguousarray(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    for a in out:
        a.setflags(write=False)
    return out  # type: ignore[return-value]


def _make_digits() -> dict[str, np.ndarray]:
    """scikit-learn digits with the fixed stratified split (imports scikit-learn)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits with the fixed stratified split (read-only; cached in memory and on
    disk, :mod:`tbnn.io.cache`, so that later commands need not import scikit-learn)."""
    params = {"loader": "sklearn.datasets.load_digits", "split": "train_test_split",
              "test_size": 0.25, "random_state": 0, "stratify": True,
              "scikit-learn": _package_version("scikit-learn")}
    expect = {"x_train": ((1347, 64), "float64"), "y_train": ((1347,), "int64"),
              "x_test": ((450, 64), "float64"), "y_test": ((450,), "int64")}
    return _read_only(cached_arrays("digits", params, _make_digits, expect))


def raw_digits() -> RawArrays:
    """Load scikit-learn's bundled digits (values 0..16), split 1347 / 450."""
    xtr, ytr, xte, yte = _digits_arrays()
    return RawArrays(xtr.copy(), ytr.copy(), xte.copy(), yte.copy(), (8, 8), 1)


def _make_mnist1d() -> dict[str, np.ndarray]:
    """Generate MNIST-1D with the package's default arguments (imports mnist1d and SciPy).

    ``make_dataset`` reseeds Python's and numpy's global random generators; their state is
    restored afterwards so that loading the data has no side effect on other code.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x_train": np.asarray(data["x"], dtype=np.float64),
        "y_train": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float64),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D with the package's default arguments (read-only; generated once, then cached
    in memory and on disk, :mod:`tbnn.io.cache`)."""
    params = {"generator": "mnist1d.data.make_dataset(get_dataset_args())",
              "mnist1d": _package_version("mnist1d")}
    expect = {"x_train": ((4000, 40), "float64"), "y_train": ((4000,), "int64"),
              "x_test": ((1000, 40), "float64"), "y_test": ((1000,), "int64")}
    return _read_only(cached_arrays("mnist1d", params, _make_mnist1d, expect))


def raw_mnist1d() -> RawArrays:
    """Load locally generated MNIST-1D, 4000 / 1000 sequences of length 40."""
    xtr, ytr, xte, yte = _mnist1d_arrays()
    return RawArrays(xtr.copy(), ytr.copy(), xte.copy(), yte.copy(), None, 1)


def raw_synthetic(seed: int) -> RawArrays:
    """A seeded 20-feature, 4-class ``make_classification`` problem, 1500 / 500."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=SYNTHETIC_TRAIN + SYNTHETIC_TEST,
        n_features=SYNTHETIC_FEATURES,
        n_informative=10,
        n_redundant=4,
        n_classes=SYNTHETIC_CLASSES,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=seed,
    )
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=SYNTHETIC_TEST, random_state=seed, stratify=y
    )
    return RawArrays(
        xtr.astype(np.float64),
        ytr.astype(np.int64),
        xte.astype(np.float64),
        yte.astype(np.int64),
        None,
        1,
    )


def raw_npz(path: str) -> RawArrays:
    """Arrays ``x``, ``y`` (and optional ``x_test``, ``y_test``) of a user's ``.npz`` file.

    Without a test split, a fixed 80/20 split (a permutation seeded with 0, whatever the
    run's seed) makes one, so numbers are comparable across seeds. ``x`` of shape
    ``[N, H, W]`` is an image set (``image_shape = (H, W)``); ``[N, F]`` a vector set.
    """
    from tbnn.io.userdata import read_npz_arrays

    a = read_npz_arrays(path)
    x, y = a["x"], a["y"]
    if x.ndim > 3:
        raise ValueError(f"npz dataset {path}: x must be [samples, features] or [samples, H, W] for the built-in "
                         f"models; got shape {x.shape} (train your own model with tbnn.fit).")
    image_shape = (int(x.shape[1]), int(x.shape[2])) if x.ndim == 3 else None
    if "x_test" in a:
        xt, yt = a["x_test"], a["y_test"]
    else:
        if len(y) < 2:
            raise ValueError(f"npz dataset {path}: x holds {len(y)} sample; at least 2 are needed to split off a test set.")
        order = np.random.default_rng(0).permutation(len(y))
        cut = max(1, round(0.8 * len(y)))
        cut = min(cut, len(y) - 1)
        xt, yt = x[order[cut:]], y[order[cut:]]
        x, y = x[order[:cut]], y[order[:cut]]
    flat = lambda v: np.asarray(v, np.float64).reshape(len(v), -1)
    return RawArrays(flat(x), np.asarray(y).astype(np.int64), flat(xt), np.asarray(yt).astype(np.int64), image_shape, 1)
