"""The spike archive: round trip, atomic writes, validation on save and on load."""

import os

import numpy as np
import pytest

from tbnn.io.spikes import SpikeRecord, load_spikes, save_spikes, to_neo


def _layers(rng, S=6, T=4):
    return {
        "hidden1": rng.random((S, T, 5)) < 0.3,
        "hidden0": rng.random((S, T, 3)) < 0.5,  # not alphabetical: order must be kept
    }


def test_round_trip_keeps_order_dtypes_and_values(tmp_path):
    rng = np.random.default_rng(0)
    layers = _layers(rng)
    labels = np.arange(6) % 3
    preds = np.array([0, 1, 2, 0, 0, 2])
    path = save_spikes(tmp_path / "spikes.npz", layers, labels, preds, 4, 0.5,
                       extra={"sample_index": np.arange(6)})
    rec = load_spikes(path)
    assert isinstance(rec, SpikeRecord)
    assert list(rec.layers) == ["hidden1", "hidden0"]
    for k, v in layers.items():
        assert rec.layers[k].dtype == np.bool_
        np.testing.assert_array_equal(rec.layers[k], v)
    assert rec.labels.dtype == np.int64 and rec.predictions.dtype == np.int64
    np.testing.assert_array_equal(rec.labels, labels)
    np.testing.assert_array_equal(rec.predictions, preds)
    assert rec.timesteps == 4 and isinstance(rec.timesteps, int)
    assert rec.dt_ms == 0.5 and isinstance(rec.dt_ms, float)
    assert rec.samples == 6
    np.testing.assert_array_equal(rec.extra["sample_index"], np.arange(6))
    # the folder works too, and the raw archive loads without pickle
    assert list(load_spikes(tmp_path).layers) == ["hidden1", "hidden0"]
    with np.load(path, allow_pickle=False) as npz:
        assert npz["layer_names"].dtype.kind == "U"
        assert set(npz.files) >= {"hidden1", "hidden0", "labels", "predictions", "timesteps",
                                  "dt_ms", "layer_names"}
        assert npz["timesteps"].shape == () and npz["dt_ms"].shape == ()


def test_accepts_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    s = torch.rand(3, 2, 4) < 0.5
    save_spikes(tmp_path / "s.npz", {"h": s}, torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]),
                2, 1.0)
    np.testing.assert_array_equal(load_spikes(tmp_path / "s.npz").layers["h"], s.numpy())


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "spikes.npz"
    save_spikes(p, _layers(rng), np.zeros(6, int), np.zeros(6, int), 4, 1.0)
    first = p.read_bytes()
    save_spikes(p, _layers(rng), np.ones(6, int), np.zeros(6, int), 4, 1.0)
    assert p.read_bytes() != first
    assert sorted(os.listdir(tmp_path)) == ["spikes.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not mkstemp's 0600
    # a failing save leaves the earlier archive intact and no temp file behind
    before = p.read_bytes()
    with pytest.raises(ValueError):
        save_spikes(p, {"h": np.zeros((6, 4, 2))}, np.zeros(6, int), np.zeros(6, int), 4, 1.0)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["spikes.npz"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": {"h": np.zeros((2, 3, 4), dtype=np.float32)}}, "must be boolean"),
        ({"layers": {"h": np.zeros((2, 3, 4), dtype=np.int64)}}, "must be boolean"),
        ({"layers": {"h": np.zeros((2, 4, 4), dtype=bool)}}, "shape"),
        ({"layers": {"h": np.zeros((3, 3, 4), dtype=bool)}}, "shape"),
        ({"layers": {"h": np.zeros((2, 3), dtype=bool)}}, "shape"),
        ({"layers": {}}, "layers"),
        ({"layers": {"labels": np.zeros((2, 3, 4), dtype=bool)}}, "layer names"),
        ({"timesteps": 0}, "timesteps"),
        ({"dt_ms": 0.0}, "dt_ms"),
        ({"dt_ms": float("nan")}, "dt_ms"),
        ({"dt_ms": -1}, "dt_ms"),
        ({"labels": np.zeros(3, int)}, "predictions"),
        ({"labels": np.zeros(2, float)}, "labels"),
        ({"extra": {"h": np.zeros(2)}}, "extra"),
        ({"extra": {"x": np.array([object()], dtype=object)}}, "object"),
    ],
)
def test_save_rejects_bad_input(tmp_path, kwargs, match):
    args = {"layers": {"h": np.zeros((2, 3, 4), dtype=bool)}, "labels": np.zeros(2, int),
            "predictions": np.zeros(2, int), "timesteps": 3, "dt_ms": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        save_spikes(tmp_path / "s.npz", **args)
    assert not (tmp_path / "s.npz").exists()
    assert os.listdir(tmp_path) == []


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_spikes(tmp_path / "nope.npz")
    txt = tmp_path / "a.npz"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="is not a spikes archive"):
        load_spikes(txt)
    npy = tmp_path / "b.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="is a single .npy array, not an .npz archive"):
        load_spikes(npy)
    other = tmp_path / "c.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match="is not a spikes archive.*no boolean"):
        load_spikes(other)
    pickled = tmp_path / "d.npz"
    np.savez(pickled, layer_names=np.array(["h"], dtype=object), h=np.zeros((1, 1, 1), bool),
             labels=np.zeros(1, int), predictions=np.zeros(1, int), timesteps=1, dt_ms=1.0)
    with pytest.raises(ValueError, match="pickled object array"):
        load_spikes(pickled)


def _raw(path, **over):
    keys = {"layer_names": np.array(["h1", "h2"]), "h1": np.zeros((2, 3, 4), bool),
            "h2": np.zeros((2, 3, 5), bool), "labels": np.zeros(2, np.int64),
            "predictions": np.zeros(2, np.int64), "timesteps": np.int64(3), "dt_ms": 1.0}
    keys.update(over)
    np.savez(path, **keys)
    return path


def test_load_rejects_non_boolean_layer_naming_it(tmp_path):
    p = _raw(tmp_path / "s.npz", h2=np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(ValueError, match=r"'h2'.*spikes must be boolean"):
        load_spikes(p)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"h1": np.zeros((3, 3, 4), bool)}, "'h1'.*shape"),
        ({"h1": np.zeros((2, 4, 4), bool)}, "'h1'.*shape"),
        ({"h1": np.zeros((2, 3), bool)}, "'h1'.*shape"),
        ({"predictions": np.zeros(3, np.int64)}, "predictions"),
        ({"labels": np.zeros(2, float)}, "labels"),
        ({"timesteps": np.int64(0)}, "timesteps"),
        ({"dt_ms": 0.0}, "dt_ms"),
        ({"layer_names": np.array(["h1", "h3"])}, "h3"),
    ],
)
def test_load_rejects_inconsistent_archives(tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        load_spikes(_raw(tmp_path / "s.npz", **over))


def test_to_neo_times_and_duration():
    pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    s = np.zeros((2, 4, 2), bool)
    s[0, 1, 0] = s[1, 3, 0] = s[1, 0, 1] = True
    trains = to_neo(s, 0.5)
    assert len(trains) == 2
    np.testing.assert_allclose(trains[0].rescale(pq.ms).magnitude, [0.5, 3.5])
    np.testing.assert_allclose(trains[1].magnitude, [2.0])
    assert float(trains[0].t_stop.rescale(pq.ms)) == 4.0
    assert float(trains[0].t_start) == 0.0
    with pytest.raises(ValueError, match="dt_ms"):
        to_neo(s, 0)
    with pytest.raises(ValueError, match="boolean"):
        to_neo(s.astype(int), 1.0)


def test_save_time_first_round_trips(tmp_path):
    """snnTorch / SpikingJelly recordings [T, B, ...] (torch or numpy) -> [B, T, neurons]."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.random((7, 3, 2, 4)) < 0.3  # [T, B, C, L]
    b = torch.from_numpy((rng.random((7, 3, 5)) < 0.5).astype(np.float32))  # 0/1 floats
    from tbnn.io.spikes import save_time_first

    p = save_time_first(tmp_path / "r.npz", {"conv": a, "fc": b}, labels=[0, 1, 2], dt_ms=0.5)
    rec = load_spikes(p)
    assert rec.layer_names == ["conv", "fc"] and rec.timesteps == 7 and rec.samples == 3
    assert rec.dt_ms == 0.5 and rec.dt_declared and rec.predictions is None
    np.testing.assert_array_equal(rec.layers["conv"], a.reshape(7, 3, 8).transpose(1, 0, 2))
    np.testing.assert_array_equal(rec.layers["fc"], b.numpy().transpose(1, 0, 2) == 1)
    for t in range(7):  # sample k, step t, neuron i is recording[t, k, i]
        assert rec.layers["conv"][2, t, 5] == a[t, 2, 1, 1]
    with pytest.raises(ValueError, match="spikes \\(booleans or 0/1\\)"):
        save_time_first(tmp_path / "x.npz", {"v": np.full((2, 2, 2), 0.5)})
    with pytest.raises(ValueError, match="share T and B"):
        save_time_first(tmp_path / "x.npz", {"a": a, "b": np.zeros((6, 3, 1), bool)})
    with pytest.raises(ValueError, match="time-first"):
        save_time_first(tmp_path / "x.npz", {"a": np.zeros(3, bool)})
    assert not (tmp_path / "x.npz").exists()


def test_plain_archive_loads_with_defaults(tmp_path):
    f = tmp_path / "p.npz"
    np.savez(f, z=np.zeros((2, 3, 1), bool), a=np.ones((2, 3, 4), bool), w=np.zeros(5))
    rec = load_spikes(f)
    assert rec.layer_names == ["z", "a"]  # file order, non-spike arrays are extras
    assert rec.labels is None and rec.timesteps == 3 and rec.dt_ms == 1.0
    assert not rec.dt_declared and "w" in rec.extra


def test_module_doctests():
    """The >>> examples of the archive, plot, style and analysis modules run."""
    import doctest
    import importlib

    names = ["tbnn.io.spikes", "tbnn.viz.plot", "tbnn.viz.style", "tbnn.analysis",
             "tbnn.analysis.catalogue", "tbnn.analysis.energy", "tbnn.analysis.figures",
             "tbnn.analysis.markdown", "tbnn.analysis.raster", "tbnn.analysis.report",
             "tbnn.analysis.runfiles", "tbnn.analysis.rates", "tbnn.analysis.irregularity",
             "tbnn.analysis.variability", "tbnn.analysis.correlation",
             "tbnn.analysis.sparseness", "tbnn.analysis.reference"]
    for name in names:
        mod = importlib.import_module(name)
        r = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert r.failed == 0, name
        assert r.attempted > 0, name
