"""The time base: dt from rates / an oscillation, and how rate-dependent measures move with dt."""

from __future__ import annotations

import numpy as np
import pytest

from tbnn.analysis.irregularity import lv, lvr
from tbnn.analysis.rates import rate_hz
from tbnn.analysis.timebase import dt_from_oscillation, dt_from_rates, dt_sensitivity


def _spikes(p=0.05, seed=0):
    return np.random.default_rng(seed).random((200, 4, 30)) < p


def test_dt_from_rates_matches_the_recording_rate():
    s = _spikes()
    p = s.mean(axis=(0, 1))
    dt = dt_from_rates(p, 3.5)
    assert rate_hz(s, dt).mean() == pytest.approx(3.5, rel=1e-12)
    assert dt_from_rates(0.02, 4.0) == pytest.approx(5.0)


def test_dt_from_oscillation():
    assert dt_from_oscillation(4, 50.0) == pytest.approx(5.0)
    assert dt_from_oscillation(8, 8.0) * 8 == pytest.approx(125.0)  # one theta cycle


def test_dt_sensitivity_scaling():
    s = _spikes()
    rows = dt_sensitivity(s, [1.0, 2.0, 5.0, 20.0])
    for r in rows:
        assert r["rate_hz"] * r["dt_ms"] == pytest.approx(rows[0]["rate_hz"] * rows[0]["dt_ms"])
        assert r["isi_ms"] / r["dt_ms"] == pytest.approx(rows[0]["isi_ms"] / rows[0]["dt_ms"])
        assert r["cv"] == rows[0]["cv"] and r["lv"] == rows[0]["lv"]
        v = lvr(s, r["dt_ms"])
        assert r["lvr"] == pytest.approx(float(np.nanmedian(v)))
    # LvR falls toward LV as dt grows (the 4R/(I_k + I_k+1) term shrinks)
    lvrs = [r["lvr"] for r in rows]
    assert all(a > b for a, b in zip(lvrs, lvrs[1:]))
    assert lvrs[-1] > float(np.nanmedian(lv(s))) - 1e-12


@pytest.mark.parametrize("call, match", [
    (lambda: dt_from_rates(0.0, 4.0), "network_rate_per_step"),
    (lambda: dt_from_rates(1.5, 4.0), "network_rate_per_step"),
    (lambda: dt_from_rates(0.1, -1.0), "recording_rate_hz"),
    (lambda: dt_from_oscillation(0, 8.0), "T must"),
    (lambda: dt_from_oscillation(4, float("nan")), "freq_hz"),
    (lambda: dt_sensitivity(_spikes(), []), "dt_values"),
    (lambda: dt_sensitivity(_spikes(), [0.0]), "dt_values"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
