r"""The time base of a network: choosing ``dt_ms``, the duration of one time step.

A temporal binary network has steps, not milliseconds; every rate in Hz, every interval in
ms and LvR (through its refractoriness constant :math:`R` in ms) depends on the declared
step :math:`\Delta t`. Two principled choices:

* **match the rates** of a recording (:func:`dt_from_rates`): the network fires with
  probability :math:`p` per step (mean over neurons), so its mean rate is
  :math:`p / \Delta t`; equal to the recording's mean rate :math:`\bar r` when

  .. math:: \Delta t = 1000\,\frac{p}{\bar r}\ \text{ms};

* **one sample per oscillation cycle** (:func:`dt_from_oscillation`): the ``T`` steps of a
  sample span one cycle of a rhythm of frequency :math:`f` (e.g. theta or gamma, whose
  cycles are thought to carry one "word" of a spike code; Lisman & Jensen 2013, Neuron
  77:1002):

  .. math:: \Delta t = \frac{1000}{f\,T}\ \text{ms}.

How the measures move with :math:`\Delta t` (:func:`dt_sensitivity` tabulates them on a
network's spikes): rates scale as :math:`1/\Delta t`, intervals as :math:`\Delta t`;
CV, CV2, LV, Fano factors, correlations and sparseness do not move (they are ratios of
counts or of intervals); LvR moves through :math:`4R/(I_k + I_{k+1})`, i.e. toward LV as
:math:`\Delta t` grows.

>>> dt_from_rates(0.02, 4.0)  # p = 2 % per step, 4 Hz in cortex: 5 ms steps
5.0
>>> dt_from_oscillation(4, 50.0)  # T = 4 steps per gamma cycle of 50 Hz
5.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.analysis.irregularity import interval_measures
from tbnn.analysis.rates import rate_hz
from tbnn.core.validate import check_dt, check_int, check_number

__all__ = ["dt_from_oscillation", "dt_from_rates", "dt_sensitivity"]


def dt_from_rates(network_rate_per_step: Any, recording_rate_hz: Any) -> float:
    r"""Step duration (ms) at which the network's mean rate equals the recording's.

    .. math:: \Delta t = 1000\,p / \bar r

    Parameters
    ----------
    network_rate_per_step : float or array
        Spike probability per step :math:`p` (a mean over neurons, or per-neuron values,
        which are averaged), in (0, 1].
    recording_rate_hz : float or array
        The recording's mean rate :math:`\bar r` in Hz (per-unit values are averaged).

    Raises
    ------
    ValueError
        A rate that is not a positive finite number (or a probability above 1).

    Examples
    --------
    >>> dt_from_rates([0.01, 0.03], [2.0, 6.0])
    5.0
    """
    p = np.asarray(network_rate_per_step, dtype=float)
    r = np.asarray(recording_rate_hz, dtype=float)
    pm = check_number(p.mean() if p.size else float("nan"), "network_rate_per_step")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("network_rate_per_step must hold spike probabilities per step in [0, 1].")
    rm = check_number(r.mean() if r.size else float("nan"), "recording_rate_hz")
    return 1000.0 * pm / rm


def dt_from_oscillation(T: Any, freq_hz: Any) -> float:
    r"""Step duration (ms) that makes the ``T`` steps of a sample one cycle of ``freq_hz``.

    .. math:: \Delta t = 1000 / (f\,T)

    Examples
    --------
    >>> round(dt_from_oscillation(8, 8.0), 3)  # 8 steps per theta cycle (8 Hz)
    15.625
    """
    return 1000.0 / (check_number(freq_hz, "freq_hz") * check_int(T, "T"))


def dt_sensitivity(spikes: Any, dt_values: Any, R_ms: float = 5.0) -> list[dict[str, float]]:
    r"""How the rate-dependent measures of a network move with ``dt_ms``.

    For each :math:`\Delta t` in ``dt_values``: median rate (Hz), median ISI (ms), median
    LvR, and the dt-free median CV and LV for reference (they are the same in every row).

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]`` (or ``[time, neurons]``)
    dt_values : sequence of float
        Step durations in ms.
    R_ms : float
        LvR refractoriness constant.

    Returns
    -------
    list of dict
        One row per ``dt_ms``: ``dt_ms``, ``rate_hz``, ``isi_ms``, ``lvr``, ``cv``, ``lv``.

    Examples
    --------
    >>> s = np.zeros((1, 12, 1), bool); s[0, [0, 2, 3, 7, 8, 11], 0] = True
    >>> [round(r["rate_hz"], 1) for r in dt_sensitivity(s, [1.0, 10.0])]
    [500.0, 50.0]
    """
    vals = np.asarray(dt_values, dtype=float).ravel()
    if vals.size == 0:
        raise ValueError("dt_values must hold at least one step duration in ms.")
    rows = []
    for dt in vals:
        d = check_dt(dt, "dt_values")
        im = interval_measures(spikes, d, R_ms)

        def med(a: np.ndarray) -> float:
            a = np.asarray(a, dtype=float)
            a = a[~np.isnan(a)]
            return float(np.median(a)) if a.size else float("nan")

        rows.append({"dt_ms": d, "rate_hz": med(rate_hz(spikes, d)), "isi_ms": med(im["isi_ms"]),
                     "lvr": med(im["lvr"]), "cv": med(im["cv"]), "lv": med(im["lv"])})
    return rows
