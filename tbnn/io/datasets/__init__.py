"""Offline datasets for tbnn.

Nothing in this package downloads anything. The datasets :func:`load_dataset` and
``tbnn train --dataset`` accept are those of the registry, :mod:`tbnn.io.datasets.registry`
(:data:`DATASETS`, name -> description); the built-ins:

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
``npz:PATH``
    arrays ``x``, ``y`` (and optional ``x_test``, ``y_test``) of a user's ``.npz`` file,
    read without pickle (:func:`tbnn.io.userdata.read_npz_arrays`).

A new source is one loader function plus one :func:`register_dataset` call.

The arrays of ``digits`` and ``mnist1d`` are made once and kept in the on-disk cache of
:mod:`tbnn.io.cache` (``$TBNN_CACHE``, default ``~/.cache/tbnn``; ``TBNN_CACHE=off`` disables
it), so that later commands import neither scikit-learn nor mnist1d and SciPy.

Every dataset is returned flattened to vectors (``input_shape`` is one-dimensional) and
standardised per feature with the mean and standard deviation of the *training* split
only; ``image_shape`` keeps the 2-D shape so that a convolutional model can reshape
(see :meth:`Dataset.as_images`).

The registry's names are imported eagerly and import nothing heavy; the rest (which imports
torch) on first use, so that ``tbnn --help`` lists the datasets without torch.

>>> list(DATASETS)
['digits', 'mnist1d', 'synthetic', 'idx:PATH', 'npz:PATH']
"""

from __future__ import annotations

import importlib
from typing import Any

from tbnn.io.datasets.registry import (
    DATASET_SPECS,
    DATASETS,
    DatasetSpec,
    dataset_list,
    get_dataset,
    parse_dataset_name,
    register_dataset,
    unregister_dataset,
)

#: names imported on first use -> the module of this package that defines them
_LAZY: dict[str, str] = {
    "IDX_FILES": "spec", "Dataset": "spec", "RawArrays": "spec", "data_digest": "spec",
    "load_dataset": "load", "read_idx": "idx", "write_idx": "idx",
}

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "IDX_FILES",
    "Dataset",
    "DatasetSpec",
    "RawArrays",
    "data_digest",
    "dataset_list",
    "get_dataset",
    "load_dataset",
    "parse_dataset_name",
    "read_idx",
    "register_dataset",
    "unregister_dataset",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
