"""Records of the pair and population measures (:mod:`tbnn.analysis.correlation`): pairwise
correlation of binned trains, spike-count noise correlation and synchrony chi^2.

>>> [m for m in MEASURES if "correlation" in m]
['correlation', 'noise_correlation']
"""

from __future__ import annotations

import warnings

import numpy as np

from tbnn.analysis import correlation as corr
from tbnn.analysis.measures.context import POISSON_NOTE
from tbnn.analysis.measures.registry import MEASURES, Measure, register_measure
from tbnn.analysis.measures.registry import Reference

__all__ = ["MEASURES"]

_INDEPENDENT = "analytic: 0 for independent neurons"


def _offdiag(m: np.ndarray) -> np.ndarray:
    return np.asarray(m, dtype=float)[np.triu_indices(m.shape[0], k=1)]


def _correlation(c):
    if c.pair_idx.size >= 2 and c.S * c.T // c.bin_steps >= 2:
        return corr.pairwise_correlations(c.pairs, c.bin_steps)
    return None


def _correlation_recording(r):
    if r.rec.n_units < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = r.stc.correlation_coefficient(r.binned(r.b_ms))
    return _offdiag(c), 0.0, POISSON_NOTE


def _noise_recording(r):
    """Each trial of a condition is one bin of a count train."""
    if r.rec.n_units < 2:
        return None
    import neo

    pq, counts, per = r.pq, r.rec.counts(), []
    for ix in r.by_condition:
        if ix.size < 3:
            continue
        trains = [np.repeat(np.arange(ix.size) + 0.5, counts[ix, i]) * pq.s for i in range(r.rec.n_units)]
        sts = [neo.SpikeTrain(t, t_start=0 * pq.s, t_stop=ix.size * pq.s) for t in trains]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per.append(_offdiag(r.stc.correlation_coefficient(r.BinnedSpikeTrain(sts, bin_size=1 * pq.s))))
    if not per:
        return None
    st_ = np.stack(per)
    n_def = np.sum(~np.isnan(st_), axis=0)
    return np.where(n_def > 0, np.nansum(st_, axis=0) / np.maximum(n_def, 1), np.nan), 0.0, POISSON_NOTE


register_measure(Measure(
    "correlation", "pairwise correlation of binned trains", "",
    "Pearson r of binned stream trains (Elephant correlation_coefficient)", "mean",
    network=_correlation, null=lambda c, v: np.zeros_like(v), null_note=_INDEPENDENT,
    recording=_correlation_recording, panel=True))

register_measure(Measure(
    "noise_correlation", "spike-count noise correlation", "",
    "Pearson r of counts across samples of one class, averaged over classes", "mean",
    network=lambda c: (corr.noise_correlations(c.pairs, c.labels)
                       if c.labels is not None and c.pair_idx.size >= 2 else None),
    null=lambda c, v: np.zeros_like(v), null_note=_INDEPENDENT,
    recording=_noise_recording,
    band=Reference("noise_correlation", 0.0, 0.3, "", "mean",
                   "Cohen & Kohn 2011, Nat Neurosci 14:811; Ecker et al. 2010, Science 327:584",
                   "Mean spike-count noise correlations are ~0.01-0.3 across studies, near zero in "
                   "awake V1."),
    panel=True))

register_measure(Measure(
    "synchrony_chi2", "synchrony chi^2", "",
    "Var(population mean)/mean single-neuron variance (Golomb 2007)", "mean",
    network=lambda c: [corr.synchrony_chi2(c.arr)], null=lambda c, v: [corr.null_synchrony_chi2(c.N)],
    null_note="analytic: 1/N for independent neurons", mask_analytic=False))
