"""Tiny dataset files the tests write: MNIST-like IDX directories and ``.npz`` arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tbnn.io.datasets import IDX_FILES, write_idx


def write_mnist_like(
    directory: Path,
    n_train: int = 30,
    n_test: int = 12,
    rows: int = 5,
    cols: int = 4,
    gz: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The four IDX files of an MNIST-like set in ``directory``: random uint8 images, labels
    ``i % 10``; returns the arrays written, by :data:`IDX_FILES` key."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, rows, cols), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, rows, cols), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, arr in arrays.items():
        write_idx(directory / (IDX_FILES[key] + (".gz" if gz else "")), arr)
    return arrays


def write_npz_set(path: Path, n: int = 60, features: int = 12, classes: int = 3, seed: int = 0) -> Path:
    """An ``.npz`` with ``x`` ``[n, features]`` (float32, classes separated by their mean) and
    ``y`` ``i % classes``, no test split (the loader splits 80/20); returns ``path``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (rng.normal(size=(n, features)) + y[:, None]).astype(np.float32)
    np.savez(path, x=x, y=y)
    return path
