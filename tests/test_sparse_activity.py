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
    ps = {p["P"]: p for p in res["points"]}
    assert set(ps) == {None, 0.05}
    assert ps[0.05]["paired_seeds"] == 1 and ps[0.05]["accuracy_difference"] is not None
    for r in res["runs"]:
        assert r["max_logit_difference"] == 0.0  # the exact simulation holds for the running grid
        # analog values: a gain and an offset per block of 128 and sample, input and hidden layers
        assert r["analog_values_per_inference"] == 2 * sum(-(-n // 128) for n in (64, 256, 256))
        assert sum(r["synaptic_ops_layers"].values()) == pytest.approx(r["synaptic_ops_per_inference"])
    (tmp_path / "sparse_control.png").unlink()
    mod.main(["--control", "--replot", "--out", str(tmp_path)])
    png_ok(tmp_path / "sparse_control.png")
