"""Records of the rate measures (:mod:`tbnn.analysis.rates`): rate in Hz, spike probability
per step, fraction of silent neurons, fraction of neurons active per step.

>>> [m for m in MEASURES if m in ("rate_hz", "fraction_active")]
['rate_hz', 'fraction_active']
"""

from __future__ import annotations

import math

import numpy as np

from tbnn.analysis import rates
from tbnn.analysis.measures.context import POISSON_NOTE, SAME_NOTE
from tbnn.analysis.measures.registry import MEASURES, Measure, register_measure
from tbnn.analysis.measures.registry import Reference

__all__ = ["MEASURES"]


def _rate_hz_recording(r):
    return r.rates, float(np.median(r.rates)), POISSON_NOTE + ": equal to the recording's by construction"


def _fraction_active_recording(r):
    if r.dt is None:
        return None
    n_bins = math.floor(r.total_ms / r.dt + 1e-9)
    if n_bins < 1:
        raise ValueError(f"dt_ms must be at most the recording's length ({r.total_ms:g} ms), got {r.dt:g}.")
    active = r.binned(r.dt).to_bool_array().mean(axis=0)
    return (active, float(np.mean(1.0 - np.exp(-r.rates * r.dt / 1000.0))),
            POISSON_NOTE + ": mean of 1 - exp(-rate dt)")


register_measure(Measure(
    "rate_hz", "firing rate", "Hz",
    "r_i = n_i / (L dt) over the stream train (Elephant mean_firing_rate)", "median",
    network=lambda c: rates.rate_hz(c.arr, c.dt),
    null=lambda c, v: v, null_note=SAME_NOTE,
    recording=_rate_hz_recording,
    band=Reference(
        "rate_hz", 0.1, 5.0, "Hz", "median",
        "Buzsáki & Mizuseki 2014, Nat Rev Neurosci 15:264; Hromádka et al. 2008, PLoS Biol 6:e16",
        "Rates across cortical neurons are heavy-tailed, roughly log-normal; most neurons "
        "fire below a few Hz and a small minority fire fast, so the median rate is compared "
        "with a band of 0.1-5 Hz."),
    log_axis=True, panel=True))

register_measure(Measure(
    "rate_per_step", "spike probability per step", "", "p_i = n_i / L", "mean",
    network=lambda c: c.p, null=lambda c, v: c.p, null_note=SAME_NOTE))

register_measure(Measure(
    "fraction_silent", "fraction of silent neurons", "", "neurons with no spike in any sample", "mean",
    network=lambda c: [rates.fraction_silent(c.arr)], null=lambda c, v: v, null_note=SAME_NOTE))

register_measure(Measure(
    "fraction_active", "fraction of neurons active per step", "",
    "mean over steps of the fraction of neurons spiking in that step", "mean",
    network=lambda c: rates.fraction_active_per_step(c.arr),
    null=lambda c, v: [c.p.mean()], null_note="analytic: mean p over neurons", mask_analytic=False,
    recording=_fraction_active_recording,
    band=Reference(
        "fraction_active", 0.005, 0.05, "", "mean",
        "Attwell & Laughlin 2001, J Cereb Blood Flow Metab 21:1133; Lennie 2003, Curr Biol "
        "13:493",
        "The energy budget allows only a few percent of cortical neurons to be active at once."),
    log_axis=True, panel=True))
