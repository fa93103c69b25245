"""The analyze and raster commands, as a user runs them, and their refusals."""

from __future__ import annotations

import json

from tbnn.cli import main


def test_cli_analyze_and_raster(tiny_sim, tmp_path, capsys):
    sim = tiny_sim[0]
    assert main(["analyze", str(sim), "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert set(data["layers"]) == {"input", "hidden1", "hidden2"}
    assert "Firing statistics" in (tmp_path / "a" / "report.md").read_text()
    assert main(["raster", str(sim), "--layer", "hidden1", "--samples", "0:4", "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()


def test_cli_analyze_refusals(tiny_sim, tmp_path, capsys):
    sim = tiny_sim[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "spikes.npz").write_bytes(b"not an archive")
    cases = [
        (["analyze", str(sim), "--dt-ms", "0", "--out", str(tmp_path / "x1")], "dt_ms", tmp_path / "x1"),
        (["analyze", str(sim), "--layer", "nope", "--out", str(tmp_path / "x2")], "nope", tmp_path / "x2"),
        (["analyze", str(bad), "--out", str(tmp_path / "x3")], "not a spikes archive", tmp_path / "x3"),
        (["raster", str(sim), "--layer", "nope", "--out", str(tmp_path / "x4.png")], "nope", tmp_path / "x4.png"),
        (["raster", str(sim), "--sample", "100000", "--out", str(tmp_path / "x5.png")], "sample", tmp_path / "x5.png"),
    ]
    for argv, needle, target in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.startswith("tbnn "), err
        assert not target.exists()
