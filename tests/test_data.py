"""Tests for tbnn.io.datasets: offline datasets, IDX files, normalisation, subsetting."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import write_mnist_like
from hypothesis import given, settings
from hypothesis import strategies as st

from tbnn.io.datasets import (
    DATASETS,
    IDX_FILES,
    Dataset,
    load_dataset,
    parse_dataset_name,
    read_idx,
    sources,
    write_idx,
)

# --------------------------------------------------------------------------- helpers


def _check_common(ds: Dataset) -> None:
    assert ds.x_train.dtype == torch.float32 and ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    assert tuple(ds.x_train.shape[1:]) == ds.input_shape == tuple(ds.x_test.shape[1:])
    assert ds.x_train.shape[0] == ds.y_train.shape[0] == ds.n_train
    assert ds.x_test.shape[0] == ds.y_test.shape[0] == ds.n_test
    assert int(ds.y_train.min()) >= 0 and int(ds.y_train.max()) < ds.n_classes
    assert int(ds.y_test.min()) >= 0 and int(ds.y_test.max()) < ds.n_classes
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()


def _assert_same(a: Dataset, b: Dataset) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


# --------------------------------------------------------------------------- names


def test_parse_dataset_name():
    assert parse_dataset_name("digits") == ("digits", None)
    assert parse_dataset_name(" MNIST1D ") == ("mnist1d", None)
    assert parse_dataset_name("synthetic") == ("synthetic", None)
    assert parse_dataset_name("idx:/data/mnist") == ("idx", "/data/mnist")
    assert parse_dataset_name(" NPZ: a b.npz ") == ("npz", "a b.npz")
    assert list(DATASETS) == ["digits", "mnist1d", "synthetic", "idx:PATH", "npz:PATH"]


@pytest.mark.parametrize("bad", ["xxx", "", "mnist", "idx:", "idx", "digits:foo", "cifar10"])
def test_unknown_name_refused(bad):
    expected = f"dataset must be one of digits, mnist1d, synthetic, idx:PATH or npz:PATH; got {bad!r}"
    with pytest.raises(ValueError) as info:
        load_dataset(bad)
    assert str(info.value) == expected


def test_unknown_name_message_exact():
    with pytest.raises(
        ValueError,
        match=r"^dataset must be one of digits, mnist1d, synthetic, "
        r"idx:PATH or npz:PATH; got 'xxx'$",
    ):
        parse_dataset_name("xxx")


# --------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_metadata():
    ds = load_dataset("digits")
    _check_common(ds)
    assert ds.name == "digits"
    assert (ds.n_train, ds.n_test) == (1347, 450)
    assert ds.input_shape == (64,) and ds.image_shape == (8, 8) and ds.channels == 1
    assert ds.n_classes == 10 and ds.n_features == 64
    assert ds.as_images(ds.x_train[:3]).shape == (3, 1, 8, 8)


def test_digits_stratified():
    ds = load_dataset("digits")
    tr = np.bincount(ds.y_train.numpy(), minlength=10) / ds.n_train
    te = np.bincount(ds.y_test.numpy(), minlength=10) / ds.n_test
    assert np.abs(tr - te).max() < 0.01


def test_digits_split_fixed_across_seeds():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7)
    _assert_same(a, b)
    _assert_same(a, load_dataset("digits", seed=0))


def test_train_only_normalisation():
    ds = load_dataset("digits", normalize="standard")
    assert ds.x_train.mean(0).abs().max() < 1e-5
    std = ds.x_train.std(0, unbiased=False)
    varying = ds.feature_std != 1.0
    assert torch.allclose(std[varying], torch.ones(int(varying.sum())), atol=1e-4)
    # The test split is standardised with the training statistics, not its own.
    assert ds.x_test.mean(0).abs().max() > 1e-3
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    b = load_digits()
    xtr, xte, _, _ = train_test_split(
        b.data, b.target, test_size=0.25, random_state=0, stratify=b.target
    )
    mean, std = xtr.mean(0), xtr.std(0)
    std = np.where(std < 1e-6, 1.0, std)
    np.testing.assert_allclose(ds.x_test.numpy(), (xte - mean) / std, rtol=1e-5, atol=1e-5)


def test_constant_feature_is_finite():
    ds = load_dataset("digits", normalize="standard")  # pixel 0 is always 0 in the digits data
    assert float(ds.feature_std[0]) == 1.0
    assert torch.all(ds.x_train[:, 0] == 0)


# --------------------------------------------------------------------------- mnist1d


def test_mnist1d_shapes_and_determinism():
    np_state = np.random.get_state()
    py_state = random.getstate()
    a = load_dataset("mnist1d")
    _check_common(a)
    assert (a.n_train, a.n_test) == (4000, 1000)
    assert a.input_shape == (40,) and a.image_shape is None and a.n_classes == 10
    _assert_same(a, load_dataset("mnist1d", seed=3))
    # A fresh generation (bypassing the in-memory cache) gives the same data.
    sources._mnist1d_arrays.cache_clear()
    _assert_same(a, load_dataset("mnist1d"))
    # Generation leaves global RNG state untouched.
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2] == np_state[2]
    with pytest.raises(ValueError, match="no image shape"):
        a.as_images(a.x_train[:2])


# --------------------------------------------------------------------------- synthetic


def test_synthetic_determinism_by_seed():
    a, b, c = (load_dataset("synthetic", seed=s) for s in (1, 1, 2))
    _check_common(a)
    assert (a.n_train, a.n_test, a.input_shape, a.n_classes) == (1500, 500, (20,), 4)
    _assert_same(a, b)
    assert not torch.equal(a.x_train, c.x_train)


# --------------------------------------------------------------------------- subsetting


def test_subsetting_deterministic_by_seed():
    a = load_dataset("digits", seed=5, n_train=100, n_test=40, normalize="standard")
    b = load_dataset("digits", seed=5, n_train=100, n_test=40, normalize="standard")
    c = load_dataset("digits", seed=6, n_train=100, n_test=40, normalize="standard")
    _check_common(a)
    assert (a.n_train, a.n_test) == (100, 40)
    _assert_same(a, b)
    assert not torch.equal(a.y_train, c.y_train) or not torch.equal(a.x_train, c.x_train)
    assert a.x_train.mean(0).abs().max() < 1e-5  # statistics of the subset used


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"n_train": 10_000}, {"n_test": -1}])
def test_bad_subset_sizes_refused(kwargs):
    with pytest.raises(ValueError, match="n_t"):
        load_dataset("digits", **kwargs)


@pytest.mark.parametrize("kwargs", [{"n_test": 2.5}, {"n_train": True}, {"n_train": "10"}])
def test_bad_subset_types_refused(kwargs):
    with pytest.raises(TypeError, match="n_t"):
        load_dataset("digits", **kwargs)


def test_non_string_name_refused():
    with pytest.raises(TypeError, match="string"):
        load_dataset(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arrays = write_mnist_like(tmp_path, gz=gz)
    for key, arr in arrays.items():
        path = tmp_path / (IDX_FILES[key] + (".gz" if gz else ""))
        np.testing.assert_array_equal(read_idx(path), arr)
    if gz:
        with gzip.open(tmp_path / (IDX_FILES["train_labels"] + ".gz")) as fh:
            assert int.from_bytes(fh.read(4), "big") == 2049
    else:
        assert (
            int.from_bytes((tmp_path / IDX_FILES["train_images"]).read_bytes()[:4], "big") == 2051
        )
    ds = load_dataset(f"idx:{tmp_path}", normalize="standard")
    _check_common(ds)
    assert ds.name == f"idx:{tmp_path}"
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.image_shape) == (30, 12, (20,), (5, 4))
    assert ds.n_classes == 10
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])
    x = arrays["train_images"].reshape(30, -1) / 255.0
    expected = (x - x.mean(0)) / np.where(x.std(0) < 1e-6, 1.0, x.std(0))
    np.testing.assert_allclose(ds.x_train.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert ds.as_images(ds.x_test).shape == (12, 1, 5, 4)


def test_idx_mixed_plain_and_gz(tmp_path):
    arrays = write_mnist_like(tmp_path, gz=True)
    (tmp_path / (IDX_FILES["test_labels"] + ".gz")).unlink()
    write_idx(tmp_path / IDX_FILES["test_labels"], arrays["test_labels"])
    assert load_dataset(f"idx:{tmp_path}").n_test == 12


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    gz=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_write_read_idx_property(tmp_path_factory, shape, gz, seed):
    arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("idx") / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, arr)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_write_idx_refuses_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="0, 255"):
        write_idx(tmp_path / "a", np.array([1, 300]))
    with pytest.raises(ValueError, match="integer"):
        write_idx(tmp_path / "a", np.array([0.5]))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a", np.uint8(3))


def _rewrite(path: Path, fn) -> None:
    path.write_bytes(fn(path.read_bytes()))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_magic_refused(tmp_path, gz):
    write_mnist_like(tmp_path, gz=False)
    target = tmp_path / IDX_FILES["train_images"]
    _rewrite(target, lambda b: (2049).to_bytes(4, "big") + b[4:])
    if gz:
        target.with_name(target.name + ".gz").write_bytes(gzip.compress(target.read_bytes()))
        target.unlink()
        target = target.with_name(target.name + ".gz")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic number 2049.*2051"):
        load_dataset(f"idx:{tmp_path}")
    assert str(target) in _error(tmp_path)


def _error(directory: Path) -> str:
    with pytest.raises(ValueError) as info:
        load_dataset(f"idx:{directory}")
    return str(info.value)


def test_idx_labels_bad_magic_refused(tmp_path):
    write_mnist_like(tmp_path)
    target = tmp_path / IDX_FILES["test_labels"]
    _rewrite(target, lambda b: (0x0D01).to_bytes(4, "big") + b[4:])  # float32 labels
    msg = _error(tmp_path)
    assert "t10k-labels-idx1-ubyte" in msg and "magic" in msg


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_refused(tmp_path, gz):
    write_mnist_like(tmp_path, gz=gz)
    name = IDX_FILES["test_images"] + (".gz" if gz else "")
    target = tmp_path / name
    if gz:
        raw = gzip.decompress(target.read_bytes())
        target.write_bytes(gzip.compress(raw[:-7]))
    else:
        _rewrite(target, lambda b: b[:-7])
    msg = _error(tmp_path)
    assert name in msg and "truncated" in msg


def test_idx_truncated_header_and_gzip_stream_refused(tmp_path):
    write_mnist_like(tmp_path, gz=True)
    target = tmp_path / (IDX_FILES["train_labels"] + ".gz")
    _rewrite(target, lambda b: b[: len(b) // 2])  # cut gzip stream
    assert "train-labels-idx1-ubyte.gz" in _error(tmp_path)

    write_mnist_like(tmp_path / "h")
    target = tmp_path / "h" / IDX_FILES["train_images"]
    _rewrite(target, lambda b: b[:10])  # header cut inside the dimensions
    msg = _error(tmp_path / "h")
    assert "train-images-idx3-ubyte" in msg and "header" in msg

    _rewrite(target, lambda b: b[:2])
    assert "too short" in _error(tmp_path / "h")


def test_idx_trailing_data_refused(tmp_path):
    write_mnist_like(tmp_path)
    _rewrite(tmp_path / IDX_FILES["train_labels"], lambda b: b + b"\x00")
    msg = _error(tmp_path)
    assert "train-labels-idx1-ubyte" in msg and "trailing" in msg


def test_idx_count_mismatch_refused(tmp_path):
    arrays = write_mnist_like(tmp_path)
    write_idx(tmp_path / IDX_FILES["train_labels"], arrays["train_labels"][:-1])
    msg = _error(tmp_path)
    assert "train-labels-idx1-ubyte" in msg and "29 labels" in msg and "30 images" in msg


def test_idx_image_shape_mismatch_refused(tmp_path):
    write_mnist_like(tmp_path)
    write_idx(tmp_path / IDX_FILES["test_images"], np.zeros((12, 4, 4), np.uint8))
    assert "4x4" in _error(tmp_path)


def test_idx_zero_dimension_refused(tmp_path):
    write_mnist_like(tmp_path)
    write_idx(tmp_path / IDX_FILES["test_images"], np.zeros((0, 5, 4), np.uint8))
    msg = _error(tmp_path)
    assert "t10k-images-idx3-ubyte" in msg and "zero" in msg


def test_idx_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"idx:{tmp_path / 'nope'}")
    write_mnist_like(tmp_path)
    (tmp_path / IDX_FILES["test_labels"]).unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{tmp_path}")


# --------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize("split,value", [("train", np.nan), ("test", np.inf)])
def test_non_finite_refused(monkeypatch, split, value):
    original = sources.raw_digits  # the registry's loader is looked up at each load

    def poisoned():
        raw = original()
        x = raw.x_train if split == "train" else raw.x_test
        x[3, 5] = value
        return raw

    monkeypatch.setattr(sources, "raw_digits", poisoned)
    with pytest.raises(ValueError, match=rf"'digits'.*{split} split.*non-finite"):
        load_dataset("digits")
    monkeypatch.undo()
    _check_common(load_dataset("digits"))  # the cached arrays were not corrupted


def test_unit_normalisation_maps_training_range_to_unit_interval() -> None:
    ds = load_dataset("digits")  # auto: image data -> one global map onto [0, 1]
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    raw = load_dataset("digits", normalize="standard")
    back = ds.x_train * ds.feature_std + ds.feature_mean
    raw_back = raw.x_train * raw.feature_std + raw.feature_mean
    assert torch.allclose(back, raw_back, atol=1e-4)
    with pytest.raises(ValueError, match="normalize must be one of"):
        load_dataset("digits", normalize="zscore")
