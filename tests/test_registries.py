"""Every registry runs each of its entries end to end, and an entry registered at run time
appears in every place that lists entries (CLI choices, ``--help``, catalogue, figures).

Registries: spike codes (:mod:`tbnn.core.codes`), firing measures
(:mod:`tbnn.analysis.measures`), figure formats (:mod:`tbnn.viz.formats`); the dataset
registry's tests are in ``test_dataset_registry.py``. The tests read the registries, so a new
entry is picked up without editing this file. Also here: the one
validation module (:mod:`tbnn.core.validate`), each former twin as one function.
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib

import numpy as np
import pytest
import torch

import tbnn
from tbnn.analysis import measures as M
from tbnn.analysis.catalogue import DEFINITIONS, analyze_spikes, layer_measures
from tbnn.analysis.figures import comparison_figure, figure_title
from tbnn.cli import build_parser, main
from tbnn.core import codes
from tbnn.core.coding import SCHEMES, decode, encode
from tbnn.core.validate import check_int, check_labels, check_number, json_ready
from tbnn.viz import formats as F
from tbnn.viz.style import new_figure, save_figure

CODE_FILES = sorted(p.stem for p in (pathlib.Path(codes.__file__).parent).glob("*.py")
                    if p.stem not in ("__init__", "base"))


def _help(*argv: str) -> str:
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return buf.getvalue()


# --------------------------------------------------------------------------- spike codes


def test_every_code_file_is_registered():
    """A code file in tbnn/core/codes that is not registered is an error, and vice versa."""
    built_in = [n for n in SCHEMES if n in codes.BUILTIN]
    assert sorted(built_in) == CODE_FILES
    assert {"binary", "sigma_delta", "rate", "thermometer", "latency"} <= set(SCHEMES)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_code_encodes_fires_decodes_and_simulates(scheme):
    T = 6
    x = torch.rand(16, 8, generator=torch.Generator().manual_seed(1))
    code = encode(x, T, scheme, block=8)
    s = code.spikes
    assert s.shape == (T, 16, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    # the code value is the weighted spike count (direct recount)
    w = codes.get_code(scheme).step_weights(T)
    assert torch.allclose((w[:, None, None] * s).sum(0), code.q)
    # the read-out is closer to x than a constant
    err = (decode(code) - x).pow(2).mean()
    assert err < x.var()
    # a network with this code simulates as binary events equal to its forward pass
    torch.manual_seed(0)
    net = torch.nn.Sequential(tbnn.TemporalBinary(T, scheme=scheme, grid="minmax"), tbnn.TBLinear(8, 3))
    res = tbnn.simulate(net, x)
    assert res.summary["forward_agreement"] == 1.0
    assert res.spikes["0"].shape == (16, T, 8)


class _Dummy(codes.get_code("thermometer").__class__):
    name = "dummy_code"


@contextlib.contextmanager
def _registered_code():
    codes.register_code(_Dummy())
    try:
        yield "dummy_code"
    finally:
        codes.unregister_code("dummy_code")


def test_code_registered_at_run_time_is_listed_everywhere(tmp_path, capsys):
    assert "dummy_code" not in SCHEMES
    with _registered_code() as name:
        assert name in SCHEMES and name in codes.CODES
        assert name in _help("train")  # tbnn train --help lists the codes
        # the API's and the CLI's refusals name it among the choices
        with pytest.raises(ValueError, match=f"scheme must be one of .*{name}"):
            encode(torch.rand(2, 3), 4, "morse")
        assert main(["train", "--dataset", "digits", "--model", "tbn", "--encoding", "morse", "--epochs", "1",
                     "--out", str(tmp_path / "r"), "--quiet"]) == 2
        assert name in capsys.readouterr().err
        # and it works: encode, decode, a neuron
        code = encode(torch.rand(4, 3), 4, name, block=3)
        assert code.scheme == name and decode(code).shape == (4, 3)
        assert tbnn.TemporalBinary(4, scheme=name)(torch.rand(2, 3)).scheme == name
    assert "dummy_code" not in SCHEMES


def test_code_registry_refuses_bad_entries():
    with pytest.raises(ValueError, match="code must be an instance"):
        codes.register_code("binary")
    with pytest.raises(ValueError, match="already registered"):
        codes.register_code(codes.get_code("binary").__class__())
    with pytest.raises(ValueError, match="scheme must be one of"):
        codes.unregister_code("nope")


# --------------------------------------------------------------------------- measures


def _layer(seed=0, shape=(24, 8, 12)):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < 0.2, np.arange(shape[0]) % 3


def _recording():
    from tbnn.io.recording import Recording

    rng = np.random.default_rng(3)
    trials = [[np.sort(rng.random(rng.integers(8, 30))) for _ in range(4)] for _ in range(6)]
    return Recording(tuple("abcd"), trials, np.zeros(6), np.ones(6))


@pytest.mark.parametrize("key", list(M.MEASURES))
def test_measure_computes_on_network_null_and_recording(key):
    m = M.MEASURES[key]
    assert m.statistic in ("median", "mean") and m.label and m.definition
    s, labels = _layer()
    ctx = M.LayerContext(s, 2.0, labels, seed=0)
    values = np.asarray(m.network(ctx), dtype=float).ravel()
    assert values.size and np.isfinite(values).any()
    shuffled = np.asarray(m.network(ctx.shuffled), dtype=float).ravel()
    assert shuffled.size and np.isfinite(shuffled).any()
    if m.null is not None:
        null = np.asarray(m.null(ctx, values), dtype=float).ravel()
        assert null.size and np.isfinite(null).any()
    # the catalogue reports it with the record's statistic, band and verdict
    e = analyze_spikes(s, 2.0, labels)["measures"][key]
    assert e["statistic"] == m.statistic and e["label"] == m.label
    assert (e["biology"] is None) == (m.band is None)
    if m.band is not None:
        assert e["verdict"] in ("inside", "below", "above", "undefined")
    if m.recording is not None:
        from tbnn.analysis.recording_measures import recording_measures

        r = recording_measures(_recording(), dt_ms=2.0)[key]
        assert r["statistic"] == m.statistic and r["values"].size
        assert math.isfinite(r["value"]) or r["summary"]["n"] == 0


def _max_count(ctx):
    return ctx.arr.sum(1).max(0).astype(float)  # largest count of each neuron over samples


_DUMMY = M.Measure(
    "dummy_max_count", "largest count per sample", "spikes", "max over samples of n_i", "median",
    network=_max_count, null=lambda ctx, v: np.full_like(v, 1.0), null_note="a constant, for the test",
    recording=lambda r: (r.rec.counts().max(0), 1.0, "a constant"),
    band=M.Reference("dummy_max_count", 0.0, 3.0, "spikes", "median", "Nobody 2026, J Tests 1:1", "test"),
    log_axis=True, panel=True)


@contextlib.contextmanager
def _registered_measure():
    M.register_measure(_DUMMY)
    try:
        yield _DUMMY.key
    finally:
        M.unregister_measure(_DUMMY.key)


def test_measure_registered_at_run_time_is_listed_everywhere(tmp_path):
    from tbnn.analysis.recording_figure import plot_recording_comparison
    from tbnn.analysis.recording_measures import STATISTICS, compare_with_recording
    from tbnn.analysis.reference import REFERENCES

    s, labels = _layer()
    with _registered_measure() as key:
        assert key in DEFINITIONS and key in REFERENCES and key in STATISTICS
        res, fd = layer_measures(s, 1.0, labels, 0, 1, 64, 5.0)
        e = res["measures"][key]
        # direct recount of the value: median over neurons of the largest count
        assert e["value"] == float(np.median(s.sum(1).max(0)))
        assert e["verdict"] == ("inside" if e["value"] <= 3 else "above")
        assert e["biology"]["citation"] == "Nobody 2026, J Tests 1:1"
        fig = comparison_figure(res, fd, figure_title("h"))
        titles = [a.get_title(loc="left") for a in fig.axes]
        assert any("largest count per sample" in t for t in titles)
        cmp_ = compare_with_recording(res, _recording(), 1.0)
        assert key in cmp_["measures"] and cmp_["measures"][key]["band"]["high"] == 3.0
        fig2 = plot_recording_comparison(cmp_)
        assert any("largest count per sample" in a.get_title() for a in fig2.axes)
    assert key not in DEFINITIONS and key not in analyze_spikes(s, 1.0, labels)["measures"]


def test_measure_registry_refuses_bad_entries():
    with pytest.raises(ValueError, match="already registered"):
        M.register_measure(M.MEASURES["cv"])
    bad = M.Measure("x_bad", "x", "", "x", "mode", network=lambda c: [0.0])
    with pytest.raises(ValueError, match="measure.statistic must be one of median, mean"):
        M.register_measure(bad)
    wrong_band = M.Measure("x_band", "x", "", "x", "mean", network=lambda c: [0.0], band=M.MEASURES["cv"].band)
    with pytest.raises(ValueError, match="measure.band"):
        M.register_measure(wrong_band)
    with pytest.raises(ValueError, match="key must be a registered measure"):
        M.get_measure("nope")


def test_one_statistic_and_one_log_axis_per_measure():
    """The catalogue, the recording comparison and both figures read the same record."""
    from tbnn.analysis.figures import LOG_MEASURES, PANEL_MEASURES
    from tbnn.analysis.recording_figure import PANEL_ORDER
    from tbnn.analysis.recording_measures import STATISTICS

    for key, stat in STATISTICS.items():
        assert stat == M.MEASURES[key].statistic
        band = M.MEASURES[key].band
        assert band is None or band.statistic == stat
    assert list(PANEL_MEASURES) == list(PANEL_ORDER) == list(M.measure_keys(panel=True))
    assert set(LOG_MEASURES) == {k for k, m in M.MEASURES.items() if m.log_axis}


# --------------------------------------------------------------------------- figure formats

MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml", "eps": b"%!PS"}


@pytest.mark.parametrize("name", list(F.FORMATS))
def test_every_format_writes_a_file_of_its_kind(tmp_path, name):
    fig, ax = new_figure(2, 1)
    ax.plot([0, 1], [0, 1])
    extra = tuple(f for f in F.vector_formats() if f != name)
    p = save_figure(fig, tmp_path / f"f.{name}", formats=extra)
    for f in (name, *extra):
        data = (tmp_path / f"f.{f}").read_bytes()
        assert data.startswith(MAGIC.get(f, b"")) and len(data) > 100


def test_format_registered_at_run_time_is_listed_everywhere(tmp_path):
    F.register_format(F.FigureFormat("eps", vector=True, description="encapsulated PostScript"))
    try:
        assert "eps" in F.FORMATS and "eps" in F.vector_formats()
        for cmd in ("analyze", "raster"):
            assert "eps" in _help(cmd, "x", "--out", "y")
            args = build_parser().parse_args([cmd, "sim", "--out", "o", "--format", "eps"])
            assert args.formats == ["eps"]
        assert F.check_formats(["eps"]) == ("eps",)
        fig, _ = new_figure(2, 1)
        save_figure(fig, tmp_path / "f.png", formats=("eps",))
        assert (tmp_path / "f.eps").read_bytes().startswith(b"%!PS")
        assert ".eps" in F.suffix_list()
    finally:
        F.unregister_format("eps")
    assert "eps" not in F.FORMATS and "eps" not in _help("raster", "x", "--out", "y")
    with pytest.raises(ValueError, match="formats must be among svg, pdf; got 'eps'"):
        F.check_formats(["eps"])


# --------------------------------------------------------------------------- one validation module


def test_json_ready_is_the_one_cleaner():
    """Former twins: fileio.json_safe, runfiles.to_json, recording_measures._clean,
    simulations/common.clean."""
    from tbnn.analysis.runfiles import to_json

    assert to_json is json_ready
    obj = {1: np.float32(0.5), "nan": float("nan"), "inf": np.float64("-inf"), "arr": np.arange(3),
           "t": torch.tensor(2.5), "tt": torch.tensor([1, 2]), "b": np.bool_(True), "p": pathlib.Path("a/b"),
           "nest": ({"x": [np.int64(7), None]},)}
    out = json_ready(obj)
    assert out == {"1": 0.5, "nan": None, "inf": None, "arr": [0, 1, 2], "t": 2.5, "tt": [1, 2], "b": True,
                   "p": "a/b", "nest": [{"x": [7, None]}]}
    json.dumps(out, allow_nan=False)  # strict JSON
    assert type(out["arr"][0]) is int and type(out["b"]) is bool


@pytest.mark.parametrize("value,ok", [(2, 2.0), (np.float32(0.5), 0.5), (torch.tensor(3.0), 3.0), (0, None),
                                      (-1, None), (float("nan"), None), (float("inf"), None), (True, None),
                                      ("2", None), (None, None)])
def test_check_number(value, ok):
    if ok is None:
        with pytest.raises(ValueError, match="dt_ms must be a finite number > 0; got"):
            check_number(value, "dt_ms")
    else:
        assert check_number(value, "dt_ms") == ok
    assert check_number(0, "R_ms", inclusive=True) == 0.0


def test_check_int_and_labels_take_numpy_and_torch():
    assert check_int(np.int64(3), "bins") == 3 and type(check_int(np.int64(3), "bins")) is int
    for bad in (1.0, True, 0, "1"):
        with pytest.raises(ValueError, match="bins must be an integer >= 1"):
            check_int(bad, "bins")
    with pytest.raises(ValueError, match="bins must be <= 4"):
        check_int(5, "bins", maximum=4)
    assert check_labels(np.array([0, 2]), 2).dtype == np.int64
    t = check_labels(torch.tensor([1, 0], dtype=torch.int32), 2)
    assert torch.is_tensor(t) and t.dtype == torch.int64
    assert check_labels(torch.tensor([1, 0]), 2, numpy=True).tolist() == [1, 0]
    assert check_labels([-1, 0], 2, minimum=None).tolist() == [-1, 0]
    for bad, msg in (([0, 1], "one class per sample \\(3\\)"), (np.array([0.0, 1.0, 2.0]), "integer"),
                     (np.array([True, False, True]), "integer"), ([0, -1, 2], "class indices >= 0")):
        with pytest.raises(ValueError, match=f"labels must be .*{msg}"):
            check_labels(bad, 3)
