"""The registry of datasets: every source that ``tbnn train --dataset`` and ``load_dataset`` accept.

One :class:`DatasetSpec` per source holds what tbnn says about it: its kind (``digits``;
``idx`` for the ``idx:PATH`` form), a one-line description, its loader, whether it takes a
path, and its input shape, image shape and classes where they are fixed. :data:`DATASETS`,
:func:`parse_dataset_name` and its refusal, the dispatch of
:func:`~tbnn.io.datasets.load.load_dataset` and ``tbnn train --help`` read this registry.

Adding a dataset: a function that returns :class:`~tbnn.io.datasets.spec.RawArrays` (in
``tbnn/io/datasets/sources.py``, or a file of your own), and one :func:`register_dataset`
call (the built-ins are registered at the end of this file). A loader is given the path (for
a ``kind:PATH`` dataset) and ``seed=`` (when ``seeded``); it is either a function or a lazy
``"module:function"`` reference, imported on first use.

This module imports nothing heavy: the command line lists the names from it without torch.

>>> list(DATASETS)
['digits', 'mnist1d', 'synthetic', 'idx:PATH', 'npz:PATH']
>>> parse_dataset_name(" MNIST1D "), parse_dataset_name("idx:/data/mnist")
(('mnist1d', None), ('idx', '/data/mnist'))
>>> parse_dataset_name("cifar10")
Traceback (most recent call last):
ValueError: dataset must be one of digits, mnist1d, synthetic, idx:PATH or npz:PATH; got 'cifar10'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tbnn.core.registry import MappingView, add_entry, find_entry

__all__ = ["DATASETS", "DATASET_SPECS", "DatasetSpec", "dataset_list", "get_dataset", "parse_dataset_name",
           "register_dataset", "unregister_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset source.

    Attributes:
        kind: the name a user gives (lowercase identifier), or its prefix for a path-taking
            source (``"idx"`` for ``idx:PATH``).
        description: one line: what it is, its classes and split sizes, its shapes.
        loader: a function returning :class:`~tbnn.io.datasets.spec.RawArrays`, or a lazy
            ``"package.module:function"`` reference to one; called as ``loader(path)`` when
            ``takes_path``, ``loader()`` otherwise, with ``seed=`` added when ``seeded``.
        takes_path: the source is ``kind:PATH`` (a file or directory the user has).
        seeded: the data themselves depend on the run's seed.
        input_shape: shape of one flattened sample, ``None`` where the file decides.
        image_shape: 2-D shape of one image, ``None`` for non-image data or where the file
            decides.
        n_classes: number of classes, ``None`` where the file decides.
    """

    kind: str
    description: str
    loader: str | Callable[..., Any]
    takes_path: bool = False
    seeded: bool = False
    input_shape: tuple[int, ...] | None = None
    image_shape: tuple[int, int] | None = None
    n_classes: int | None = None

    @property
    def name(self) -> str:
        """The name as a user writes it: ``"digits"``, or ``"idx:PATH"`` for a path-taking source."""
        return f"{self.kind}:PATH" if self.takes_path else self.kind

    def load_raw(self, path: str | None = None, seed: int = 0) -> Any:
        """The source's raw arrays (:class:`~tbnn.io.datasets.spec.RawArrays`), read by its loader."""
        fn = self.loader
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        args = (path,) if self.takes_path else ()
        return fn(*args, **({"seed": seed} if self.seeded else {}))


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry under ``spec.kind`` and return it.

    Raises
    ------
    ValueError
        ``spec`` is not a :class:`DatasetSpec`, its kind is not a lowercase identifier, its
        description is empty, its loader is neither callable nor ``"module:function"``, or
        the kind is taken (without ``replace``).

    >>> def two_points():
    ...     import numpy as np
    ...     from tbnn.io.datasets.spec import RawArrays
    ...     x, y = np.array([[0.0], [1.0]]), np.array([0, 1])
    ...     return RawArrays(x, y, x, y, None, 1)
    >>> spec = register_dataset(DatasetSpec("two", "two points, two classes", two_points))
    >>> "two" in DATASETS, dataset_list()
    (True, 'digits, mnist1d, synthetic, idx:PATH, npz:PATH or two')
    >>> unregister_dataset("two").kind
    'two'
    """
    if not isinstance(spec, DatasetSpec):
        raise ValueError(f"spec must be a tbnn.io.datasets.DatasetSpec; got {type(spec).__name__}.")
    if not isinstance(spec.kind, str) or not spec.kind.isidentifier() or spec.kind != spec.kind.lower():
        raise ValueError(f"spec.kind must be a lowercase identifier (letters, digits, _); got {spec.kind!r}.")
    if not isinstance(spec.description, str) or not spec.description.strip():
        raise ValueError(f"spec.description must be a non-empty line; got {spec.description!r}.")
    lazy = isinstance(spec.loader, str) and all(part for part in spec.loader.partition(":")[::2])
    if not (callable(spec.loader) or lazy):
        raise ValueError(f"spec.loader must be a function or a 'module:function' reference; got {spec.loader!r}.")
    return add_entry(_REGISTRY, spec.kind, spec, "spec.kind", replace=replace)


def unregister_dataset(kind: str) -> DatasetSpec:
    """Remove the dataset registered as ``kind`` and return its spec."""
    return _REGISTRY.pop(get_dataset(kind).kind)


def get_dataset(kind: str) -> DatasetSpec:
    """The spec registered as ``kind``; ``ValueError`` naming the datasets otherwise."""
    return find_entry(_REGISTRY, kind, lambda: _unknown(kind))


def dataset_list() -> str:
    """The registered names in words, in registration order.

    >>> dataset_list()
    'digits, mnist1d, synthetic, idx:PATH or npz:PATH'
    """
    names = [s.name for s in _REGISTRY.values()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _unknown(name: Any) -> str:
    return f"dataset must be one of {dataset_list()}; got {name!r}"


def parse_dataset_name(name: str) -> tuple[str, str | None]:
    """Split a dataset name into its kind and, for a ``kind:PATH`` source, the path.

    Kinds are matched case-insensitively and ignoring surrounding whitespace; the path is
    kept as given (surrounding whitespace stripped).

    Returns:
        ``(kind, path)`` where kind is a registered kind (:data:`DATASETS`) and path is
        ``None`` except for a path-taking source.

    Raises:
        ValueError: for any other name, a path-taking kind without a path (``idx:``,
            ``idx``), or a path after a kind that takes none (``digits:foo``).
        TypeError: if ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    kind, sep, rest = name.strip().partition(":")
    spec = _REGISTRY.get(kind.strip().lower())
    if spec is None or spec.takes_path != bool(sep) or (sep and not rest.strip()):
        raise ValueError(_unknown(name))
    return spec.kind, (rest.strip() if sep else None)


#: every registered dataset's name (``"digits"``, ``"idx:PATH"``) -> its one-line description (a live view)
DATASETS: Mapping[str, str] = MappingView(_REGISTRY, lambda s: s.description, key=lambda s: s.name)
#: every registered dataset's kind -> its :class:`DatasetSpec` (a live view)
DATASET_SPECS: Mapping[str, DatasetSpec] = MappingView(_REGISTRY)

_SOURCES = "tbnn.io.datasets.sources"
register_dataset(DatasetSpec(
    "digits",
    "scikit-learn's bundled 8x8 handwritten digits, 10 classes, fixed stratified split "
    "1347 train / 450 test (random_state=0 for every seed); input (64,), image (8, 8)",
    f"{_SOURCES}:raw_digits", input_shape=(64,), image_shape=(8, 8), n_classes=10))
register_dataset(DatasetSpec(
    "mnist1d",
    "MNIST-1D generated locally with mnist1d's default arguments (seed 42), 10 classes, "
    "4000 train / 1000 test; input (40,), no image shape",
    f"{_SOURCES}:raw_mnist1d", input_shape=(40,), n_classes=10))
register_dataset(DatasetSpec(
    "synthetic",
    "seeded sklearn make_classification problem, 20 features, 4 classes, "
    "1500 train / 500 test; the problem depends on the seed",
    f"{_SOURCES}:raw_synthetic", seeded=True, input_shape=(20,), n_classes=4))
register_dataset(DatasetSpec(
    "idx",
    "MNIST / Fashion-MNIST IDX files in directory PATH (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each "
    "optionally .gz); input (rows*cols,), image (rows, cols)",
    "tbnn.io.datasets.idx:raw_idx", takes_path=True))
register_dataset(DatasetSpec(
    "npz",
    "arrays x, y (and optional x_test, y_test; without them a fixed 80/20 split) of the .npz "
    "file PATH, read without pickle; x [N, F] is a vector set, [N, H, W] an image set",
    f"{_SOURCES}:raw_npz", takes_path=True))
