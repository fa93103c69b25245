"""The sparse-activity experiment script: --quick runs every code path; --replot redraws from its JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from figcheck import check_figure
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


def test_sparse_activity_replot_of_the_saved_sweep(tmp_path, monkeypatch):
    """The committed full sweep redraws without training; labelled axes, no overlapping text."""
    shutil.copy(ROOT / "figures" / "sparse_activity.json", tmp_path / "sparse_activity.json")
    mod = load_script("simulations/sparse_activity.py")
    checked = []
    original = mod.common.save_figure

    def checking_save(fig, out, fname, *a, **k):
        check_figure(fig)
        checked.append(fname)
        return original(fig, out, fname, *a, **k)

    monkeypatch.setattr(mod.common, "save_figure", checking_save)
    res = mod.main(["--replot", "--out", str(tmp_path)])
    assert checked == ["sparse_activity.png"]
    assert res["verdicts"]["digits"]["at_most_5pct_within_1pt"]
    assert (tmp_path / "sparse_activity.md").read_text().startswith("# Sparse activity")
