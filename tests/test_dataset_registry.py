"""The dataset registry (:mod:`tbnn.io.datasets.registry`): every registered dataset trains end
to end through ``tbnn train``, and a dataset registered at run time appears in every place that
lists datasets (``DATASETS``, ``parse_dataset_name`` and its refusal, ``tbnn train --help``,
``load_dataset`` and the command line).

The tests read the registry, so a new dataset is picked up without editing this file; a new
path-taking dataset needs a small file, written by its entry in :data:`WRITERS`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from datafiles import write_mnist_like, write_npz_set

from tbnn.cli import build_parser, main
from tbnn.io.datasets import (
    DATASET_SPECS,
    DATASETS,
    DatasetSpec,
    RawArrays,
    dataset_list,
    get_dataset,
    load_dataset,
    parse_dataset_name,
    register_dataset,
    unregister_dataset,
)

#: kind of a path-taking dataset -> writes a small valid file or directory under a folder, returns its path
WRITERS = {
    "idx": lambda d: (write_mnist_like(d / "idx"), d / "idx")[1],
    "npz": lambda d: write_npz_set(d / "set.npz"),
}


def _help_train() -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    return " ".join(buf.getvalue().split())  # argparse wraps lines


def _train(name: str, out: Path, seed: int = 0) -> int:
    return main(["train", "--dataset", name, "--model", "float", "--hidden", "8", "--layers", "1",
                 "--epochs", "1", "--batch", "16", "--n-train", "24", "--n-test", "10", "--seed", str(seed),
                 "--quiet", "--out", str(out)])


def _name(spec: DatasetSpec, folder: Path) -> str:
    if not spec.takes_path:
        return spec.kind
    assert spec.kind in WRITERS, f"add a writer of a small {spec.name} file to WRITERS"
    return f"{spec.kind}:{WRITERS[spec.kind](folder)}"


# --------------------------------------------------------------------------- every entry


def test_every_listing_is_the_registry():
    names = [s.name for s in DATASET_SPECS.values()]
    assert names[:5] == ["digits", "mnist1d", "synthetic", "idx:PATH", "npz:PATH"]
    assert list(DATASETS) == names and dict(DATASETS) == {s.name: s.description for s in DATASET_SPECS.values()}
    assert dataset_list() == ", ".join(names[:-1]) + " or " + names[-1]
    assert dataset_list() in _help_train()
    with pytest.raises(ValueError, match=f"^dataset must be one of {dataset_list()}; got 'cifar10'$"):
        parse_dataset_name("cifar10")


@pytest.mark.parametrize("kind", list(DATASET_SPECS))
def test_dataset_trains_through_the_cli(kind, tmp_path, capsys):
    spec = DATASET_SPECS[kind]
    name = _name(spec, tmp_path)
    assert parse_dataset_name(name)[0] == kind
    if spec.takes_path:  # the kind alone, or a path after a kind that takes none, is refused
        with pytest.raises(ValueError, match="dataset must be one of"):
            parse_dataset_name(kind)
    else:
        with pytest.raises(ValueError, match="dataset must be one of"):
            parse_dataset_name(f"{kind}:x")
    assert _train(name, tmp_path / "run") == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    ds = load_dataset(name, n_train=24, n_test=10)
    assert cfg["train"]["dataset"] == ds.name and cfg["train"]["data_sha256"] == ds.sha256
    model = cfg["model"]
    assert (model["in_features"], model["n_classes"]) == (ds.n_features, ds.n_classes)
    assert model["image_shape"] == (list(ds.image_shape) if ds.image_shape else None)
    # the spec's declared shapes and classes are what its loader gives
    if spec.input_shape is not None:
        assert ds.input_shape == spec.input_shape
        assert ds.image_shape == spec.image_shape
    if spec.n_classes is not None:
        assert ds.n_classes == spec.n_classes


# --------------------------------------------------------------------------- an entry added at run time


def _blobs(path: str, seed: int = 0) -> RawArrays:
    """``n`` seeded Gaussian blobs of 3 classes in 5 dimensions; ``n`` read from the text file ``path``."""
    n = int(Path(path).read_text())
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 5)) + 2.0 * y[:, None]
    cut = n * 3 // 4
    return RawArrays(x[:cut], y[:cut], x[cut:], y[cut:], None, 1)


BLOBS = DatasetSpec("blobs", "seeded Gaussian blobs, 3 classes; their count in the text file PATH", _blobs,
                    takes_path=True, seeded=True, input_shape=(5,), n_classes=3)


@contextlib.contextmanager
def _registered(spec: DatasetSpec):
    register_dataset(spec)
    try:
        yield spec
    finally:
        unregister_dataset(spec.kind)


def test_dataset_registered_at_run_time_is_listed_everywhere(tmp_path, capsys):
    path = tmp_path / "n.txt"
    path.write_text("48")
    assert "blobs:PATH" not in DATASETS
    with _registered(BLOBS):
        assert DATASETS["blobs:PATH"] == BLOBS.description and get_dataset("blobs") is BLOBS
        assert "or blobs:PATH" in dataset_list() and "blobs:PATH" in _help_train()
        assert parse_dataset_name(f" Blobs:{path} ") == ("blobs", str(path))
        with pytest.raises(ValueError, match="or blobs:PATH; got 'blob'"):
            parse_dataset_name("blob")
        # the command line names it among the datasets when refusing another name
        assert main(["train", "--dataset", "nope", "--model", "float", "--out", str(tmp_path / "x"), "--quiet"]) == 2
        assert "or blobs:PATH; got 'nope'" in capsys.readouterr().err
        # and loads it: the path given, and the seed (the data depend on it)
        a, b = load_dataset(f"blobs:{path}", seed=0), load_dataset(f"blobs:{path}", seed=1)
        assert a.name == f"blobs:{path.resolve()}" and (a.n_train, a.n_test, a.n_classes) == (36, 12, 3)
        assert a.sha256 != b.sha256
        assert _train(f"blobs:{path}", tmp_path / "run") == 0
        sha = load_dataset(f"blobs:{path}", n_train=24, n_test=10).sha256
        assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["data_sha256"] == sha
    assert "blobs:PATH" not in DATASETS and "blobs" not in _help_train()
    with pytest.raises(ValueError, match="dataset must be one of"):
        parse_dataset_name(f"blobs:{path}")


def test_dataset_registry_refuses_bad_entries():
    with pytest.raises(ValueError, match="spec must be a tbnn.io.datasets.DatasetSpec; got str"):
        register_dataset("digits")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(get_dataset("digits"))
    for kind in ("Blobs", "my-set", "", "a:b"):
        with pytest.raises(ValueError, match="spec.kind must be a lowercase identifier"):
            register_dataset(DatasetSpec(kind, "x", _blobs))
    with pytest.raises(ValueError, match="spec.description must be a non-empty line"):
        register_dataset(DatasetSpec("blobs", " ", _blobs))
    for loader in ("tbnn.io.datasets.sources", ":raw_digits", 3):
        with pytest.raises(ValueError, match="spec.loader must be a function or a 'module:function'"):
            register_dataset(DatasetSpec("blobs", "x", loader))
    with pytest.raises(ValueError, match="^dataset must be one of .*; got 'blobs'$"):
        unregister_dataset("blobs")
    assert "blobs" not in DATASET_SPECS


# --------------------------------------------------------------------------- one label rule


def _bad(**change) -> DatasetSpec:
    def loader() -> RawArrays:
        x, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
        return RawArrays(x, y, x, y, None, 1)._replace(**change)

    return DatasetSpec("bad", "a broken loader", loader)


@pytest.mark.parametrize("change,msg", [
    ({"y_train": np.array([0, 1, 0, -1, 0, 1])}, "'bad': train labels must be class indices >= 0; got -1."),
    ({"y_test": np.array([0.0, 1, 0, 1, 0, 1])},
     "'bad': test labels must be a 1-D integer array with one class per sample (6), got dtype float64"),
    ({"y_train": np.array([0, 1, 0, 1])},
     "'bad': train labels must be a 1-D integer array with one class per sample (6), got dtype int64 and shape (4,)."),
    ({"y_train": np.array([[0, 1, 0, 1, 0, 1]])}, "'bad': train labels must be a 1-D integer array"),
    ({"y_train": np.array([0, 2, 0, 2, 0, 2])}, "labels run from 0 to 2 but 1 of these 3 classes (1)"),
    ({"x_test": np.zeros((6, 3))}, "train has 2 features, test has 3"),
    ({"x_train": np.zeros((6, 2, 1))}, "train split has inputs of shape (6, 2, 1)"),
])
def test_dataset_labels_follow_the_one_rule(change, msg):
    """Labels from any loader are checked by :func:`tbnn.core.validate.check_labels`, then the
    dataset's own rules (every class present in training, one feature count)."""
    with _registered(_bad(**change)), pytest.raises(ValueError) as info:
        load_dataset("bad")
    assert str(info.value).startswith("dataset 'bad': ") and msg in str(info.value)


def test_loader_must_return_raw_arrays():
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with _registered(DatasetSpec("bad", "a tuple", lambda: (x, y, x, y, None, 1))), \
            pytest.raises(TypeError, match="'bad': its loader must return tbnn.io.datasets.RawArrays; got tuple"):
        load_dataset("bad")
