r"""Inter-spike intervals and their irregularity: ISI, CV, CV2, LV, LvR.

Definitions match Elephant 1.2 (``elephant.statistics``): ``isi``, ``cv``
(``scipy.stats.variation``, ddof 0), ``cv2``, ``lv`` and ``lvr`` with ``with_nan=True``.
Intervals are taken on each neuron's stream train (see :mod:`tbnn.analysis.rates`), so
for ``[samples, T, neurons]`` input an interval may span a sample boundary, as it would
in a recording of samples presented one after another.

Edge cases (Elephant 1.2's exact behaviour, documented here because it matters for
sparse networks):

==========  ==============  ===================  =========================
spikes      intervals       CV                   CV2, LV, LvR
==========  ==============  ===================  =========================
0 or 1      0               NaN                  NaN
2           1               **0.0** (one value)  NaN (need 2 intervals)
>= 3        >= 2            defined              defined
==========  ==============  ===================  =========================

Elephant's CV of a single interval is 0 (the variation of one number), not NaN; we
follow it, so a neuron with exactly two spikes has CV 0. Per-neuron functions return NaN
for undefined neurons instead of dropping them; :func:`tbnn.analysis.report.summarize`
counts them (``n_nan``).

Null model: with independent Bernoulli firing at probability :math:`p` per step, ISIs
(in steps) are geometric, :math:`P(I = k) = p (1-p)^{k-1}`, and :func:`null_cv`,
:func:`null_cv2`, :func:`null_lv` and :func:`null_lvr` give the exact expectations of the
per-pair terms (closed forms derived from the geometric law; see each docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import spence

from tbnn.analysis.rates import check_probability
from tbnn.core.validate import check_dt, check_number
from tbnn.io.spikes import as_stream

__all__ = [
    "cv",
    "cv2",
    "cv2_of_intervals",
    "cv_of_intervals",
    "interval_measures",
    "isi",
    "lv",
    "lv_of_intervals",
    "lvr",
    "lvr_of_intervals",
    "null_cv",
    "null_cv2",
    "null_lv",
    "null_lvr",
    "pooled_isi",
]


# ----------------------------------------------------------------------------------------
# interval tables (vectorised over neurons)
@dataclass
class _IsiTable:
    n_neurons: int
    intervals: np.ndarray  # all intervals (steps), grouped by neuron, in time order
    neuron: np.ndarray  # neuron index of each interval
    n_intervals: np.ndarray  # [neurons]
    pair_a: np.ndarray  # I_i of consecutive pairs (same neuron)
    pair_b: np.ndarray  # I_{i+1}
    pair_neuron: np.ndarray
    n_pairs: np.ndarray  # [neurons]


def _isi_table(spikes: Any) -> _IsiTable:
    stream = as_stream(spikes)
    n = stream.shape[1]
    # a contiguous [neurons, time] copy makes nonzero fast; sorted by neuron, then time
    neuron, time = np.nonzero(np.ascontiguousarray(stream.T))
    same = neuron[1:] == neuron[:-1]
    intervals = np.diff(time)[same].astype(float)
    ineuron = neuron[1:][same]
    same2 = ineuron[1:] == ineuron[:-1]
    return _IsiTable(
        n_neurons=n,
        intervals=intervals,
        neuron=ineuron,
        n_intervals=np.bincount(ineuron, minlength=n),
        pair_a=intervals[:-1][same2],
        pair_b=intervals[1:][same2],
        pair_neuron=ineuron[1:][same2],
        n_pairs=np.bincount(ineuron[1:][same2], minlength=n),
    )


def _per_neuron_mean(values: np.ndarray, index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    sums = np.bincount(index, weights=values, minlength=counts.shape[0])
    out = np.full(counts.shape[0], np.nan)
    ok = counts > 0
    out[ok] = sums[ok] / counts[ok]
    return out


def isi(spikes: Any, dt_ms: float) -> list[np.ndarray]:
    r"""Inter-spike intervals of each neuron in ms, :math:`I_k = t_{k+1} - t_k`.

    As ``elephant.statistics.isi`` on the neuron's spike times :math:`t_k = i_k\,\Delta t`.

    Parameters
    ----------
    spikes : bool array ``[time]``, ``[time, neurons]`` or ``[samples, time, neurons]``
    dt_ms : float
        Duration of one step in ms (``> 0``).

    Returns
    -------
    list of np.ndarray
        One float array per neuron (empty for neurons with fewer than two spikes).

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> [i.tolist() for i in isi(s, dt_ms=1.0)]
    [[2.0, 5.0]]
    """
    dt = check_dt(dt_ms)
    tab = _isi_table(spikes)
    return [x * dt for x in np.split(tab.intervals, np.cumsum(tab.n_intervals)[:-1])]


def pooled_isi(spikes: Any, dt_ms: float) -> np.ndarray:
    """All inter-spike intervals of all neurons in one array (ms), for histograms.

    >>> s = np.zeros((10, 2), bool); s[[1, 3, 8], 0] = True; s[[0, 9], 1] = True
    >>> pooled_isi(s, dt_ms=0.5).tolist()
    [1.0, 2.5, 4.5]
    """
    dt = check_dt(dt_ms)
    return _isi_table(spikes).intervals * dt


def cv(spikes: Any) -> np.ndarray:
    r"""Coefficient of variation of each neuron's ISIs (ddof 0), ``[neurons]``.

    .. math:: CV = \frac{\sqrt{\frac{1}{n}\sum_k (I_k - \bar I)^2}}{\bar I}

    As ``elephant.statistics.cv`` (``scipy.stats.variation``) on ``isi``; dimensionless,
    so independent of ``dt``. NaN with fewer than two spikes, 0 with exactly two (see the
    module docstring). Poisson process: 1; Bernoulli null: :func:`null_cv`.

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> cv(s).round(4).tolist()
    [0.4286]
    """
    tab = _isi_table(spikes)
    mean = _per_neuron_mean(tab.intervals, tab.neuron, tab.n_intervals)
    dev2 = (tab.intervals - mean[tab.neuron]) ** 2
    var = _per_neuron_mean(dev2, tab.neuron, tab.n_intervals)
    return np.sqrt(var) / mean


def cv2(spikes: Any) -> np.ndarray:
    r"""Local coefficient of variation CV2 of each neuron (Holt et al. 1996, J Neurophysiol
    75:1806), ``[neurons]``.

    .. math:: CV_2 = \frac{1}{n-1} \sum_{k=1}^{n-1} \frac{2 |I_{k+1} - I_k|}{I_{k+1} + I_k}

    As ``elephant.statistics.cv2(isi, with_nan=True)``. NaN with fewer than three spikes.

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> cv2(s).round(4).tolist()
    [0.8571]
    """
    tab = _isi_table(spikes)
    terms = 2.0 * np.abs(tab.pair_b - tab.pair_a) / (tab.pair_a + tab.pair_b)
    return _per_neuron_mean(terms, tab.pair_neuron, tab.n_pairs)


def lv(spikes: Any) -> np.ndarray:
    r"""Local variation LV of each neuron (Shinomoto et al. 2003, Neural Comput 15:2823),
    ``[neurons]``.

    .. math:: LV = \frac{1}{n-1} \sum_{k=1}^{n-1} \frac{3 (I_k - I_{k+1})^2}{(I_k + I_{k+1})^2}

    As ``elephant.statistics.lv(isi, with_nan=True)``. NaN with fewer than three spikes.
    Gamma renewal process of shape :math:`\kappa`: :math:`LV = 3/(2\kappa + 1)`.

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> lv(s).round(4).tolist()
    [0.551]
    """
    tab = _isi_table(spikes)
    terms = 3.0 * ((tab.pair_a - tab.pair_b) / (tab.pair_a + tab.pair_b)) ** 2
    return _per_neuron_mean(terms, tab.pair_neuron, tab.n_pairs)


def lvr(spikes: Any, dt_ms: float, R_ms: float = 5.0) -> np.ndarray:
    r"""Revised local variation LvR of each neuron (Shinomoto et al. 2009, PLoS Comput Biol
    5:e1000433), ``[neurons]``.

    .. math:: LvR = \frac{3}{n-1} \sum_{k=1}^{n-1}
              \left(1 - \frac{4 I_k I_{k+1}}{(I_k + I_{k+1})^2}\right)
              \left(1 + \frac{4 R}{I_k + I_{k+1}}\right)

    with intervals in ms and refractoriness constant ``R_ms`` (``>= 0``; default 5 ms as
    in Elephant and the paper). As ``elephant.statistics.lvr(isi, R, with_nan=True)``.
    NaN with fewer than three spikes.

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> lvr(s, dt_ms=1.0).round(4).tolist()
    [2.1254]
    """
    dt = check_dt(dt_ms)
    R = check_R(R_ms)
    tab = _isi_table(spikes)
    a, b = tab.pair_a * dt, tab.pair_b * dt
    s = a + b
    terms = 3.0 * (1.0 - 4.0 * a * b / s**2) * (1.0 + 4.0 * R / s)
    return _per_neuron_mean(terms, tab.pair_neuron, tab.n_pairs)


def interval_measures(spikes: Any, dt_ms: float, R_ms: float = 5.0) -> dict[str, np.ndarray]:
    """All interval measures from one pass over the spikes (for large arrays).

    Returns ``{"isi_ms": pooled intervals, "cv", "cv2", "lv", "lvr": [neurons]}``, equal to
    :func:`pooled_isi`, :func:`cv`, :func:`cv2`, :func:`lv` and :func:`lvr`.

    >>> s = np.zeros((10, 1), bool); s[[1, 3, 8], 0] = True
    >>> sorted(interval_measures(s, dt_ms=1.0))
    ['cv', 'cv2', 'isi_ms', 'lv', 'lvr']
    """
    dt = check_dt(dt_ms)
    R = check_R(R_ms)
    tab = _isi_table(spikes)
    mean = _per_neuron_mean(tab.intervals, tab.neuron, tab.n_intervals)
    var = _per_neuron_mean((tab.intervals - mean[tab.neuron]) ** 2, tab.neuron, tab.n_intervals)
    a, b = tab.pair_a, tab.pair_b
    s = a + b
    frac = (b - a) / s
    lvr_terms = 3.0 * (1.0 - 4.0 * a * b / s**2) * (1.0 + 4.0 * R / (s * dt))
    return {
        "isi_ms": tab.intervals * dt,
        "cv": np.sqrt(var) / mean,
        "cv2": _per_neuron_mean(2.0 * np.abs(frac), tab.pair_neuron, tab.n_pairs),
        "lv": _per_neuron_mean(3.0 * frac**2, tab.pair_neuron, tab.n_pairs),
        "lvr": _per_neuron_mean(lvr_terms, tab.pair_neuron, tab.n_pairs),
    }


def check_R(R_ms: Any) -> float:
    """The LvR refractoriness constant: a finite number of ms ``>= 0``.

    >>> check_R(5)
    5.0
    """
    return check_number(R_ms, "R_ms", inclusive=True, what="a finite refractoriness constant", units="ms")


# ----------------------------------------------------------------------------------------
# the same measures on one vector of intervals (Elephant's call signature)


def _check_intervals(intervals: Any) -> np.ndarray:
    arr = np.asarray(intervals, dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("intervals must be a 1-D array of finite inter-spike intervals > 0.")
    return arr


def cv_of_intervals(intervals: Any) -> float:
    """CV (ddof 0) of one vector of intervals; NaN if empty, 0 for one interval (Elephant).

    >>> check_R(5)
    5.0

    >>> round(cv_of_intervals([2.0, 5.0]), 4)
    0.4286
    """
    v = _check_intervals(intervals)
    if v.size == 0:
        return float("nan")
    return float(v.std() / v.mean())


def cv2_of_intervals(intervals: Any) -> float:
    """CV2 of one vector of intervals (see :func:`cv2`); NaN with fewer than two intervals.

    >>> round(cv2_of_intervals([2.0, 5.0]), 4)
    0.8571
    """
    v = _check_intervals(intervals)
    if v.size < 2:
        return float("nan")
    return float(2.0 * np.mean(np.abs(np.diff(v)) / (v[:-1] + v[1:])))


def lv_of_intervals(intervals: Any) -> float:
    """LV of one vector of intervals (see :func:`lv`); NaN with fewer than two intervals.

    >>> round(lv_of_intervals([2.0, 5.0]), 4)
    0.551
    """
    v = _check_intervals(intervals)
    if v.size < 2:
        return float("nan")
    return float(3.0 * np.mean((np.diff(v) / (v[:-1] + v[1:])) ** 2))


def lvr_of_intervals(intervals_ms: Any, R_ms: float = 5.0) -> float:
    """LvR of one vector of intervals in ms (see :func:`lvr`); NaN with fewer than two.

    >>> round(lvr_of_intervals([2.0, 5.0], R_ms=1.0), 4)
    0.8659
    """
    v = _check_intervals(intervals_ms)
    R = check_R(R_ms)
    if v.size < 2:
        return float("nan")
    s = v[:-1] + v[1:]
    return float(3.0 * np.mean((1 - 4 * v[:-1] * v[1:] / s**2) * (1 + 4 * R / s)))


# ----------------------------------------------------------------------------------------
# discrete-time null: independent Bernoulli firing at probability p per step
def _q_series(q: np.ndarray, power: int, terms: int = 40) -> np.ndarray:
    """sum_{m>=0} q^m / (m+2)^power, for small q."""
    m = np.arange(terms)
    return np.sum(q[..., None] ** m / (m + 2.0) ** power, axis=-1)


def _s1(q: np.ndarray) -> np.ndarray:
    """S1(q) = sum_{s>=2} q^(s-2) / s = (-ln(1-q) - q) / q^2."""
    out = np.empty_like(q)
    small = q < 0.05
    out[small] = _q_series(q[small], 1)
    qs = q[~small]
    out[~small] = (-np.log1p(-qs) - qs) / qs**2
    return out


def _s2(q: np.ndarray) -> np.ndarray:
    """S2(q) = sum_{s>=2} q^(s-2) / s^2 = (Li2(q) - q) / q^2."""
    out = np.empty_like(q)
    small = q < 0.05
    out[small] = _q_series(q[small], 2)
    qs = q[~small]
    out[~small] = (spence(1.0 - qs) - qs) / qs**2
    return out


def _null_prepare(p: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    p_arr = check_probability(p)
    shape = p_arr.shape
    flat = p_arr.ravel().astype(float)
    ok = flat > 0
    return flat, ok, shape


def null_cv(p: Any) -> np.ndarray:
    r"""CV of the ISIs of independent Bernoulli firing at probability :math:`p` per step.

    ISIs are geometric with mean :math:`1/p` and variance :math:`(1-p)/p^2`, so
    :math:`CV = \sqrt{1 - p}`. NaN where :math:`p = 0` (no spikes).

    >>> null_cv([0.19, 0.5]).round(4).tolist()
    [0.9, 0.7071]
    """
    p_arr = check_probability(p)
    with np.errstate(invalid="ignore"):
        return np.where(p_arr > 0, np.sqrt(1.0 - p_arr), np.nan)


def null_cv2(p: Any) -> np.ndarray:
    r"""Expected CV2 of independent Bernoulli firing at probability :math:`p` per step.

    With geometric intervals :math:`k, l` and :math:`q = 1 - p`, summing
    :math:`2|k-l|/(k+l)` over the geometric law in closed form gives

    .. math:: E[CV_2] = q + p^2\,\frac{\operatorname{artanh}(q) - q}{q^2},

    which tends to 1 (Poisson) as :math:`p \to 0` and to 0 (regular) as :math:`p \to 1`.
    NaN where :math:`p = 0`.

    >>> null_cv2([0.5]).round(4).tolist()
    [0.5493]
    """
    flat, ok, shape = _null_prepare(p)
    out = np.full(flat.shape, np.nan)
    q = 1.0 - flat[ok]
    pp = flat[ok]
    corr = np.empty_like(q)
    small = q < 0.05
    m = np.arange(30)
    # (artanh(q) - q) / q^2 = sum_{m>=1} q^(2m-1) / (2m+1)
    corr[small] = np.sum(q[small, None] ** (2 * m[1:] - 1) / (2 * m[1:] + 1.0), axis=-1)
    qb = q[~small]
    corr[~small] = (np.arctanh(qb) - qb) / qb**2
    out[ok] = q + pp**2 * corr
    return out.reshape(shape)


def null_lv(p: Any) -> np.ndarray:
    r"""Expected LV of independent Bernoulli firing at probability :math:`p` per step.

    With geometric intervals and :math:`q = 1 - p`, grouping pairs by :math:`s = k + l`
    (:math:`\sum_k (2k - s)^2 = s(s-1)(s-2)/3`) gives

    .. math:: E[LV] = \sum_{s \ge 2} p^2 q^{s-2} \frac{(s-1)(s-2)}{s}
              = q - p + 2 p^2 \frac{-\ln p - q}{q^2},

    1 as :math:`p \to 0` (Poisson) and 0 at :math:`p = 1`. NaN where :math:`p = 0`.

    >>> null_lv([0.5]).round(4).tolist()
    [0.3863]
    """
    flat, ok, shape = _null_prepare(p)
    out = np.full(flat.shape, np.nan)
    pp = flat[ok]
    q = 1.0 - pp
    out[ok] = q - pp + 2.0 * pp**2 * _s1(q)
    return out.reshape(shape)


def null_lvr(p: Any, dt_ms: float, R_ms: float = 5.0) -> np.ndarray:
    r"""Expected LvR of independent Bernoulli firing at probability :math:`p` per step.

    Intervals are :math:`k\,\Delta t`; since :math:`1 - 4kl/(k+l)^2 = ((k-l)/(k+l))^2`,

    .. math:: E[LvR] = E[LV] + \frac{4R}{\Delta t}\left(p - 3p^2 S_1(q) + 2p^2 S_2(q)\right),

    with :math:`S_1(q) = (-\ln(1-q) - q)/q^2` and :math:`S_2(q) = (\mathrm{Li}_2(q) - q)/q^2`.
    For small :math:`p` this is :math:`1 + 4R\lambda`, Poisson's LvR at rate
    :math:`\lambda = p/\Delta t`. NaN where :math:`p = 0`.

    >>> null_lvr([0.5], dt_ms=1.0).round(4).tolist()
    [2.0871]
    """
    dt = check_dt(dt_ms)
    R = check_R(R_ms)
    flat, ok, shape = _null_prepare(p)
    out = np.full(flat.shape, np.nan)
    pp = flat[ok]
    q = 1.0 - pp
    base = q - pp + 2.0 * pp**2 * _s1(q)
    out[ok] = base + 4.0 * (R / dt) * (pp - 3.0 * pp**2 * _s1(q) + 2.0 * pp**2 * _s2(q))
    return out.reshape(shape)
