"""The catalogue of firing measures computed on one layer, each against its null and biology.

:data:`DEFINITIONS` lists every measure (label, units, definition with its source);
:func:`layer_measures` computes them all on one layer ``[samples, T, neurons]`` and
:func:`analyze_spikes` is its checked public entry. Each measure is summarised by
:func:`summarize` and compared (:func:`measure_entry`) with the discrete-time Bernoulli
null (each neuron firing independently in each step with its own probability p; analytic
closed forms and a shuffled draw) and with the biological range of
:mod:`tbnn.analysis.reference`.

Adding a measure: one function in the measure's module (rates, irregularity, variability,
correlation, sparseness), one line in :data:`DEFINITIONS` and one ``add(...)`` call in
:func:`layer_measures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.analysis import correlation as corr
from tbnn.analysis import irregularity as irr
from tbnn.analysis import rates
from tbnn.analysis import sparseness as sp
from tbnn.analysis import variability as var
from tbnn.analysis.reference import QUALITATIVE, REFERENCES, verdict
from tbnn.io.spikes import check_dt, check_labels, check_positive_int, check_spikes

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


DEFINITIONS: dict[str, tuple[str, str, str]] = {
    "rate_hz": ("firing rate", "Hz",
                "r_i = n_i / (L dt) over the stream train (Elephant mean_firing_rate)"),
    "rate_per_step": ("spike probability per step", "", "p_i = n_i / L"),
    "fraction_silent": ("fraction of silent neurons", "", "neurons with no spike in any sample"),
    "fraction_active": ("fraction of neurons active per step", "",
                        "mean over steps of the fraction of neurons spiking in that step"),
    "isi_ms": ("inter-spike interval", "ms", "I_k = t_{k+1} - t_k, pooled over neurons"),
    "cv": ("CV of ISIs", "", "std(I)/mean(I), ddof 0 (Elephant cv)"),
    "cv2": ("CV2", "", "mean 2|I_{k+1}-I_k|/(I_{k+1}+I_k) (Holt et al. 1996; Elephant cv2)"),
    "lv": ("LV", "", "mean 3(I_k-I_{k+1})^2/(I_k+I_{k+1})^2 (Shinomoto et al. 2003; Elephant lv)"),
    "lvr": ("LvR (R = 5 ms)", "",
            ("3/(n-1) sum (1-4 I_k I_{k+1}/(I_k+I_{k+1})^2)(1+4R/(I_k+I_{k+1})) "
             "(Shinomoto et al. 2009; Elephant lvr)")),
    "fano_stream": ("Fano factor, stream view", "",
                    ("Var/mean of counts in consecutive windows of T steps of the stream "
                     "train (Elephant fanofactor)")),
    "fano_trial": ("Fano factor, trial view", "",
                   "Var/mean of counts across samples of one class, averaged over classes"),
    "correlation": ("pairwise correlation of binned trains", "",
                    "Pearson r of binned stream trains (Elephant correlation_coefficient)"),
    "noise_correlation": ("spike-count noise correlation", "",
                          "Pearson r of counts across samples of one class, averaged over classes"),
    "synchrony_chi2": ("synchrony chi^2", "",
                       "Var(population mean)/mean single-neuron variance (Golomb 2007)"),
    "lifetime_sparseness": ("lifetime sparseness (Vinje-Gallant)", "",
                            "S = (1-a)/(1-1/n) over samples, a = <r>^2/<r^2>"),
    "population_sparseness": ("population sparseness (Vinje-Gallant)", "",
                              "S = (1-a)/(1-1/n) over neurons, per sample"),
    "lifetime_activity_ratio": ("lifetime activity ratio (Treves-Rolls)", "",
                                "a = <r>^2/<r^2> over samples"),
    "population_activity_ratio": ("population activity ratio (Treves-Rolls)", "",
                                  "a = <r>^2/<r^2> over neurons, per sample"),
}
"""Every measure of the catalogue: key -> (label, units, definition with its source)."""


def measure_entry(key: str, values: Any, analytic: Any = None, shuffled: Any = None,
                  statistic: str = "median", note: str = "", mask_analytic: bool = True
                  ) -> dict[str, Any]:
    """One measure's entry of ``analysis.json``: the network's values summarised, the null
    (analytic closed form and shuffled draw) summarised with the same statistic, the
    biological range of :data:`tbnn.analysis.reference.REFERENCES` and the verdict.

    The statistic is the reference's (median or mean across neurons, pairs or steps), else
    ``statistic``. With ``mask_analytic`` the analytic null is summarised over the same
    neurons where the network's value is defined.

    >>> e = measure_entry("cv", [0.5, 0.7, float("nan")], analytic=[0.9, 0.9, 0.9])
    >>> e["value"], e["summary"]["n_nan"], e["null"]["analytic"]["summary"]["n"], e["verdict"]
    (0.6, 1, 2, 'below')
    """
    label, units, definition = DEFINITIONS[key]
    ref = REFERENCES.get(key)
    stat = ref.statistic if ref is not None else statistic
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
    sh = rates.shuffle_bins(arr, seed=seed)
    p = rates.rate_per_step(arr)
    p_sh = rates.rate_per_step(sh)
    m: dict[str, Any] = {}
    dists: dict[str, dict[str, Any]] = {}

    def add(key: str, values: Any, analytic: Any = None, shuffled: Any = None, **kw: Any
            ) -> None:
        m[key] = measure_entry(key, values, analytic, shuffled, **kw)
        dists[key] = {"network": np.asarray(values, dtype=float).ravel(),
                      "analytic": None if analytic is None
                      else np.asarray(analytic, dtype=float).ravel(),
                      "shuffled": None if shuffled is None
                      else np.asarray(shuffled, dtype=float).ravel()}

    same = "equal to the network's by construction (the null fires at each neuron's own p)"
    r_hz = rates.rate_hz(arr, dt)
    add("rate_hz", r_hz, r_hz, rates.rate_hz(sh, dt), note=same)
    add("rate_per_step", p, p, p_sh, statistic="mean", note=same)
    fs = rates.fraction_silent(arr)
    add("fraction_silent", [fs], [fs], [rates.fraction_silent(sh)],
        statistic="mean", note=same)
    add("fraction_active", rates.fraction_active_per_step(arr),
        [p.mean()], rates.fraction_active_per_step(sh),
        mask_analytic=False, note="analytic: mean p over neurons")
    im = irr.interval_measures(arr, dt, R_ms)
    im_sh = irr.interval_measures(sh, dt, R_ms)
    isis, isis_sh, cv = im["isi_ms"], im_sh["isi_ms"], im["cv"]
    add("isi_ms", isis, None, isis_sh, statistic="median",
        note="shuffled only; the null's ISIs are geometric with mean dt/p")
    defined = "analytic: closed form at each neuron's p, over the neurons where the network " \
              "value is defined"
    add("cv", cv, irr.null_cv(p), im_sh["cv"], note=defined + "; sqrt(1-p)")
    add("cv2", im["cv2"], irr.null_cv2(p), im_sh["cv2"], note=defined)
    add("lv", im["lv"], irr.null_lv(p), im_sh["lv"], note=defined)
    add("lvr", im["lvr"], irr.null_lvr(p, dt, R_ms), im_sh["lvr"], note=defined)
    if S >= 2:
        add("fano_stream", var.fano_stream(arr), var.null_fano(p),
            var.fano_stream(sh), note=defined + "; 1-p, window = T steps")
    if labels is not None:
        add("fano_trial", var.fano_trial(arr, labels), var.null_fano(p),
            var.fano_trial(sh, labels), note=defined + "; 1-p")
    # pairs: a seeded subset of neurons if the layer is large
    if N > max_pair_neurons:
        idx = np.sort(np.random.default_rng(seed).choice(N, max_pair_neurons, replace=False))
    else:
        idx = np.arange(N)
    pairs_info = {"neurons_used": int(idx.size), "bin_steps": int(bin_steps),
                  "bin_ms": bin_steps * dt}
    c_net = c_sh = np.array([])
    if idx.size >= 2 and S * T // bin_steps >= 2:
        c_net = corr.pairwise_correlations(arr[:, :, idx], bin_steps)
        c_sh = corr.pairwise_correlations(sh[:, :, idx], bin_steps)
        add("correlation", c_net, np.zeros_like(c_net), c_sh,
            statistic="mean", note="analytic: 0 for independent neurons")
    nc = nc_sh = None
    if labels is not None and idx.size >= 2:
        nc = corr.noise_correlations(arr[:, :, idx], labels)
        nc_sh = corr.noise_correlations(sh[:, :, idx], labels)
        add("noise_correlation", nc, np.zeros_like(nc), nc_sh,
            note="analytic: 0 for independent neurons")
    add("synchrony_chi2", [corr.synchrony_chi2(arr)],
        [corr.null_synchrony_chi2(N)], [corr.synchrony_chi2(sh)],
        statistic="mean", mask_analytic=False,
        note="analytic: 1/N for independent neurons")
    if S >= 2:
        add("lifetime_sparseness", sp.lifetime_sparseness(arr),
            sp.null_lifetime_sparseness(p, T, S), sp.lifetime_sparseness(sh),
            note=defined + "; counts Binomial(T, p), ratio of expectations")
        add("lifetime_activity_ratio", sp.lifetime_sparseness(arr, "treves_rolls"),
            sp.null_lifetime_sparseness(p, T, S, "treves_rolls"),
            sp.lifetime_sparseness(sh, "treves_rolls"), note=defined)
    if N >= 2:
        add("population_sparseness", sp.population_sparseness(arr),
            [sp.null_population_sparseness(p, T)], sp.population_sparseness(sh),
            statistic="mean", mask_analytic=False,
            note="analytic: counts Binomial(T, p_i), ratio of expectations")
        add("population_activity_ratio", sp.population_sparseness(arr, "treves_rolls"),
            [sp.null_population_sparseness(p, T, "treves_rolls")],
            sp.population_sparseness(sh, "treves_rolls"), statistic="mean",
            mask_analytic=False, note="analytic: counts Binomial(T, p_i)")
    fit = rates.lognormal_fit(r_hz)
    stmt, cite = QUALITATIVE["rate_distribution"]
    rate_dist = {
        "lognormal_mu": fit.mu, "lognormal_sigma": fit.sigma, "median_hz": fit.median_hz,
        "n_fit": fit.n_fit, "n_silent": fit.n_excluded, "ks_statistic": fit.ks_statistic,
        "ks_pvalue": fit.ks_pvalue,
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
    figdata = {"p": p, "rate_hz": r_hz, "cv": cv, "isis": isis, "isis_sh": isis_sh,
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
    lab = None if labels is None else check_labels(labels, arr.shape[0])
    b = check_positive_int(bin_steps, "bin_steps")
    mp = check_positive_int(max_pair_neurons, "max_pair_neurons", minimum=2)
    irr.check_R(R_ms)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    return layer_measures(arr, dt, lab, int(seed), b, mp, float(R_ms))[0]
