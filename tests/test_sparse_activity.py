"""The sparse-activity experiment script: --quick runs every code path; --replot redraws from its JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scriptutil import load_script, png_ok

ROOT = Path(__file__).resolve().parents[1]


def test_sparse_activity_quick_and_replot(tmp_path):
    mod = load_script("simulations/sparse_activity.py")
    res = mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    for name in ("sparse_activity.json", "sparse_activity.md", "sparse_activity.png"):
        assert (tmp_path / name).is_file()
    png_ok(tmp_path / "sparse_activity.png")
    saved = json.loads((tmp_path / "sparse_activity.json").read_text())
    assert {p["dataset"] for p in saved["points"]} == {"digits", "mnist1d"}
    for r in res["runs"]:
        assert 0 <= r["fraction_active"] <= 1
        assert r["spikes_per_inference"] > r["hidden_spikes_per_inference"] > 0
        assert r["synaptic_ops_per_inference"] > 0
        # the grid floor: the top neuron of every non-silent block fires in every step
        for name, a in r["fraction_active_layers"].items():
            assert a >= r["floor_layers"][name] - 1e-12
    (tmp_path / "sparse_activity.png").unlink()
    mod.main(["--replot", "--out", str(tmp_path)])
    png_ok(tmp_path / "sparse_activity.png")


def test_sparse_activity_replot_keeps_the_verdicts(tmp_path):
    """The committed full sweep redraws without training (the figure is checked with the others'
    in test_simulations_replot) and keeps its verdicts."""
    shutil.copy(ROOT / "figures" / "sparse_activity.json", tmp_path / "sparse_activity.json")
    res = load_script("simulations/sparse_activity.py").main(["--replot", "--out", str(tmp_path)])
    assert res["verdicts"]["digits"]["at_most_5pct_within_1pt"]
    assert (tmp_path / "sparse_activity.md").read_text().startswith("# Sparse activity")


def test_sparse_control_quick_and_replot(tmp_path):
    mod = load_script("simulations/sparse_activity.py")
    res = mod.main(["--control", "--quick", "--out", str(tmp_path), "--no-progress"])
    for name in ("sparse_control.json", "sparse_control.md", "sparse_control.png"):
        assert (tmp_path / name).is_file()
    png_ok(tmp_path / "sparse_control.png")
    ps = {(p["controller"], p["P"]): p for p in res["points"]}
    assert set(ps) == {(None, None), ("lagrangian", 0.05), ("thresholds", 0.05)}  # one shared baseline
    for c in ("lagrangian", "thresholds"):
        assert ps[c, 0.05]["paired_seeds"] == 1 and ps[c, 0.05]["accuracy_difference"] is not None
    lag = next(r for r in res["runs"] if r["controller"] == "lagrangian")
    assert all(v > 0 for v in lag["rate_control"]["multipliers"].values())
    thr = next(r for r in res["runs"] if r["controller"] == "thresholds")
    assert thr["rate_control"]["multipliers"] == {}  # thresholds alone
    for r in res["runs"]:
        assert r["max_logit_difference"] == 0.0  # the exact simulation holds for the running grid
        # analog values: a gain and an offset per block of 128 and sample, input and hidden layers
        assert r["analog_values_per_inference"] == 2 * sum(-(-n // 128) for n in (64, 256, 256))
        assert sum(r["synaptic_ops_layers"].values()) == pytest.approx(r["synaptic_ops_per_inference"])
        for layer, b in r["biology"].items():  # the counts behind the panel: a recount of the activity
            h = {int(c): n for c, n in b["count_histogram"].items()}
            assert sum(h.values()) == b["neurons"] and b["n_silent"] == h.get(0, 0)
            spikes = sum(c * n for c, n in h.items())
            assert spikes / (b["steps"] * b["neurons"]) == pytest.approx(r["fraction_active_layers"][layer])
    (tmp_path / "sparse_control.png").unlink()
    mod.main(["--control", "--replot", "--out", str(tmp_path)])
    png_ok(tmp_path / "sparse_control.png")
    # the biology panel: the sparsest target met (two epochs meet none, so one is marked met here)
    assert mod._sparsest(res) == {} or all(v["point"]["within_20pct"] for v in mod._sparsest(res).values())
    ps["lagrangian", 0.05]["within_20pct"] = True
    sel = mod._sparsest(res)["digits"]
    assert sel["point"]["controller"] == "lagrangian" and len(sel["runs"]) == 1 and len(sel["baseline"]) == 1
    md = mod._control_markdown(res)
    assert "## Biology at the sparsest point that meets its target: digits" in md and "accepted" not in md
    assert "of 1 seeds" in md  # the log-normal verdict per layer, counted over seeds
    mod._control_figure(res, tmp_path)
    png_ok(tmp_path / "sparse_control.png")


def test_sparse_control_sweeps_input_codes_and_resumes(tmp_path, monkeypatch):
    mod = load_script("simulations/sparse_activity.py")
    args = ["--control", "--quick", "--controllers", "lagrangian", "--input-encodings", "binary", "latency",
            "--out", str(tmp_path), "--no-progress"]
    res = mod.main(args)
    ps = {(p["input_encoding"], p["P"]): p for p in res["points"]}
    assert set(ps) == {("binary", None), ("binary", 0.05), ("latency", None), ("latency", 0.05)}
    assert ps["latency", 0.05]["paired_seeds"] == 1  # paired with the baseline of its own input code
    runs = {(r["input_encoding"], r["P"]): r for r in res["runs"]}
    for P in (None, 0.05):  # latency: one spike at most per input neuron, 256 targets each
        assert runs["latency", P]["synaptic_ops_layers"]["input"] <= 64 * 256
        assert runs["latency", P]["synaptic_ops_layers"]["input"] < runs["binary", P]["synaptic_ops_layers"]["input"]
    assert " latency |" in (tmp_path / "sparse_control.md").read_text()
    # --resume: nothing is trained again, the same runs come back
    monkeypatch.setattr(mod, "_run_control", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = mod.main(args + ["--resume"])
    assert [mod._control_key(r) for r in again["runs"]] == [mod._control_key(r) for r in res["runs"]]
    assert again["points"] == json.loads(json.dumps(res["points"]))


def test_sparse_control_replot_draws_the_committed_results(tmp_path, monkeypatch):
    """The committed sweep redraws (biology panel included) with labelled axes and no overlapping text."""
    from figcheck import check_figure

    shutil.copy(ROOT / "figures" / "sparse_control.json", tmp_path / "sparse_control.json")
    mod = load_script("simulations/sparse_activity.py")
    original = mod.common.save_figure

    def checking_save(fig, out, fname, *a, **k):
        check_figure(fig)
        return original(fig, out, fname, *a, **k)

    monkeypatch.setattr(mod.common, "save_figure", checking_save)
    res = mod.main(["--control", "--replot", "--out", str(tmp_path)])
    assert mod._sparsest(res), "the committed sweep meets at least one target"
    assert (tmp_path / "sparse_control.md").read_text() == (ROOT / "figures" / "sparse_control.md").read_text()
