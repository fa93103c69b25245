"""The network-beside-recording script: --quick writes the figure, the JSON and the dt table."""

from __future__ import annotations

import json

import pytest
from scriptutil import load_script, png_ok

pytest.importorskip("nixio")


def test_recording_comparison_quick(tmp_path):
    mod = load_script("simulations/recording_comparison.py")
    res = mod.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    png_ok(tmp_path / "recording_comparison.png", max_bytes=400_000)
    saved = json.loads((tmp_path / "recording_comparison.json").read_text())
    ms = saved["comparison"]["measures"]
    # dt was chosen so that the mean rates match
    assert ms["rate_hz"]["recording"]["value"] > 0
    assert abs(res["dt_ms"] - saved["dt_ms"]) < 1e-12
    assert "noise_correlation" in ms and "fano_trial" in ms
    assert (tmp_path / "recording_comparison_dt.md").read_text().startswith("# How")
    (tmp_path / "recording_comparison.png").unlink()
    mod.main(["--replot", "--out", str(tmp_path)])
    png_ok(tmp_path / "recording_comparison.png", max_bytes=400_000)
