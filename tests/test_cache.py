"""The on-disk dataset cache: written once, atomically, validated on every read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tbnn.io import cache
from tbnn.io.datasets import sources
from tbnn.io.cache import cache_dir, cache_key, cache_path, cached_arrays, read_cached, write_cached

ROOT = Path(__file__).resolve().parent.parent


class Maker:
    """Counts its calls; returns fresh arrays each time."""

    def __init__(self, seed: int = 0):
        self.calls = 0
        self.seed = seed

    def __call__(self):
        self.calls += 1
        rng = np.random.default_rng(self.seed)
        return {"x": rng.normal(size=(5, 3)), "y": np.arange(5, dtype=np.int64)}


EXPECT = {"x": ((5, 3), "float64"), "y": ((5,), "int64")}


def test_made_once_then_read(tmp_path):
    make = Maker()
    a = cached_arrays("toy", {"n": 5}, make, EXPECT, folder=tmp_path)
    b = cached_arrays("toy", {"n": 5}, make, EXPECT, folder=tmp_path)
    assert make.calls == 1
    for k in a:
        assert np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [cache_path("toy", {"n": 5}, tmp_path).name]  # no temp files left
    with np.load(files[0], allow_pickle=False) as z:  # plain npz, no pickle needed
        assert set(z.files) == {"x", "y", "__meta__"}


def test_key_follows_parameters_and_version(tmp_path, monkeypatch):
    assert cache_key("toy", {"n": 5}) != cache_key("toy", {"n": 6})
    assert cache_key("toy", {"n": 5}) != cache_key("other", {"n": 5})
    k = cache_key("toy", {"n": 5})
    monkeypatch.setattr(cache, "__version__", "999")
    assert cache_key("toy", {"n": 5}) != k
    make = Maker()
    cached_arrays("toy", {"n": 5}, make, folder=tmp_path)
    cached_arrays("toy", {"n": 6}, make, folder=tmp_path)
    assert make.calls == 2 and len(list(tmp_path.iterdir())) == 2


def _corrupt_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not a zip file at all")


def _corrupt_values(path: Path, name: str = "x") -> None:
    """A well-formed npz whose array no longer matches its recorded checksum."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[name] = arrays[name] + 1
    np.savez(path, **arrays)


def _corrupt_meta(path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__meta__"] = np.array("{ not json")
    np.savez(path, **arrays)


def _corrupt_member(path: Path) -> None:
    """Flip bytes inside the zip member (the CRC or the checksum must catch it)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("x.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start: start + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def _pickled_object(path: Path) -> None:
    """An object array: reading it would need pickle, which the cache refuses."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x"] = np.array([{"a": 1}, None], dtype=object)
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", [_corrupt_truncate, _corrupt_garbage, _corrupt_values, _corrupt_meta,
                                    _corrupt_member, _pickled_object])
def test_damaged_file_is_regenerated(tmp_path, damage):
    make = Maker()
    good = cached_arrays("toy", {"n": 5}, make, EXPECT, folder=tmp_path)
    path = cache_path("toy", {"n": 5}, tmp_path)
    damage(path)
    assert read_cached(path, cache_key("toy", {"n": 5}), EXPECT) is None
    again = cached_arrays("toy", {"n": 5}, make, EXPECT, folder=tmp_path)
    assert make.calls == 2
    assert np.array_equal(again["x"], good["x"])
    # the file was rewritten and is trusted again
    assert read_cached(path, cache_key("toy", {"n": 5}), EXPECT) is not None


def test_wrong_key_or_shape_is_not_trusted(tmp_path):
    path = tmp_path / "f.npz"
    write_cached(path, "k1", Maker()())
    assert read_cached(path, "k1", EXPECT) is not None
    assert read_cached(path, "k2", EXPECT) is None
    assert read_cached(path, "k1", {"x": ((5, 4), "float64"), "y": ((5,), "int64")}) is None
    assert read_cached(path, "k1", {"x": ((5, 3), "float32"), "y": ((5,), "int64")}) is None
    assert read_cached(path, "k1", {"x": ((5, 3), "float64")}) is None
    meta = json.loads(str(np.load(path, allow_pickle=False)["__meta__"][()]))
    assert meta["arrays"]["x"]["shape"] == [5, 3] and len(meta["arrays"]["x"]["sha256"]) == 64


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot be cached"):
        write_cached(tmp_path / "f.npz", "k", {"x": np.array([None], dtype=object)})
    assert not list(tmp_path.iterdir())


def test_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TBNN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    cached_arrays("toy", {"n": 5}, Maker())
    assert len(list((tmp_path / "c").iterdir())) == 1
    monkeypatch.setenv("TBNN_CACHE", "off")
    assert cache_dir() is None
    make = Maker()
    cached_arrays("toy", {"n": 5}, make)
    cached_arrays("toy", {"n": 5}, make)
    assert make.calls == 2  # disabled: nothing read, nothing written
    monkeypatch.delenv("TBNN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tbnn"


def test_unwritable_folder_runs_uncached(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    make = Maker()
    out = cached_arrays("toy", {"n": 5}, make, folder=blocker / "sub")
    assert out["x"].shape == (5, 3) and make.calls == 1


def test_concurrent_writers_leave_one_valid_file(tmp_path):
    errors = []

    def work():
        try:
            for _ in range(5):
                write_cached(tmp_path / "f.npz", "k", Maker()())
                assert read_cached(tmp_path / "f.npz", "k", EXPECT) is not None
        except Exception as err:  # noqa: BLE001 - collected and reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]


# --------------------------------------------------------------------------- datasets


@pytest.mark.parametrize("name, make", [("digits", sources._make_digits), ("mnist1d", sources._make_mnist1d)])
def test_dataset_cache_equals_a_fresh_generation(tmp_path, monkeypatch, name, make):
    monkeypatch.setenv("TBNN_CACHE", str(tmp_path))
    loader = {"digits": sources._digits_arrays, "mnist1d": sources._mnist1d_arrays}[name]
    loader.cache_clear()
    try:
        first = loader()
        files = list(tmp_path.glob(f"{name}-*.npz"))
        assert len(files) == 1
        loader.cache_clear()
        _corrupt_values(files[0], "x_train")  # a damaged file is regenerated, not trusted
        second = loader()
        fresh = make()
        for a, b, k in zip(first, second, ("x_train", "y_train", "x_test", "y_test")):
            assert np.array_equal(a, fresh[k]) and np.array_equal(b, fresh[k]) and a.dtype == fresh[k].dtype
            assert not a.flags.writeable
    finally:
        loader.cache_clear()


def test_cached_digits_need_no_scikit_learn(tmp_path):
    env = {**os.environ, "TBNN_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    code = ("import sys; from tbnn.io.datasets import load_dataset; d = load_dataset('digits'); "
            "print(d.n_train, 'sklearn' in sys.modules, 'scipy' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["1347", "True", "True"]  # generated: scikit-learn was needed
    assert second.stdout.split() == ["1347", "False", "False"]  # cached: neither imported
