"""The catalogue of firing measures computed on one layer, each against its null and biology.

:data:`DEFINITIONS` lists every measure (label, units, definition with its source);
:func:`layer_measures` computes them all on one layer ``[samples, T, neurons]`` and
:func:`analyze_spikes` is its checked public entry. Each measure is summarised by
:func:`summarize` and compared (:func:`measure_entry`) with the discrete-time Bernoulli
null (each neuron firing independently in each step with its own probability p; analytic
closed forms and a shuffled draw) and with the biological range of
:mod:`tbnn.analysis.reference`.

Adding a measure: one function in the measure's module (rates, irregularity, variability,
correlation, sparseness) and one record registered in :mod:`tbnn.analysis.measures`;
:func:`layer_measures` computes every registered measure, in registration order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.analysis import correlation as corr
from tbnn.analysis import irregularity as irr
from tbnn.analysis import rates
from tbnn.analysis.measures import MEASURES, LayerContext, get_measure
from tbnn.analysis.measures.registry import RegistryView
from tbnn.analysis.reference import QUALITATIVE, verdict
from tbnn.core.validate import check_dt, check_int, check_labels
from tbnn.io.spikes import check_spikes

__all__ = ["DEFINITIONS", "analyze_spikes", "layer_measures", "measure_entry", "summarize",
           "trim_distribution"]

SUMMARY_FIELDS = ("mean", "median", "std", "min", "max", "n", "n_nan")


def summarize(values: Any) -> dict[str, float | int]:
    """Summary of a set of values: mean, median, std (ddof 0), min, max over the defined
    (non-NaN) values, ``n`` defined values and ``n_nan`` undefined ones.

    >>> summarize([1.0, 3.0, float("nan")])
    {'mean': 2.0, 'median': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0, 'n': 2, 'n_nan': 1}
    """
    v = np.asarray(values, dtype=float).ravel()
    nan = np.isnan(v)
    d = v[~nan]
    if d.size == 0:
        out: dict[str, Any] = {k: float("nan") for k in SUMMARY_FIELDS[:5]}
    else:
        out = {"mean": float(d.mean()), "median": float(np.median(d)), "std": float(d.std()),
               "min": float(d.min()), "max": float(d.max())}
    out["n"] = int(d.size)
    out["n_nan"] = int(nan.sum())
    return out


DEFINITIONS = RegistryView(lambda m: (m.label, m.units, m.definition))
"""Every registered measure: key -> (label, units, definition with its source), a live view of
:data:`tbnn.analysis.measures.MEASURES`."""


def measure_entry(key: str, values: Any, analytic: Any = None, shuffled: Any = None,
                  statistic: str | None = None, note: str | None = None,
                  mask_analytic: bool | None = None) -> dict[str, Any]:
    """One measure's entry of ``analysis.json``: the network's values summarised, the null
    (analytic closed form and shuffled draw) summarised with the same statistic, the
    biological band of the measure's record and the verdict.

    ``statistic`` (median or mean across neurons, pairs or steps), ``note`` and
    ``mask_analytic`` default to the record's (:mod:`tbnn.analysis.measures`). With
    ``mask_analytic`` the analytic null is summarised over the same neurons where the
    network's value is defined.

    Raises
    ------
    ValueError
        ``key`` is not a registered measure.

    >>> e = measure_entry("cv", [0.5, 0.7, float("nan")], analytic=[0.9, 0.9, 0.9])
    >>> e["value"], e["summary"]["n_nan"], e["null"]["analytic"]["summary"]["n"], e["verdict"]
    (0.6, 1, 2, 'below')
    """
    m = get_measure(key)
    ref = m.band
    stat = m.statistic if statistic is None else statistic
    note = m.null_note if note is None else note
    mask_analytic = m.mask_analytic if mask_analytic is None else mask_analytic
    label, units, definition = m.label, m.units, m.definition
    vals = np.asarray(values, dtype=float).ravel()
    summ = summarize(vals)
    value = summ[stat]
    null: dict[str, Any] = {"analytic": None, "shuffled": None, "note": note}
    if analytic is not None:
        a = np.asarray(analytic, dtype=float).ravel()
        if mask_analytic and a.shape == vals.shape:
            a = a[~np.isnan(vals)]  # same neurons/pairs as the network's defined values
        s = summarize(a)
        null["analytic"] = {"value": s[stat], "summary": s}
    if shuffled is not None:
        s = summarize(shuffled)
        null["shuffled"] = {"value": s[stat], "summary": s}
    return {
        "label": label,
        "units": units,
        "definition": definition,
        "statistic": stat,
        "value": value,
        "summary": summ,
        "null": null,
        "biology": ref.as_dict() if ref is not None else None,
        "verdict": verdict(value, ref) if ref is not None else None,
    }


def trim_distribution(dist: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    nz = np.flatnonzero(dist > tol)
    return dist[: (nz.max() + 1 if nz.size else 1)]


def layer_measures(arr: np.ndarray, dt: float, labels: np.ndarray | None, seed: int,
                   bin_steps: int, max_pair_neurons: int, R_ms: float
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every measure of one validated layer ``arr [samples, T, neurons]``.

    Returns the per-layer dict of ``analysis.json`` and the arrays the figures draw:
    ``p``, ``rate_hz``, ``cv``, ``isis``, ``isis_sh``, ``corr``, ``corr_sh``, ``noise``,
    ``noise_sh`` and ``distributions`` (measure key -> dict of ``network``, ``analytic``,
    ``shuffled`` value arrays, any of them None).
    """
    S, T, N = arr.shape
    ctx = LayerContext(arr, dt, labels, seed=seed, bin_steps=bin_steps,
                       max_pair_neurons=max_pair_neurons, R_ms=R_ms)
    m: dict[str, Any] = {}
    dists: dict[str, dict[str, Any]] = {}
    for key, rec in MEASURES.items():
        values = rec.network(ctx)
        if values is None:  # not defined on this layer (one sample, no labels, one neuron)
            continue
        analytic = None if rec.null is None else rec.null(ctx, values)
        shuffled = rec.network(ctx.shuffled)
        m[key] = measure_entry(key, values, analytic, shuffled)
        dists[key] = {"network": np.asarray(values, dtype=float).ravel(),
                      "analytic": None if analytic is None
                      else np.asarray(analytic, dtype=float).ravel(),
                      "shuffled": None if shuffled is None
                      else np.asarray(shuffled, dtype=float).ravel()}
    p = ctx.p
    r_hz = rates.rate_hz(arr, dt)
    pairs_info = {"neurons_used": int(ctx.pair_idx.size), "bin_steps": int(bin_steps),
                  "bin_ms": bin_steps * dt}

    def net(key: str, side: str = "network", empty: Any = None) -> Any:
        d = dists.get(key)
        return empty if d is None else d[side]

    c_net, c_sh = net("correlation", empty=np.array([])), net("correlation", "shuffled", np.array([]))
    nc, nc_sh = net("noise_correlation"), net("noise_correlation", "shuffled")
    sh = ctx.shuffled.arr
    fit = rates.lognormal_fit(r_hz, seed=seed, quantum=1000.0 / (S * T * dt))  # counted rates: ties broken
    stmt, cite = QUALITATIVE["rate_distribution"]
    rate_dist = {
        "lognormal_mu": fit.mu, "lognormal_sigma": fit.sigma, "median_hz": fit.median_hz,
        "n_fit": fit.n_fit, "n_silent": fit.n_excluded, "ks_statistic": fit.ks_statistic,
        "ks_pvalue": fit.ks_pvalue, "lilliefors_pvalue": fit.lilliefors_pvalue, "n_boot": fit.n_boot,
        "verdict": fit.verdict(),
        "biology": {"statement": stmt, "citation": cite},
    }
    complexity = {
        "network": trim_distribution(corr.complexity_distribution(arr)),
        "null_analytic": trim_distribution(corr.null_complexity(p)),
        "null_shuffled": trim_distribution(corr.complexity_distribution(sh)),
    }
    result = {
        "neurons": int(N), "samples": int(S), "timesteps": int(T), "dt_ms": dt,
        "measures": m, "rate_distribution": rate_dist, "complexity": complexity,
        "pairs": pairs_info,
    }
    figdata = {"p": p, "rate_hz": r_hz, "cv": ctx.intervals["cv"], "isis": ctx.intervals["isi_ms"],
               "isis_sh": ctx.shuffled.intervals["isi_ms"],
               "corr": c_net, "corr_sh": c_sh, "noise": nc, "noise_sh": nc_sh,
               "distributions": dists}
    return result, figdata


def analyze_spikes(spikes: Any, dt_ms: float, labels: Any = None, *, seed: int = 0,
                   bin_steps: int = 1, max_pair_neurons: int = 512, R_ms: float = 5.0
                   ) -> dict[str, Any]:
    """Every measure of one layer against its null and biology (the per-layer dict of
    ``analysis.json``, with NaN as float NaN).

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]``
    dt_ms : float
        Step duration in ms (``> 0``).
    labels : int array ``[samples]``, optional
        Class of each sample; needed for the trial-view Fano factor and noise correlations.
    seed : int
        Seed of the shuffle null (and of the neuron subset for pair measures).
    bin_steps : int
        Bin width of the binned-train correlations, in steps.
    max_pair_neurons : int
        Pair measures use at most this many neurons (a seeded random subset).
    R_ms : float
        LvR refractoriness constant.

    Returns
    -------
    dict
        ``neurons``, ``samples``, ``timesteps``, ``dt_ms``, ``measures`` (key -> entry of
        :func:`measure_entry`), ``rate_distribution``, ``complexity``, ``pairs``.

    Raises
    ------
    ValueError
        Naming the parameter, on a non-boolean or non-3-D ``spikes``, a bad ``dt_ms``,
        ``labels`` without one class per sample, or a bad integer option.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(0).random((20, 8, 6)) < 0.2
    >>> r = analyze_spikes(s, dt_ms=1.0, labels=np.arange(20) % 2)
    >>> r["neurons"], r["measures"]["cv"]["statistic"], r["measures"]["cv"]["biology"]["low"]
    (6, 'median', 0.7)
    """
    arr = check_spikes(spikes, ndims=(3,))
    dt = check_dt(dt_ms)
    lab = None if labels is None else check_labels(labels, arr.shape[0], minimum=None, numpy=True)
    b = check_int(bin_steps, "bin_steps")
    mp = check_int(max_pair_neurons, "max_pair_neurons", minimum=2)
    R = irr.check_R(R_ms)
    seed = check_int(seed, "seed", minimum=0)
    return layer_measures(arr, dt, lab, seed, b, mp, R)[0]
