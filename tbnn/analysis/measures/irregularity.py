"""Records of the interval measures (:mod:`tbnn.analysis.irregularity`): ISI, CV, CV2, LV and
LvR, with their Bernoulli nulls and Elephant's definitions on a recording.

>>> [m for m in MEASURES if m in ("isi_ms", "cv", "lvr")]
['isi_ms', 'cv', 'lvr']
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from tbnn.analysis import irregularity as irr
from tbnn.analysis.measures.context import DEFINED_NOTE, POISSON_NOTE
from tbnn.analysis.measures.registry import MEASURES, Measure, register_measure
from tbnn.analysis.measures.registry import Reference

__all__ = ["MEASURES"]


def _isi_recording(r):
    isis = np.concatenate(r.isis) if r.isis else []
    return (isis, float(np.median(1000.0 * math.log(2) / r.rates)),
            POISSON_NOTE + ": exponential ISIs, median ln 2 / rate")


def _per_unit(r, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([fn(v) for v in r.isis])


def _cv_recording(r):
    return _per_unit(r, lambda v: float(r.es.cv(v)) if v.size >= 1 else np.nan), 1.0, POISSON_NOTE


def _cv2_recording(r):
    return _per_unit(r, lambda v: float(r.es.cv2(v, with_nan=True))), 1.0, POISSON_NOTE


def _lv_recording(r):
    return _per_unit(r, lambda v: float(r.es.lv(v, with_nan=True))), 1.0, POISSON_NOTE


def _lvr_recording(r):
    pq = r.pq
    lvr = _per_unit(r, lambda v: float(r.es.lvr(v * pq.ms, R=r.R * pq.ms, with_nan=True)))
    null = 1.0 + 4.0 * r.R * r.rates / 1000.0
    ok = ~np.isnan(lvr)
    return lvr, float(np.median(null[ok])) if np.any(ok) else float("nan"), POISSON_NOTE + ": 1 + 4 R rate"


_SHINOMOTO = "Shinomoto et al. 2009, PLoS Comput Biol 5:e1000433"

register_measure(Measure(
    "isi_ms", "inter-spike interval", "ms", "I_k = t_{k+1} - t_k, pooled over neurons", "median",
    network=lambda c: c.intervals["isi_ms"],
    null_note="shuffled only; the null's ISIs are geometric with mean dt/p",
    recording=_isi_recording))

register_measure(Measure(
    "cv", "CV of ISIs", "", "std(I)/mean(I), ddof 0 (Elephant cv)", "median",
    network=lambda c: c.intervals["cv"], null=lambda c, v: irr.null_cv(c.p),
    null_note=DEFINED_NOTE + "; sqrt(1-p)", recording=_cv_recording,
    band=Reference("cv", 0.7, 1.3, "", "median", "Softky & Koch 1993, J Neurosci 13:334",
                   "ISIs of cortical neurons are highly irregular, CV near 1 (Poisson-like)."),
    panel=True))

register_measure(Measure(
    "cv2", "CV2", "", "mean 2|I_{k+1}-I_k|/(I_{k+1}+I_k) (Holt et al. 1996; Elephant cv2)", "median",
    network=lambda c: c.intervals["cv2"], null=lambda c, v: irr.null_cv2(c.p),
    null_note=DEFINED_NOTE, recording=_cv2_recording,
    band=Reference("cv2", 0.7, 1.3, "", "median",
                   "Softky & Koch 1993, J Neurosci 13:334; Holt et al. 1996, J Neurophysiol 75:1806",
                   "Local irregularity of cortical ISIs is near the Poisson value 1."),
    panel=True))

register_measure(Measure(
    "lv", "LV", "", "mean 3(I_k-I_{k+1})^2/(I_k+I_{k+1})^2 (Shinomoto et al. 2003; Elephant lv)", "median",
    network=lambda c: c.intervals["lv"], null=lambda c, v: irr.null_lv(c.p),
    null_note=DEFINED_NOTE, recording=_lv_recording,
    band=Reference("lv", 0.3, 1.5, "", "median", _SHINOMOTO,
                   "LV/LvR classify firing as regular (motor areas, below ~0.5), random (visual, ~1) or "
                   "bursty (prefrontal, above 1); the band spans the areas."),
    panel=True))

register_measure(Measure(
    "lvr", "LvR (R = 5 ms)", "",
    ("3/(n-1) sum (1-4 I_k I_{k+1}/(I_k+I_{k+1})^2)(1+4R/(I_k+I_{k+1})) "
     "(Shinomoto et al. 2009; Elephant lvr)"), "median",
    network=lambda c: c.intervals["lvr"], null=lambda c, v: irr.null_lvr(c.p, c.dt, c.R_ms),
    null_note=DEFINED_NOTE, recording=_lvr_recording,
    band=Reference("lvr", 0.3, 1.5, "", "median", _SHINOMOTO,
                   "LvR (R = 5 ms) classifies firing as regular (motor), random (visual) or bursty "
                   "(prefrontal); the band spans the areas."),
    panel=True))
