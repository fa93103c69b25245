"""tbnn analyze SIMDIR --recording FILE: the network beside a recording, and bad files refused."""

import json

import numpy as np

from tbnn.cli import main


def _archive(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, hidden=rng.random((20, 8, 30)) < 0.2, labels=np.arange(20) % 4, dt_ms=np.float64(5.0))
    return path


def _csv(path, units=6, rate_hz=8.0, duration_s=20.0, seed=1):
    rng = np.random.default_rng(seed)
    rows = ["unit,time"]
    for u in range(units):
        t = np.cumsum(rng.exponential(1 / rate_hz, int(rate_hz * duration_s * 2)))
        rows += [f"u{u},{v:.6f}" for v in t[t < duration_s]]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_recording_beside_network(tmp_path, capsys):
    arch, rec = _archive(tmp_path / "net.npz"), _csv(tmp_path / "rec.csv")
    out = tmp_path / "ana"
    assert main(["analyze", str(arch), "--recording", str(rec), "--out", str(out)]) == 0
    res = json.loads((out / "analysis.json").read_text())
    cmp_ = res["layers"]["hidden"]["recording"]
    assert cmp_["recording"]["units"] == 6
    rate = cmp_["measures"]["rate_hz"]
    assert abs(rate["recording"]["value"] - 8.0) < 1.5  # Poisson units at 8 Hz
    assert abs(rate["network"]["value"] - 0.2 / 0.005) < 8  # p = 0.2 per 5-ms step = 40 Hz
    assert "beside the recording" in (out / "report.md").read_text()
    assert (out / "hidden_recording.png").stat().st_size > 1000


def test_bad_recording_refused_nothing_written(tmp_path, capsys):
    arch = _archive(tmp_path / "net.npz")
    bad = tmp_path / "rec.csv"
    bad.write_text("neuron,when\n1,2\n")
    out = tmp_path / "ana"
    assert main(["analyze", str(arch), "--recording", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "rec.csv" in err and "Traceback" not in err
    assert not out.exists()
