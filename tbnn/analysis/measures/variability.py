"""Records of the count-variability measures (:mod:`tbnn.analysis.variability`): the Fano
factor in the stream view and in the trial view.

>>> [m for m in MEASURES if m.startswith("fano")]
['fano_stream', 'fano_trial']
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from tbnn.analysis import variability as var
from tbnn.analysis.measures.context import DEFINED_NOTE, POISSON_NOTE
from tbnn.analysis.measures.registry import MEASURES, Measure, register_measure
from tbnn.analysis.measures.registry import Reference

__all__ = ["MEASURES"]


def _fano_stream_recording(r):
    n_win = math.floor(r.total_ms / r.win + 1e-9)
    edges = np.arange(n_win + 1) * r.win / 1000.0
    fs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in r.rec.stream_times():
            idx = np.searchsorted(t, edges, side="left")
            fs.append(float(r.es.fanofactor([t[idx[j]:idx[j + 1]] for j in range(n_win)])))
    return fs, 1.0, POISSON_NOTE


def _fano_trial_recording(r):
    rec, by_cond = r.rec, r.by_condition
    if not any(ix.size >= 2 for ix in by_cond):
        return None
    ft = np.full((len(by_cond), rec.n_units), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, ix in enumerate(by_cond):
            if ix.size < 2:
                continue
            for i in range(rec.n_units):
                ft[j, i] = float(r.es.fanofactor([rec.trials[k][i] for k in ix]))
    n_def = np.sum(~np.isnan(ft), axis=0)
    return np.where(n_def > 0, np.nansum(ft, axis=0) / np.maximum(n_def, 1), np.nan), 1.0, POISSON_NOTE


_CHURCHLAND = "Churchland et al. 2010, Nat Neurosci 13:369"

register_measure(Measure(
    "fano_stream", "Fano factor, stream view", "",
    ("Var/mean of counts in consecutive windows of T steps of the stream "
     "train (Elephant fanofactor)"), "mean",
    network=lambda c: var.fano_stream(c.arr) if c.S >= 2 else None,
    null=lambda c, v: var.null_fano(c.p), null_note=DEFINED_NOTE + "; 1-p, window = T steps",
    recording=_fano_stream_recording,
    band=Reference("fano_stream", 1.0, 1.5, "", "mean", _CHURCHLAND,
                   "The in-vivo range ~1-1.5 (measured across trials) shown for the stream view too."),
    log_axis=True, panel=True))

register_measure(Measure(
    "fano_trial", "Fano factor, trial view", "",
    "Var/mean of counts across samples of one class, averaged over classes", "mean",
    network=lambda c: var.fano_trial(c.arr, c.labels) if c.labels is not None else None,
    null=lambda c, v: var.null_fano(c.p), null_note=DEFINED_NOTE + "; 1-p",
    recording=_fano_trial_recording,
    band=Reference("fano_trial", 1.0, 1.5, "", "mean", _CHURCHLAND,
                   "Trial-to-trial Fano factor of spike counts is ~1-1.5 in vivo and falls at stimulus "
                   "onset."),
    log_axis=True, panel=True))
