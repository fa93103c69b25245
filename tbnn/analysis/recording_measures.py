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
from typing import Any

import numpy as np

from tbnn.analysis.catalogue import analyze_spikes, summarize
from tbnn.analysis.measures import MEASURES, RecordingContext, RegistryView
from tbnn.analysis.reference import verdict
from tbnn.core.validate import check_dt, json_ready
from tbnn.io.recording import Recording
from tbnn.io.spikes import check_spikes

__all__ = ["STATISTICS", "compare_with_recording", "recording_measures"]

STATISTICS = RegistryView(lambda m: m.statistic if m.recording is not None else None)
"""Measure key -> the summary compared, for the measures with a recording counterpart (a
live view of the records of :mod:`tbnn.analysis.measures`)."""


def _entry(key: str, values: Any, null_value: float, note: str) -> dict[str, Any]:
    vals = np.asarray(values, dtype=float).ravel()
    s = summarize(vals)
    stat = MEASURES[key].statistic
    return {"values": vals, "statistic": stat, "value": s[stat], "summary": s,
            "null": {"value": float(null_value), "note": note}}


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
    dt = None if dt_ms is None else check_dt(dt_ms)
    R = check_dt(R_ms, "R_ms") if R_ms != 0 else 0.0
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
    ctx = RecordingContext(rec, dt, win, b_ms, R)
    m: dict[str, dict[str, Any]] = {}
    for key, record in MEASURES.items():
        out = None if record.recording is None else record.recording(ctx)
        if out is not None:  # None: the recording cannot define it (one unit, one trial, no dt_ms)
            m[key] = _entry(key, *out)
    return m


# ----------------------------------------------------------------------------------------
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
        stat = MEASURES[key].statistic
        nval = n["summary"][stat] if n.get("summary") else n.get("value")
        nnull = (n.get("null") or {}).get("analytic")
        ref = MEASURES[key].band
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
    return json_ready({
        "dt_ms": dt,
        "window_ms": float(window_ms), "bin_ms": float(bin_ms), "R_ms": float(R_ms),
        "recording": {"source": recording.source, "units": recording.n_units,
                      "trials": recording.n_trials,
                      "duration_s": float(recording.durations.sum())},
        "measures": out,
    })
