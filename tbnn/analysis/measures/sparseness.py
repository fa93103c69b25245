"""Records of the sparseness measures (:mod:`tbnn.analysis.sparseness`): Vinje–Gallant
sparseness and Treves–Rolls activity ratio, over samples (lifetime) and over neurons
(population).

>>> [m for m in MEASURES if m.startswith("lifetime")]
['lifetime_sparseness', 'lifetime_activity_ratio']
"""

from __future__ import annotations

import numpy as np

from tbnn.analysis import sparseness as sp
from tbnn.analysis.measures.context import DEFINED_NOTE, POISSON_NOTE
from tbnn.analysis.measures.registry import MEASURES, Measure, register_measure
from tbnn.analysis.measures.registry import Reference

__all__ = ["MEASURES"]

_RATIO_NOTE = POISSON_NOTE + ": Poisson counts, ratio of expectations"


def _poisson_rates(r):
    """Mean of the per-trial rates of each unit, and the mean inverse trial duration."""
    return r.responses.sum(0) / r.rec.n_trials, float(np.mean(1.0 / r.rec.durations))


def _lifetime_recording(r):
    if r.rec.n_trials < 2:
        return None
    lam, inv_d = _poisson_rates(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        a_null = lam**2 / (lam**2 + lam * inv_d)
    s_null = (1 - a_null) / (1 - 1 / r.rec.n_trials)
    return sp.vinje_gallant(r.responses, axis=0), float(np.nanmedian(s_null)), _RATIO_NOTE


def _population_recording(r):
    if r.rec.n_units < 2:
        return None
    lam, inv_d = _poisson_rates(r)
    a_pop = float(np.mean(lam) ** 2 / np.mean(lam**2 + lam * inv_d))
    return sp.vinje_gallant(r.responses, axis=1), (1 - a_pop) / (1 - 1 / r.rec.n_units), _RATIO_NOTE


register_measure(Measure(
    "lifetime_sparseness", "lifetime sparseness (Vinje-Gallant)", "",
    "S = (1-a)/(1-1/n) over samples, a = <r>^2/<r^2>", "median",
    network=lambda c: sp.lifetime_sparseness(c.arr) if c.S >= 2 else None,
    null=lambda c, v: sp.null_lifetime_sparseness(c.p, c.T, c.S),
    null_note=DEFINED_NOTE + "; counts Binomial(T, p), ratio of expectations",
    recording=_lifetime_recording,
    band=Reference("lifetime_sparseness", 0.4, 0.7, "", "median", "Vinje & Gallant 2000, Science 287:1273",
                   "Vinje-Gallant lifetime sparseness of V1 neurons under natural stimulation is about "
                   "0.4-0.7 (higher with the non-classical receptive field stimulated)."),
    panel=True))

register_measure(Measure(
    "lifetime_activity_ratio", "lifetime activity ratio (Treves-Rolls)", "",
    "a = <r>^2/<r^2> over samples", "median",
    network=lambda c: sp.lifetime_sparseness(c.arr, "treves_rolls") if c.S >= 2 else None,
    null=lambda c, v: sp.null_lifetime_sparseness(c.p, c.T, c.S, "treves_rolls"), null_note=DEFINED_NOTE))

register_measure(Measure(
    "population_sparseness", "population sparseness (Vinje-Gallant)", "",
    "S = (1-a)/(1-1/n) over neurons, per sample", "mean",
    network=lambda c: sp.population_sparseness(c.arr) if c.N >= 2 else None,
    null=lambda c, v: [sp.null_population_sparseness(c.p, c.T)],
    null_note="analytic: counts Binomial(T, p_i), ratio of expectations", mask_analytic=False,
    recording=_population_recording, panel=True))

register_measure(Measure(
    "population_activity_ratio", "population activity ratio (Treves-Rolls)", "",
    "a = <r>^2/<r^2> over neurons, per sample", "mean",
    network=lambda c: sp.population_sparseness(c.arr, "treves_rolls") if c.N >= 2 else None,
    null=lambda c, v: [sp.null_population_sparseness(c.p, c.T, "treves_rolls")],
    null_note="analytic: counts Binomial(T, p_i)", mask_analytic=False))
