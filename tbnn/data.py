"""Offline datasets for tbnn.

Nothing in this module downloads anything. Four kinds of dataset are available
through :func:`load_dataset`:

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes), with a
    fixed stratified 75/25 split (``random_state=0`` whatever the seed), so numbers are
    comparable across seeds: 1347 train / 450 test.
``mnist1d``
    MNIST-1D (Greydanus 2020) generated locally with ``mnist1d.data.make_dataset`` and
    its default arguments (generation seed 42): 4000 train / 1000 test sequences of
    length 40, 10 classes.
``synthetic``
    a small seeded classification problem from ``sklearn.datasets.make_classification``:
    20 features, 4 classes, 1500 train / 500 test. Unlike the others, the problem itself
    depends on ``seed``.
``idx:PATH``
    MNIST / Fashion-MNIST IDX files the user already has in directory ``PATH``
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally gzipped as ``.gz``).

The arrays of ``digits`` and ``mnist1d`` are made once and kept in the on-disk cache of
:mod:`tbnn.cache` (``$TBNN_CACHE``, default ``~/.cache/tbnn``; ``TBNN_CACHE=off`` disables
it), so that later commands import neither scikit-learn nor mnist1d and SciPy.

Every dataset is returned flattened to vectors (``input_shape`` is one-dimensional) and
standardised per feature with the mean and standard deviation of the *training* split
only; ``image_shape`` keeps the 2-D shape so that a convolutional model can reshape
(see :meth:`Dataset.as_images`).
"""

from __future__ import annotations

import functools
import gzip
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .cache import cached_arrays

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "Dataset",
    "load_dataset",
    "parse_dataset_name",
    "read_idx",
    "write_idx",
]

#: Short descriptions of the datasets :func:`load_dataset` accepts.
DATASETS: dict[str, str] = {
    "digits": (
        "scikit-learn's bundled 8x8 handwritten digits, 10 classes, fixed stratified split "
        "1347 train / 450 test (random_state=0 for every seed); input (64,), image (8, 8)"
    ),
    "mnist1d": (
        "MNIST-1D generated locally with mnist1d's default arguments (seed 42), 10 classes, "
        "4000 train / 1000 test; input (40,), no image shape"
    ),
    "synthetic": (
        "seeded sklearn make_classification problem, 20 features, 4 classes, "
        "1500 train / 500 test; the problem depends on the seed"
    ),
    "idx:PATH": (
        "MNIST / Fashion-MNIST IDX files in directory PATH (train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each "
        "optionally .gz); input (rows*cols,), image (rows, cols)"
    ),
}

#: Base names of the four IDX files, by split and content.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_IDX_UBYTE = 0x08
#: Largest IDX data section read (bytes); checked against the header before anything is
#: decompressed, so a small gzip bomb cannot claim gigabytes of memory.
MAX_IDX_BYTES = 1 << 30
#: Largest class count a dataset's labels may imply.
MAX_LABEL_CLASSES = 1000

#: Standard deviations below this are treated as zero; such (constant) training features
#: are divided by 1 instead, i.e. only centred, as in scikit-learn's StandardScaler.
STD_FLOOR = 1e-6

_SYNTHETIC_TRAIN = 1500
_SYNTHETIC_TEST = 500
_SYNTHETIC_FEATURES = 20
_SYNTHETIC_CLASSES = 4

_UNKNOWN_MESSAGE = "dataset must be one of digits, mnist1d, synthetic, idx:PATH or npz:PATH; got {!r}"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test classification dataset, ready for training.

    Attributes:
        name: canonical name, e.g. ``"digits"`` or ``"idx:/data/mnist"``.
        x_train: float32 tensor ``(n_train, *input_shape)``, standardised.
        y_train: int64 tensor ``(n_train,)`` of class indices in ``[0, n_classes)``.
        x_test: float32 tensor ``(n_test, *input_shape)``, standardised with the training
            statistics.
        y_test: int64 tensor ``(n_test,)``.
        n_classes: number of classes.
        input_shape: shape of one sample as stored, always flattened, e.g. ``(64,)``.
        image_shape: 2-D shape of one image, e.g. ``(8, 8)`` or ``(28, 28)``; ``None`` for
            data that are not images (mnist1d, synthetic).
        channels: number of image channels (1 for every dataset here).
        feature_mean: float32 tensor ``input_shape``, training mean subtracted from each
            feature (in the units of the raw data).
        feature_std: float32 tensor ``input_shape``, the divisor used for each feature
            (training standard deviation, 1 where that was below :data:`STD_FLOOR`).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]
    image_shape: tuple[int, int] | None
    channels: int
    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input features per sample (product of ``input_shape``)."""
        return int(np.prod(self.input_shape))

    def as_images(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape flattened samples ``(batch, n_features)`` to ``(batch, C, H, W)``.

        Raises:
            ValueError: if the dataset has no image shape.
        """
        if self.image_shape is None:
            raise ValueError(f"dataset {self.name!r} has no image shape")
        return x.reshape(x.shape[0], self.channels, *self.image_shape)


class _Raw(NamedTuple):
    """Unnormalised arrays as a loader returns them (x flattened to 2-D)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int] | None
    channels: int


# --------------------------------------------------------------------------- names


def parse_dataset_name(name: str) -> tuple[str, str | None]:
    """Split a dataset name into its kind and, for ``idx:PATH``, the path.

    Kinds are matched case-insensitively and ignoring surrounding whitespace; the path
    is kept as given.

    Returns:
        ``(kind, path)`` where kind is one of ``"digits"``, ``"mnist1d"``,
        ``"synthetic"``, ``"idx"`` and path is ``None`` except for ``"idx"``.

    Raises:
        ValueError: for any other name, or ``idx:`` with an empty path.
        TypeError: if ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    stripped = name.strip()
    kind, sep, rest = stripped.partition(":")
    kind = kind.strip().lower()
    if sep:
        if kind in ("idx", "npz") and rest.strip():
            return kind, rest.strip()
        raise ValueError(_UNKNOWN_MESSAGE.format(name))
    if kind in ("digits", "mnist1d", "synthetic"):
        return kind, None
    raise ValueError(_UNKNOWN_MESSAGE.format(name))


# --------------------------------------------------------------------------- IDX files


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write an unsigned-byte array as an IDX file (gzipped if ``path`` ends in ``.gz``).

    A 3-D array ``(n, rows, cols)`` gives an image file (magic 2051), a 1-D array a
    label file (magic 2049); any dimensionality from 1 to 255 is written.

    Args:
        path: destination file; parent directories must exist.
        array: integer array with values in ``[0, 255]``.

    Returns:
        The path written.

    Raises:
        ValueError: if the array is 0-D, has more than 255 dimensions, is not of an
            integer (or bool) dtype, or holds values outside ``[0, 255]``.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim < 1 or arr.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {arr.ndim}")
    if arr.dtype != np.uint8:
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"write_idx: array of dtype {arr.dtype} is not an integer array")
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("write_idx: values must lie in [0, 255] for an unsigned-byte file")
        arr = arr.astype(np.uint8)
    magic = (_IDX_UBYTE << 8) | arr.ndim
    header = np.array([magic, *arr.shape], dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or ``.gz``) into a uint8 numpy array.

    The magic number, the dimensions and the file size are checked against the header.

    Args:
        path: the file.
        expected_magic: if given, the magic number the file must have (2051 for image
            files, 2049 for label files).

    Returns:
        Array of shape given by the header.

    Raises:
        ValueError: naming the file, if it is not valid gzip (for ``.gz``), its magic
            number is wrong or not an unsigned-byte IDX one, a dimension is zero, or its
            size does not match the header (truncated or trailing data).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            head = fh.read(4)
            magic = _idx_magic(path, head, expected_magic)
            ndim = magic & 0xFF
            header_len = 4 + 4 * ndim
            rest = fh.read(4 * ndim)
            if len(rest) < 4 * ndim:
                raise ValueError(
                    f"IDX file {path}: {4 + len(rest)} bytes, too short for a {ndim}-dimensional header "
                    f"of {header_len} bytes"
                )
            dims = tuple(int(d) for d in np.frombuffer(rest, dtype=">u4", count=ndim))
            if any(d == 0 for d in dims):
                raise ValueError(f"IDX file {path}: header dimensions {dims} include a zero")
            body = int(np.prod(dims, dtype=object))
            if body > MAX_IDX_BYTES:
                raise ValueError(
                    f"IDX file {path}: header dimensions {dims} declare {body} bytes of data, more than "
                    f"the {MAX_IDX_BYTES} tbnn reads (tbnn.data.MAX_IDX_BYTES)"
                )
            if opener is open and path.stat().st_size != header_len + body:
                data_len = path.stat().st_size  # wrong size: refused below, nothing read
            else:
                # read at most one byte more than the header declares: a decompression bomb
                # or trailing data is caught without inflating more than that
                payload = fh.read(body + 1)
                data_len = header_len + len(payload)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"IDX file {path}: cannot be read ({exc})") from None
    expected = header_len + body
    if data_len != expected:
        what = "truncated" if data_len < expected else "has trailing data"
        raise ValueError(
            f"IDX file {path}: {what}: size {data_len} bytes does not match the header "
            f"(dimensions {dims} need {expected} bytes)"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


def _idx_magic(path: Path, head: bytes, expected_magic: int | None) -> int:
    """The magic number of an IDX file from its first 4 bytes, checked."""
    if len(head) < 4:
        raise ValueError(
            f"IDX file {path}: only {len(head)} bytes, too short for a 4-byte magic number"
        )
    magic = int(np.frombuffer(head, dtype=">u4", count=1)[0])
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"IDX file {path}: magic number {magic} (0x{magic:08x}), expected "
            f"{expected_magic} (0x{expected_magic:08x})"
        )
    if magic >> 8 != _IDX_UBYTE or magic & 0xFF == 0:
        raise ValueError(
            f"IDX file {path}: magic number {magic} (0x{magic:08x}) is not an "
            "unsigned-byte IDX magic number (0x000008NN)"
        )
    return magic


def _find_idx_file(directory: Path, base: str) -> Path:
    """Return ``directory/base`` or ``directory/base.gz``, whichever exists (plain first)."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"IDX dataset {directory}: neither {base} nor {base}.gz found")


def _raw_idx(directory: str | Path) -> _Raw:
    """Load and validate the four MNIST-style IDX files in ``directory``."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"IDX dataset directory {directory} does not exist")
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "test"):
        img_path = _find_idx_file(directory, IDX_FILES[f"{split}_images"])
        lab_path = _find_idx_file(directory, IDX_FILES[f"{split}_labels"])
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(lab_path, IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"IDX file {lab_path}: {labels.shape[0]} labels but {img_path} holds "
                f"{images.shape[0]} images"
            )
        splits[split] = (images, labels)
    train_hw = splits["train"][0].shape[1:]
    test_hw = splits["test"][0].shape[1:]
    if train_hw != test_hw:
        raise ValueError(
            f"IDX dataset {directory}: test images are {test_hw[0]}x{test_hw[1]} but "
            f"training images are {train_hw[0]}x{train_hw[1]}"
        )
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    return _Raw(
        x_train=xtr.reshape(xtr.shape[0], -1).astype(np.float64) / 255.0,
        y_train=ytr.astype(np.int64),
        x_test=xte.reshape(xte.shape[0], -1).astype(np.float64) / 255.0,
        y_test=yte.astype(np.int64),
        image_shape=(int(train_hw[0]), int(train_hw[1])),
        channels=1,
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
    disk, :mod:`tbnn.cache`, so that later commands need not import scikit-learn)."""
    params = {"loader": "sklearn.datasets.load_digits", "split": "train_test_split",
              "test_size": 0.25, "random_state": 0, "stratify": True,
              "scikit-learn": _package_version("scikit-learn")}
    expect = {"x_train": ((1347, 64), "float64"), "y_train": ((1347,), "int64"),
              "x_test": ((450, 64), "float64"), "y_test": ((450,), "int64")}
    return _read_only(cached_arrays("digits", params, _make_digits, expect))


def _raw_digits() -> _Raw:
    """Load scikit-learn's bundled digits (values 0..16), split 1347 / 450."""
    xtr, ytr, xte, yte = _digits_arrays()
    return _Raw(xtr.copy(), ytr.copy(), xte.copy(), yte.copy(), (8, 8), 1)


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
    in memory and on disk, :mod:`tbnn.cache`)."""
    params = {"generator": "mnist1d.data.make_dataset(get_dataset_args())",
              "mnist1d": _package_version("mnist1d")}
    expect = {"x_train": ((4000, 40), "float64"), "y_train": ((4000,), "int64"),
              "x_test": ((1000, 40), "float64"), "y_test": ((1000,), "int64")}
    return _read_only(cached_arrays("mnist1d", params, _make_mnist1d, expect))


def _raw_mnist1d() -> _Raw:
    """Load locally generated MNIST-1D, 4000 / 1000 sequences of length 40."""
    xtr, ytr, xte, yte = _mnist1d_arrays()
    return _Raw(xtr.copy(), ytr.copy(), xte.copy(), yte.copy(), None, 1)


def _raw_synthetic(seed: int) -> _Raw:
    """A seeded 20-feature, 4-class ``make_classification`` problem, 1500 / 500."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=_SYNTHETIC_TRAIN + _SYNTHETIC_TEST,
        n_features=_SYNTHETIC_FEATURES,
        n_informative=10,
        n_redundant=4,
        n_classes=_SYNTHETIC_CLASSES,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=seed,
    )
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=_SYNTHETIC_TEST, random_state=seed, stratify=y
    )
    return _Raw(
        xtr.astype(np.float64),
        ytr.astype(np.int64),
        xte.astype(np.float64),
        yte.astype(np.int64),
        None,
        1,
    )


def _raw_npz(path: str) -> _Raw:
    """Arrays ``x``, ``y`` (and optional ``x_test``, ``y_test``) of a user's ``.npz`` file.

    Without a test split, a fixed 80/20 split (a permutation seeded with 0, whatever the
    run's seed) makes one, so numbers are comparable across seeds. ``x`` of shape
    ``[N, H, W]`` is an image set (``image_shape = (H, W)``); ``[N, F]`` a vector set.
    """
    from .userdata import read_npz_arrays

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
    return _Raw(flat(x), np.asarray(y).astype(np.int64), flat(xt), np.asarray(yt).astype(np.int64), image_shape, 1)


# --------------------------------------------------------------------------- assembly


def _check_finite(name: str, raw: _Raw) -> None:
    """Raise ValueError naming the dataset and split if any input is NaN or inf."""
    for split, x in (("train", raw.x_train), ("test", raw.x_test)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(
                f"dataset {name!r}: {split} split contains {bad} non-finite value(s) "
                "(NaN or inf) in its inputs"
            )


def _check_labels(name: str, raw: _Raw) -> int:
    """Validate labels (integral, non-negative, matching counts); return n_classes."""
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if y.ndim != 1 or x.ndim != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"dataset {name!r}: {split} split has inputs of shape {x.shape} and labels "
                f"of shape {y.shape}"
            )
        if y.shape[0] == 0:
            raise ValueError(f"dataset {name!r}: {split} split is empty")
        if y.min() < 0:
            raise ValueError(f"dataset {name!r}: {split} split has negative labels")
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
        name: ``"digits"``, ``"mnist1d"``, ``"synthetic"`` or ``"idx:PATH"`` (see
            :data:`DATASETS`).
        seed: seeds the ``synthetic`` problem and the choice of subsets; the digits split
            and the MNIST-1D data themselves do not depend on it.
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
            or invalid IDX files.
        TypeError: a name that is not a string, or a subset size that is not an integer.
        FileNotFoundError: ``idx:PATH`` whose directory or files are missing.
    """
    kind, path = parse_dataset_name(name)
    if path is not None:
        path = str(Path(path).expanduser().resolve())  # stored absolute: the run is read from anywhere
    canonical = f"{kind}:{path}" if path is not None else kind
    loaders: dict[str, Callable[[], _Raw]] = {
        "digits": lambda: _raw_digits(),
        "mnist1d": lambda: _raw_mnist1d(),
        "synthetic": lambda: _raw_synthetic(seed),
        "idx": lambda: _raw_idx(path),  # type: ignore[arg-type]
        "npz": lambda: _raw_npz(path),  # type: ignore[arg-type]
    }
    raw = loaders[kind]()
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
    return Dataset(
        name=canonical,
        x_train=torch.tensor(x_train_n, dtype=torch.float32),
        y_train=torch.tensor(y_train, dtype=torch.int64),
        x_test=torch.tensor(x_test_n, dtype=torch.float32),
        y_test=torch.tensor(y_test, dtype=torch.int64),
        n_classes=n_classes,
        input_shape=input_shape,
        image_shape=raw.image_shape,
        channels=raw.channels,
        feature_mean=torch.tensor(mean, dtype=torch.float32),
        feature_std=torch.tensor(std, dtype=torch.float32),
    )
