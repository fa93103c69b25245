"""The biology experiment script runs end to end in --quick mode."""

from __future__ import annotations

import json

from scriptutil import load_script, png_ok


def test_biology_quick(tmp_path):
    mod = load_script("simulations/biology.py")
    res = mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "biology.json").read_text())
    assert data["tbn"]["forward_agreement"] == 1.0
    assert set(data["tbn"]["stats"]) == {"input", "hidden1", "hidden2"}
    assert res["lif"]["forward_agreement"] == 1.0
    cv = data["tbn"]["stats"]["hidden1"]["cv"]
    assert cv["network"] is None or cv["network"] >= 0
    for png in ("demo_raster.png", "biology_tbn.png", "biology_lif.png", "biology_sweep.png"):
        png_ok(tmp_path / png)
