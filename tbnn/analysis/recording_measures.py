r"""The network's firing statistics on a recording, with Elephant, and the two side by side.

:func:`recording_measures` computes on a :class:`tbnn.io.recording.Recording` the measures
that :func:`tbnn.analysis.report.analyze_spikes` computes on a network layer, under the
same keys, in continuous time with Elephant 1.2's definitions
(``elephant.statistics``, ``elephant.spike_train_correlation``):

========================  ===================================================================
key                       definition on the recording (per unit, pair, trial or bin)
========================  ===================================================================
``rate_hz``               ``mean_firing_rate`` of the unit's stream train (trials end to end)
``isi_ms``                ``isi`` of the stream trains, pooled over units
``cv``                    ``cv`` (``scipy.stats.variation``, ddof 0) of the unit's ISIs
``cv2``, ``lv``, ``lvr``  ``cv2``, ``lv``, ``lvr(R)`` of the unit's ISIs (``with_nan=True``)
``fano_stream``           ``fanofactor`` of the counts in consecutive windows of the stream
``fano_trial``            ``fanofactor`` across the trials of one condition, averaged over
                          conditions
``correlation``           ``correlation_coefficient`` of the stream trains binned at ``bin_ms``
``noise_correlation``     ``correlation_coefficient`` of the trial counts within a condition,
                          averaged over conditions (each trial one bin)
``lifetime_sparseness``   Vinje–Gallant over trials of the rates per trial (unit by unit)
``population_sparseness`` Vinje–Gallant over units of the rates per trial (trial by trial)
``fraction_active``       fraction of units with a spike in each bin of ``dt_ms`` (the
                          network's "fraction of neurons active per step"), needs ``dt_ms``
========================  ===================================================================

As for the network, intervals are taken on the stream view, so an interval may span a
trial boundary. Undefined values (a unit with fewer than three spikes for CV2, a silent
window...) are NaN and counted, not dropped.

Null: a Poisson process at each unit's own rate :math:`\lambda_i` (the continuous-time
counterpart of the network's Bernoulli null): :math:`CV = CV_2 = LV = 1`,
:math:`LvR = 1 + 4 R \lambda` (with :math:`E[1/(I_1 + I_2)] = \lambda` for exponential
intervals), Fano factor 1, correlations 0, fraction active :math:`1 - e^{-\lambda \Delta t}`
and sparseness from Poisson counts (ratio of expectations, as
:func:`tbnn.analysis.sparseness.null_lifetime_sparseness`).

:func:`compare_with_recording` puts a network layer (its ``analyze_spikes`` dict, or its
spikes) beside a recording, measure by measure, with both nulls and the literature band of
:mod:`tbnn.analysis.reference`.

>>> import numpy as np
>>> from tbnn.io.recording import Recording
>>> rec = Recording(("a", "b"), [[np.array([.1, .3, .6]), np.array([.2, .5, .9])]],
...                 np.array([0.0]), np.array([1.0]))
>>> m = recording_measures(rec)
>>> m["rate_hz"]["values"].tolist()
[3.0, 3.0]
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tbnn.analysis.catalogue import analyze_spikes, summarize
from tbnn.analysis.reference import REFERENCES, verdict
from tbnn.analysis.sparseness import vinje_gallant
from tbnn.io.recording import Recording
from tbnn.io.spikes import check_dt, check_spikes

__all__ = ["STATISTICS", "compare_with_recording", "recording_measures"]

STATISTICS: dict[str, str] = {
    "rate_hz": "median", "isi_ms": "median", "cv": "median", "cv2": "median", "lv": "median",
    "lvr": "median", "fano_stream": "mean", "fano_trial": "mean", "correlation": "mean",
    "noise_correlation": "mean", "lifetime_sparseness": "median",
    "population_sparseness": "mean", "fraction_active": "mean",
}
"""Measure key -> the summary compared (the network analysis's choice: the reference's
``statistic`` where there is a reference)."""

_NULL_NOTE = "Poisson process at each unit's own rate"


def _entry(key: str, values: Any, null_value: float, note: str = _NULL_NOTE) -> dict[str, Any]:
    vals = np.asarray(values, dtype=float).ravel()
    s = summarize(vals)
    stat = STATISTICS[key]
    return {"values": vals, "statistic": stat, "value": s[stat], "summary": s,
            "null": {"value": float(null_value), "note": note}}


def _elephant():
    try:
        import elephant.spike_train_correlation as stc
        import elephant.statistics as es
        import quantities as pq
        from elephant.conversion import BinnedSpikeTrain
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("recording measures need elephant, neo and quantities: "
                          "pip install tbnn[bio]") from exc
    return es, stc, pq, BinnedSpikeTrain


def _offdiag(m: np.ndarray) -> np.ndarray:
    return np.asarray(m, dtype=float)[np.triu_indices(m.shape[0], k=1)]


def recording_measures(rec: Recording, dt_ms: float | None = None, *,
                       window_ms: float | None = None, bin_ms: float | None = None,
                       R_ms: float = 5.0) -> dict[str, dict[str, Any]]:
    r"""Every firing measure of a recording, with Elephant, and its Poisson null.

    Parameters
    ----------
    rec : Recording
    dt_ms : float, optional
        The network's step in ms; gives ``fraction_active`` (fraction of units with a
        spike in each bin of ``dt_ms``) and the default ``bin_ms``.
    window_ms : float, optional
        Window of the stream-view Fano factor; default the shortest trial with two trials
        or more, else the shorter of 1000 ms and a tenth of the recording. At least two windows must fit in the stream.
    bin_ms : float, optional
        Bin of the pairwise correlations; default ``dt_ms``, else 10 ms.
    R_ms : float
        LvR refractoriness constant (default 5 ms, as Elephant and Shinomoto et al. 2009).

    Returns
    -------
    dict
        ``{key: {"values", "statistic", "value", "summary", "null": {"value", "note"}}}``
        for the keys in the module docstring (``fano_trial`` and ``noise_correlation``
        only with two, resp. three, trials of a condition; sparseness with two trials /
        units).

    Raises
    ------
    ValueError
        A bad ``dt_ms``, ``window_ms``, ``bin_ms`` or ``R_ms``, or a window / bin longer
        than half the stream.

    Examples
    --------
    >>> import numpy as np
    >>> from tbnn.io.recording import Recording
    >>> rec = Recording(("u",), [[np.array([0.1, 0.2, 0.4, 0.8])]], [0.0], [1.0])
    >>> round(recording_measures(rec)["cv"]["value"], 6)
    0.534522
    """
    if not isinstance(rec, Recording):
        raise ValueError(f"rec must be a tbnn.io.recording.Recording, got {type(rec).__name__}.")
    es, stc, pq, BinnedSpikeTrain = _elephant()
    dt = None if dt_ms is None else check_dt(dt_ms)
    R = check_dt(R_ms, "R_ms") if R_ms != 0 else 0.0
    stream = rec.stream()
    total_ms = float(rec.durations.sum()) * 1000.0
    if window_ms is None:
        window_ms = (float(rec.durations.min()) * 1000.0 if rec.n_trials >= 2
                     else min(1000.0, total_ms / 10.0))
    win = check_dt(window_ms, "window_ms")
    b_ms = check_dt(bin_ms if bin_ms is not None else (dt if dt is not None else 10.0), "bin_ms")
    for name, v in (("window_ms", win), ("bin_ms", b_ms)):
        if 2 * v > total_ms * (1 + 1e-12):
            raise ValueError(f"{name} must leave at least two windows in the {total_ms:g} ms "
                             f"recording, got {v:g}.")
    m: dict[str, dict[str, Any]] = {}
    rates = np.array([float(es.mean_firing_rate(st).rescale("Hz").magnitude) for st in stream])
    m["rate_hz"] = _entry("rate_hz", rates, float(np.median(rates)),
                          note=_NULL_NOTE + ": equal to the recording's by construction")
    isis = [es.isi(st).rescale("ms").magnitude for st in stream]
    m["isi_ms"] = _entry("isi_ms", np.concatenate(isis) if isis else [],
                         float(np.median(1000.0 * math.log(2) / rates)),
                         note=_NULL_NOTE + ": exponential ISIs, median ln 2 / rate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = np.array([float(es.cv(v)) if v.size >= 1 else np.nan for v in isis])
        cv2 = np.array([float(es.cv2(v, with_nan=True)) for v in isis])
        lv = np.array([float(es.lv(v, with_nan=True)) for v in isis])
        lvr = np.array([float(es.lvr(v * pq.ms, R=R * pq.ms, with_nan=True)) for v in isis])
    m["cv"] = _entry("cv", cv, 1.0)
    m["cv2"] = _entry("cv2", cv2, 1.0)
    m["lv"] = _entry("lv", lv, 1.0)
    lvr_null = 1.0 + 4.0 * R * rates / 1000.0
    m["lvr"] = _entry("lvr", lvr, float(np.median(lvr_null[~np.isnan(lvr)]))
                      if np.any(~np.isnan(lvr)) else float("nan"),
                      note=_NULL_NOTE + ": 1 + 4 R rate")
    # Fano factor, stream view: counts in consecutive windows of the stream
    n_win = math.floor(total_ms / win + 1e-9)
    edges = np.arange(n_win + 1) * win / 1000.0
    times = rec.stream_times()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = []
        for t in times:
            idx = np.searchsorted(t, edges, side="left")
            windows = [t[idx[j]:idx[j + 1]] for j in range(n_win)]
            fs.append(float(es.fanofactor(windows)))
    m["fano_stream"] = _entry("fano_stream", fs, 1.0)
    # trial view: trials of one condition
    conds = np.unique(rec.conditions)
    by_cond = [np.flatnonzero(rec.conditions == c) for c in conds]
    if any(ix.size >= 2 for ix in by_cond):
        ft = np.full((len(by_cond), rec.n_units), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j, ix in enumerate(by_cond):
                if ix.size < 2:
                    continue
                for i in range(rec.n_units):
                    ft[j, i] = float(es.fanofactor([rec.trials[k][i] for k in ix]))
        n_def = np.sum(~np.isnan(ft), axis=0)
        vals = np.where(n_def > 0, np.nansum(ft, axis=0) / np.maximum(n_def, 1), np.nan)
        m["fano_trial"] = _entry("fano_trial", vals, 1.0)
    # pairwise correlations of binned stream trains
    if rec.n_units >= 2:
        n_bins = math.floor(total_ms / b_ms + 1e-9)
        bst = BinnedSpikeTrain([st.rescale("ms") for st in stream], bin_size=b_ms * pq.ms,
                               t_start=0 * pq.ms, t_stop=n_bins * b_ms * pq.ms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = stc.correlation_coefficient(bst)
        m["correlation"] = _entry("correlation", _offdiag(c), 0.0)
        # noise correlations: each trial of a condition is one bin of a count train
        counts = rec.counts()
        per = []
        for ix in by_cond:
            if ix.size < 3:
                continue
            trains = [np.repeat(np.arange(ix.size) + 0.5, counts[ix, i]) * pq.s
                      for i in range(rec.n_units)]
            import neo

            sts = [neo.SpikeTrain(t, t_start=0 * pq.s, t_stop=ix.size * pq.s) for t in trains]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per.append(_offdiag(stc.correlation_coefficient(
                    BinnedSpikeTrain(sts, bin_size=1 * pq.s))))
        if per:
            st_ = np.stack(per)
            n_def = np.sum(~np.isnan(st_), axis=0)
            vals = np.where(n_def > 0, np.nansum(st_, axis=0) / np.maximum(n_def, 1), np.nan)
            m["noise_correlation"] = _entry("noise_correlation", vals, 0.0)
    # sparseness of the rates per trial
    resp = rec.counts() / rec.durations[:, None]  # [trials, units], Hz
    lam = resp.sum(0) / rec.n_trials  # not the rate: the mean of per-trial rates
    inv_d = float(np.mean(1.0 / rec.durations))
    if rec.n_trials >= 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            a_null = lam**2 / (lam**2 + lam * inv_d)
        s_null = (1 - a_null) / (1 - 1 / rec.n_trials)
        m["lifetime_sparseness"] = _entry("lifetime_sparseness", vinje_gallant(resp, axis=0),
                                          float(np.nanmedian(s_null)),
                                          note=_NULL_NOTE + ": Poisson counts, ratio of "
                                                            "expectations")
    if rec.n_units >= 2:
        a_pop = float(np.mean(lam) ** 2 / np.mean(lam**2 + lam * inv_d))
        m["population_sparseness"] = _entry(
            "population_sparseness", vinje_gallant(resp, axis=1),
            (1 - a_pop) / (1 - 1 / rec.n_units),
            note=_NULL_NOTE + ": Poisson counts, ratio of expectations")
    if dt is not None:
        n_bins = math.floor(total_ms / dt + 1e-9)
        if n_bins < 1:
            raise ValueError(f"dt_ms must be at most the recording's length ({total_ms:g} ms), "
                             f"got {dt:g}.")
        bst = BinnedSpikeTrain([st.rescale("ms") for st in stream], bin_size=dt * pq.ms,
                               t_start=0 * pq.ms, t_stop=n_bins * dt * pq.ms)
        active = bst.to_bool_array().mean(axis=0)
        m["fraction_active"] = _entry("fraction_active", active,
                                      float(np.mean(1.0 - np.exp(-rates * dt / 1000.0))),
                                      note=_NULL_NOTE + ": mean of 1 - exp(-rate dt)")
    return m


# ----------------------------------------------------------------------------------------
def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def compare_with_recording(network: Any, recording: Recording, dt_ms: float, *,
                           labels: Any = None, window_ms: float | None = None,
                           bin_ms: float | None = None, R_ms: float = 5.0
                           ) -> dict[str, Any]:
    """A network layer beside a recording, measure by measure (JSON-ready).

    Parameters
    ----------
    network : dict or bool array ``[samples, T, neurons]``
        One layer's analysis (the dict :func:`tbnn.analysis.report.analyze_spikes`
        returns, or one entry of ``analysis.json``'s layers) or the layer's spikes, which
        are then analysed with ``analyze_spikes(spikes, dt_ms, labels)``.
    recording : Recording
    dt_ms : float
        The network's step in ms (must equal the analysis's ``dt_ms`` when ``network`` is a
        dict); see :mod:`tbnn.analysis.timebase` for ways to choose it.
    labels : int array ``[samples]``, optional
        Sample classes, when ``network`` is spikes.
    window_ms, bin_ms, R_ms
        As :func:`recording_measures`; ``window_ms`` defaults to one sample of the
        network (``T * dt_ms``) and ``bin_ms`` to its correlation bin, so that windowed
        measures use the same time scales on both sides.

    Returns
    -------
    dict
        ``{"dt_ms", "recording": {"source", "units", "trials", "duration_s"},
        "measures": {key: {"statistic", "network": {"value", "summary"}, "recording":
        {"value", "summary"}, "null": {"network", "recording", "network_note",
        "recording_note"}, "band": reference dict or None, "verdict": {"network",
        "recording"}}}}`` over the keys both sides have; NaN written as None.

    Raises
    ------
    ValueError
        ``network`` neither an analysis dict nor spikes, ``dt_ms`` bad or unequal to the
        analysis's.

    Examples
    --------
    >>> import numpy as np
    >>> from tbnn.io.recording import Recording
    >>> rng = np.random.default_rng(0)
    >>> spikes = rng.random((20, 4, 8)) < 0.2
    >>> rec = Recording(("a", "b"), [[np.sort(rng.random(30)), np.sort(rng.random(25))]],
    ...                 [0.0], [1.0])
    >>> out = compare_with_recording(spikes, rec, dt_ms=5.0)
    >>> out["measures"]["rate_hz"]["recording"]["value"]
    27.5
    """
    dt = check_dt(dt_ms)
    if isinstance(network, dict):
        net = network
        if "measures" not in net:
            raise ValueError("network must be one layer's analysis dict (with 'measures') or "
                             "its spikes [samples, T, neurons].")
        if "dt_ms" in net and not math.isclose(float(net["dt_ms"]), dt, rel_tol=1e-12):
            raise ValueError(f"dt_ms ({dt:g}) must equal the network analysis's dt_ms "
                             f"({float(net['dt_ms']):g}).")
    else:

        net = analyze_spikes(check_spikes(network, "network", ndims=(3,)), dt, labels)
    T = int(net.get("timesteps", 1))
    pairs = net.get("pairs") or {}
    if window_ms is None:
        window_ms = T * dt
    if bin_ms is None:
        bin_ms = float(pairs.get("bin_ms", dt))
    rm = recording_measures(recording, dt, window_ms=window_ms, bin_ms=bin_ms, R_ms=R_ms)
    out: dict[str, Any] = {}
    for key, r in rm.items():
        n = net["measures"].get(key)
        if n is None:
            continue
        stat = STATISTICS[key]
        nval = n["summary"][stat] if n.get("summary") else n.get("value")
        nnull = (n.get("null") or {}).get("analytic")
        ref = REFERENCES.get(key)
        out[key] = {
            "label": n.get("label", key), "units": n.get("units", ""), "statistic": stat,
            "network": {"value": nval, "summary": n.get("summary")},
            "recording": {"value": r["value"], "summary": r["summary"]},
            "null": {"network": None if nnull is None else nnull.get("value"),
                     "recording": r["null"]["value"],
                     "network_note": (n.get("null") or {}).get("note", ""),
                     "recording_note": r["null"]["note"]},
            "band": ref.as_dict() if ref is not None else None,
            "verdict": {"network": verdict(nval, ref) if ref is not None and nval is not None
                        else None,
                        "recording": verdict(r["value"], ref) if ref is not None else None},
        }
    return _clean({
        "dt_ms": dt,
        "window_ms": float(window_ms), "bin_ms": float(bin_ms), "R_ms": float(R_ms),
        "recording": {"source": recording.source, "units": recording.n_units,
                      "trials": recording.n_trials,
                      "duration_s": float(recording.durations.sum())},
        "measures": out,
    })
