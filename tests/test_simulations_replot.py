"""Every experiment script redraws its figures from its saved JSON (``--replot``), without
training; each figure has labelled axes and no overlapping text (checked on the real
results in ``figures/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from figcheck import check_figure
from scriptutil import load_script, png_ok

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = {
    "precision_time": ["precision_time.png"],
    "results_table": ["results_table.png"],
    "ste_vs_dat": ["ste_vs_dat.png"],
    "lambda_sweep": ["lambda_sweep.png"],
    "tbn_vs_lif": ["tbn_vs_lif.png"],
    "biology": ["biology_sweep.png"],
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_replot_from_saved_json(name, tmp_path, monkeypatch):
    shutil.copy(ROOT / "figures" / f"{name}.json", tmp_path / f"{name}.json")
    mod = load_script(f"simulations/{name}.py")
    checked = []
    original = mod.common.save_figure

    def checking_save(fig, out, fname, *a, **k):
        check_figure(fig)
        checked.append(fname)
        return original(fig, out, fname, *a, **k)

    monkeypatch.setattr(mod.common, "save_figure", checking_save)
    res = mod.main(["--replot", "--out", str(tmp_path), "--format", "svg"])
    assert isinstance(res, dict)
    assert checked == SCRIPTS[name]
    for png in SCRIPTS[name]:
        png_ok(tmp_path / png, max_bytes=400_000)
        assert (tmp_path / png).with_suffix(".svg").exists()
    assert not any(p.suffix == ".partial" for p in tmp_path.iterdir())


def test_replot_without_json_says_so(tmp_path):
    mod = load_script("simulations/lambda_sweep.py")
    with pytest.raises(SystemExit, match="--replot needs .*lambda_sweep.json"):
        mod.main(["--replot", "--out", str(tmp_path)])
