"""What a dataset is (:class:`Dataset`), what a loader returns (:class:`RawArrays`), and the limits.

The names a user can give (:data:`DATASETS`, :func:`parse_dataset_name`) are the registry's,
:mod:`tbnn.io.datasets.registry`; they are re-exported here for the code that imported them
from this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from tbnn.io.datasets.registry import DATASETS, parse_dataset_name

__all__ = ["DATASETS", "IDX_FILES", "Dataset", "RawArrays", "data_digest", "parse_dataset_name"]


#: Base names of the four IDX files, by split and content.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IDX_UBYTE = 0x08
#: Largest IDX data section read (bytes); checked against the header before anything is
#: decompressed, so a small gzip bomb cannot claim gigabytes of memory.
MAX_IDX_BYTES = 1 << 30
#: Largest class count a dataset's labels may imply.
MAX_LABEL_CLASSES = 1000

#: Standard deviations below this are treated as zero; such (constant) training features
#: are divided by 1 instead, i.e. only centred, as in scikit-learn's StandardScaler.
STD_FLOOR = 1e-6

SYNTHETIC_TRAIN = 1500
SYNTHETIC_TEST = 500
SYNTHETIC_FEATURES = 20
SYNTHETIC_CLASSES = 4


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
        sha256: SHA-256 (hex) of the arrays actually used (:func:`data_digest` of
            ``x_train, y_train, x_test, y_test``), recorded in a run's ``config.json`` so
            that ``simulate`` refuses data that changed.
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
    sha256: str | None = None

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


def data_digest(*arrays: torch.Tensor | np.ndarray) -> str:
    """SHA-256 (hex) over arrays: each one's dtype, shape and bytes, in order.

    The identity of a dataset by content: the same values give the same digest wherever
    the file lies; one changed value, label or order changes it.

    >>> a = np.arange(4.0)
    >>> data_digest(a) == data_digest(a.copy()), data_digest(a) == data_digest(a[::-1].copy())
    (True, False)
    """
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{list(arr.shape)}".encode())
        h.update(arr.reshape(-1).view(np.uint8).tobytes() if arr.size else b"")
    return h.hexdigest()


class RawArrays(NamedTuple):
    """Unnormalised arrays as a loader returns them (x flattened to 2-D ``[samples, features]``,
    y 1-D integer class indices ``0..classes-1``; every class present in the training split)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int] | None
    channels: int
