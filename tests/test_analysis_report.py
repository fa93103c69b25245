"""analyze_run / raster_run on synthetic archives: files, JSON layout, bad input."""

import json
import os

import numpy as np
import pytest

from tbnn.analysis import analyze_run, analyze_spikes, raster_run
from tbnn.io.spikes import save_spikes

S, T = 24, 6


def _simdir(tmp_path, with_json=True, name="sim"):
    rng = np.random.default_rng(0)
    labels = np.arange(S) % 3
    h1 = rng.random((S, T, 12)) < np.linspace(0.0, 0.6, 12)  # neuron 0 silent
    h2 = rng.random((S, T, 5)) < 0.2
    h2[labels == 1, 1:3, :] = True  # class-locked synchronous burst
    d = tmp_path / name
    d.mkdir()
    save_spikes(d / "spikes.npz", {"hidden 1": h1, "out": h2}, labels, labels, T, 1.0)
    if with_json:
        sim = {"accuracy": 1.0, "samples": S, "timesteps": T, "spikes_per_sample": 1.0,
               "synaptic_ops_per_sample": 1.0,
               "layers": [{"name": "hidden 1", "neurons": 12, "spikes": 1, "rate_per_step": 0.1,
                           "fanout": 5, "synaptic_ops": 5},
                          {"name": "out", "neurons": 5, "spikes": 1, "rate_per_step": 0.1,
                           "fanout": 0, "synaptic_ops": 0}]}
        (d / "simulation.json").write_text(json.dumps(sim))
    return d


MEASURES = {"rate_hz", "rate_per_step", "fraction_silent", "fraction_active", "isi_ms", "cv",
            "cv2", "lv", "lvr", "fano_stream", "fano_trial", "correlation", "noise_correlation",
            "synchrony_chi2", "lifetime_sparseness", "population_sparseness",
            "lifetime_activity_ratio", "population_activity_ratio"}


def test_analyze_run_writes_report_json_and_figures(tmp_path):
    d = _simdir(tmp_path)
    out = tmp_path / "ana"
    res = analyze_run(d, out)
    files = sorted(os.listdir(out))
    assert files == sorted([".tbnn-manifest.json", "analysis.json", "report.md", "raster.png", "hidden_1_stats.png",
                            "hidden_1_summary.png", "out_stats.png", "out_summary.png"])
    for f in files:
        if f.endswith(".png"):
            data = (out / f).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 300_000
    js = json.loads((out / "analysis.json").read_text())
    assert js == json.loads(json.dumps(res))
    assert js["dt_ms"] == 1.0 and js["dt_source"] == "archive"
    assert js["samples"] == S and js["timesteps"] == T
    assert js["simulation"]["accuracy"] == 1.0
    assert js["energy"]["layers"]["hidden 1"]["fanout"] == 5
    # exact per-layer counts from simulation.json win over spikes x mean fanout
    assert js["energy"]["layers"]["hidden 1"]["synaptic_ops_per_sample"] == pytest.approx(5 / S)
    assert js["energy"]["layers"]["out"]["synaptic_ops_per_sample"] == 0
    assert "exact" in js["energy"]["layers"]["out"]["synaptic_ops_source"]
    assert js["energy"]["synaptic_ops_per_sample"] == pytest.approx(5 / S)
    assert list(js["layers"]) == ["hidden 1", "out"]
    lay = js["layers"]["hidden 1"]
    assert lay["neurons"] == 12
    assert set(lay["measures"]) == MEASURES
    for key, m in lay["measures"].items():
        assert set(m["summary"]) == {"mean", "median", "std", "min", "max", "n", "n_nan"}, key
        assert m["statistic"] in ("mean", "median")
        assert m["value"] == m["summary"][m["statistic"]]
        assert set(m["null"]) == {"analytic", "shuffled", "note"}
        assert m["null"]["shuffled"] is not None
    cv = lay["measures"]["cv"]
    assert cv["summary"]["n_nan"] >= 1  # the silent neuron is counted, not dropped
    assert cv["summary"]["n"] + cv["summary"]["n_nan"] == 12
    assert cv["biology"]["citation"].startswith("Softky & Koch 1993")
    assert cv["verdict"] in ("inside", "below", "above")
    assert cv["null"]["analytic"]["summary"]["n"] == cv["summary"]["n"]
    assert lay["measures"]["fano_trial"]["biology"]["low"] == 1.0
    assert lay["measures"]["correlation"]["null"]["analytic"]["value"] == 0.0
    assert lay["measures"]["correlation"]["verdict"] is None  # no biological range
    assert abs(sum(lay["complexity"]["network"]) - 1) < 1e-9
    assert lay["rate_distribution"]["n_silent"] == 1
    assert js["figures"]["layers"]["out"]["summary"] == "out_summary.png"
    assert any("Churchland" in r for r in js["references"])
    md = (out / "report.md").read_text()
    assert "| measure | statistic | network | null (analytic) | null (shuffled) |" in md
    assert "![raster](raster.png)" in md and "(hidden_1_stats.png)" in md
    assert "Nat Neurosci 13:369" in md and "Energy proxy" in md


def test_analyze_run_without_simulation_json_and_with_options(tmp_path):
    d = _simdir(tmp_path, with_json=False)
    res = analyze_run(d / "spikes.npz", tmp_path / "a", dt_ms=2.0, layer="out")
    assert list(res["layers"]) == ["out"]
    assert res["dt_ms"] == 2.0 and res["dt_source"] == "argument"
    assert res["simulation"] is None and res["source"]["simulation"] is None
    assert res["energy"]["synaptic_ops_per_sample"] is None
    assert "no simulation.json fanout" in res["energy"]["source"]
    assert sorted(os.listdir(tmp_path / "a")) == [".tbnn-manifest.json", "analysis.json", "out_stats.png",
                                                  "out_summary.png", "raster.png", "report.md"]
    r1 = res["layers"]["out"]["measures"]["rate_hz"]["summary"]["mean"]
    r2 = analyze_run(d, tmp_path / "b", layer="out")["layers"]["out"]["measures"]["rate_hz"]
    assert r1 == pytest.approx(r2["summary"]["mean"] / 2)


def _assert_nothing_written(out):
    assert not out.exists()


def test_bad_input_raises_and_writes_nothing(tmp_path):
    d = _simdir(tmp_path)
    out = tmp_path / "never"
    for kwargs, match in [
        ({"dt_ms": 0}, "dt_ms must be a finite number of milliseconds > 0"),
        ({"dt_ms": -1.0}, "dt_ms"),
        ({"dt_ms": float("nan")}, "dt_ms"),
        ({"layer": "nope"}, r"layer must be one of hidden 1, out, got 'nope'"),
    ]:
        with pytest.raises(ValueError, match=match):
            analyze_run(d, out, **kwargs)
        _assert_nothing_written(out)
    with pytest.raises(ValueError, match="does not exist"):
        analyze_run(tmp_path / "missing", out)
    # a file that is not a spikes archive
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "spikes.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="is not a spikes archive"):
        analyze_run(bad, out)
    # a non-boolean spike array
    nb = tmp_path / "nb"
    nb.mkdir()
    np.savez(nb / "spikes.npz", layer_names=np.array(["h"]), h=np.zeros((2, 3, 4), np.float32),
             labels=np.zeros(2, np.int64), predictions=np.zeros(2, np.int64),
             timesteps=np.int64(3), dt_ms=1.0)
    with pytest.raises(ValueError, match=r"'h'.*spikes must be boolean"):
        analyze_run(nb, out)
    # a corrupt simulation.json
    (d / "simulation.json").write_text("{not json")
    with pytest.raises(ValueError, match="simulation.json"):
        analyze_run(d, out)
    _assert_nothing_written(out)
    for fn in ("raster.png",):
        with pytest.raises(ValueError):
            raster_run(nb, out / fn)
    _assert_nothing_written(out)


def test_energy_from_fanout_when_counts_absent(tmp_path):
    d = _simdir(tmp_path, with_json=False)
    (d / "simulation.json").write_text(json.dumps(
        {"samples": S, "layers": [{"name": "hidden 1", "fanout": 5}, {"name": "out"}]}))
    res = analyze_run(d, tmp_path / "a", layer="out")
    e = res["energy"]
    assert e["layers"]["hidden 1"]["synaptic_ops_per_sample"] == pytest.approx(
        5 * e["layers"]["hidden 1"]["spikes_per_sample"])
    assert e["layers"]["out"]["synaptic_ops_per_sample"] is None
    assert e["synaptic_ops_per_sample"] is None
    assert res["simulation"] == {"samples": S}


def test_error_leaves_earlier_results_intact(tmp_path):
    d = _simdir(tmp_path)
    out = tmp_path / "ana"
    analyze_run(d, out, layer="out")
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    with pytest.raises(ValueError):
        analyze_run(d, out, dt_ms=0)
    with pytest.raises(ValueError):
        analyze_run(d, out, layer="missing")
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out must be a folder"):
        analyze_run(d, tmp_path / "file")


def test_raster_run(tmp_path):
    d = _simdir(tmp_path)
    p = raster_run(d, tmp_path / "r" / "all.png")
    assert p.read_bytes()[:4] == b"\x89PNG"
    raster_run(d, tmp_path / "one.png", layer="out", sample=3)
    raster_run(d, tmp_path / "range.png", layer="hidden 1", samples="2:5")
    raster_run(d, tmp_path / "open.png", samples="20:")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("one.png", "range.png", "open.png"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample": S}, rf"sample must be an integer in \[0, {S - 1}\]"),
        ({"sample": -1}, "sample must be"),
        ({"sample": 1.5}, "sample must be"),
        ({"samples": "5:2"}, r"samples must be 'A:B' with 0 <= A < B <= 24"),
        ({"samples": "3:3"}, "samples must be"),
        ({"samples": f"0:{S + 1}"}, "samples must be"),
        ({"samples": "a:b"}, "samples must be a string 'A:B'"),
        ({"samples": 3}, "samples must be a string"),
        ({"sample": 1, "samples": "0:2"}, "either sample or samples"),
        ({"layer": "zzz"}, "layer must be one of"),
    ],
)
def test_raster_run_rejects_bad_ranges(tmp_path, kwargs, match):
    d = _simdir(tmp_path)
    out = tmp_path / "o" / "r.png"
    with pytest.raises(ValueError, match=match):
        raster_run(d, out, **kwargs)
    assert not out.parent.exists()


def test_raster_run_rejects_non_png(tmp_path):
    d = _simdir(tmp_path)
    with pytest.raises(ValueError, match=r"out_png must be a file name ending in \.png"):
        raster_run(d, tmp_path / "r.jpg")


def test_analyze_spikes_from_python_arrays():
    rng = np.random.default_rng(1)
    s = rng.random((30, 5, 8)) < 0.3
    res = analyze_spikes(s, 1.0)
    assert "fano_trial" not in res["measures"] and "noise_correlation" not in res["measures"]
    cv = res["measures"]["cv"]
    assert cv["null"]["analytic"]["value"] == pytest.approx(np.sqrt(0.7), abs=0.03)
    assert cv["summary"]["n"] == 8
    res2 = analyze_spikes(s, 1.0, labels=np.arange(30) % 2, max_pair_neurons=4)
    assert res2["pairs"]["neurons_used"] == 4
    assert res2["measures"]["noise_correlation"]["summary"]["n"] + \
        res2["measures"]["noise_correlation"]["summary"]["n_nan"] == 6
    with pytest.raises(ValueError, match="seed"):
        analyze_spikes(s, 1.0, seed=-1)
    with pytest.raises(ValueError, match=r"\[samples, time, neurons\]"):
        analyze_spikes(s[0], 1.0)


def test_plain_archive_analysed_and_rastered_through_the_cli(tmp_path, capsys):
    """An .npz with nothing but boolean [samples, T, neurons] arrays (no tbnn-only keys)."""
    from tbnn.cli import main

    rng = np.random.default_rng(3)
    f = tmp_path / "recording.npz"
    np.savez(f, lif1=rng.random((10, 20, 16)) < 0.1, lif2=rng.random((10, 20, 4)) < 0.3,
             weights=np.zeros(3))
    out = tmp_path / "ana"
    assert main(["analyze", str(f), "--out", str(out)]) == 0
    assert "1 ms per step assumed" in capsys.readouterr().out
    js = json.loads((out / "analysis.json").read_text())
    assert list(js["layers"]) == ["lif1", "lif2"]
    assert js["dt_source"] == "default" and js["timesteps"] == 20 and js["samples"] == 10
    assert js["source"]["spikes"] == "../recording.npz"  # relative to the output folder
    assert "fano_trial" not in js["layers"]["lif1"]["measures"]  # no labels, no trial view
    assert "1 ms assumed" in (out / "report.md").read_text()
    png = tmp_path / "r.png"
    assert main(["raster", str(f), "--neurons", "8", "--select", "active", "--format", "svg",
                 "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "r.svg").exists()
    # the folder form works too, with dt and labels declared in a plain archive
    d = tmp_path / "rec"
    d.mkdir()
    np.savez(d / "spikes.npz", h=rng.random((6, 5, 3)) < 0.5, labels=np.arange(6) % 2,
             dt_ms=np.float64(2.0))
    res = analyze_run(d, tmp_path / "b")
    assert res["dt_ms"] == 2.0 and res["dt_source"] == "archive"
    assert "fano_trial" in res["layers"]["h"]["measures"]
    # bad flags: one sentence, exit 2, nothing written
    assert main(["raster", str(f), "--neurons", "0", "--out", str(tmp_path / "z.png")]) == 2
    assert "--neurons must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "z.png").exists()


def test_report_figures_are_labelled_and_free_of_overlaps(tmp_path):
    from figcheck import check_figure

    from tbnn.analysis.catalogue import layer_measures
    from tbnn.analysis.figures import comparison_figure, figure_title, stats_figure

    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    arr = rng.random((30, 4, 300)) < np.geomspace(0.005, 0.7, 300)
    res, fd = layer_measures(arr, 1.0, labels, 0, 1, 64, 5.0)
    title = figure_title("hidden1", "tbn", "runs/some-long-run-name")
    fig, caption = stats_figure(res, fd, arr, 1.0, title)
    check_figure(fig)
    assert caption.startswith("log-normal")
    fig = comparison_figure(res, fd, title)
    check_figure(fig)
    assert "model tbn · layer hidden1 · run runs/some-long-run-name" in fig._suptitle.get_text()
    # a recording distribution per measure is one optional argument
    rec = {"rate_hz": rng.lognormal(0, 1, 50), "cv": rng.normal(1, 0.2, 50)}
    fig = comparison_figure(res, fd, title, recording=rec)
    check_figure(fig)
    assert any("recording" in t.get_text() for t in fig.legends[0].get_texts())


def test_rejected_fit_is_not_drawn():
    from tbnn.analysis.figures import fit_caption

    ok, cap = fit_caption({"ks_pvalue": 0.0013, "n_fit": 40})
    assert not ok and "rejected" in cap and "0.0013" in cap
    ok, cap = fit_caption({"ks_pvalue": 0.4, "n_fit": 40, "median_hz": 3.0,
                           "lognormal_sigma": 1.0})
    assert ok and "not rejected" in cap and "accepted" not in cap
    # the p-value that accounts for the fitted parameters decides where there is one
    ok, cap = fit_caption({"ks_pvalue": 0.4, "lilliefors_pvalue": 0.01, "n_fit": 40})
    assert not ok and "Lilliefors p = 0.01" in cap


def test_raster_options_refused_with_their_names(tmp_path):
    d = _simdir(tmp_path)
    for kwargs, match in [({"neurons": 0}, "neurons must be an integer >= 1"),
                          ({"select": "random"}, "select must be 'even' or 'active'"),
                          ({"formats": ("jpg",)}, "formats must be among svg, pdf")]:
        with pytest.raises(ValueError, match=match):
            raster_run(d, tmp_path / "x" / "r.png", **kwargs)
        assert not (tmp_path / "x").exists()
