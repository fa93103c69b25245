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
:mod:`tbnn.io.cache` (``$TBNN_CACHE``, default ``~/.cache/tbnn``; ``TBNN_CACHE=off`` disables
it), so that later commands import neither scikit-learn nor mnist1d and SciPy.

Every dataset is returned flattened to vectors (``input_shape`` is one-dimensional) and
standardised per feature with the mean and standard deviation of the *training* split
only; ``image_shape`` keeps the 2-D shape so that a convolutional model can reshape
(see :meth:`Dataset.as_images`).
"""

from __future__ import annotations

from tbnn.io.datasets.idx import read_idx, write_idx
from tbnn.io.datasets.load import load_dataset
from tbnn.io.datasets.spec import DATASETS, IDX_FILES, Dataset, data_digest, parse_dataset_name

__all__ = ["DATASETS", "IDX_FILES", "Dataset", "data_digest", "load_dataset", "parse_dataset_name", "read_idx", "write_idx"]
