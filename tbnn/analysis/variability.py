r"""Fano factor of spike counts, in two explicit views.

.. math:: F = \frac{\operatorname{Var}(N)}{\operatorname{E}[N]}

with the population variance (ddof 0), as ``elephant.statistics.fanofactor``; NaN when
all counts are 0 (Elephant returns NaN there too).

* **stream view** (:func:`fano_stream`): samples presented one after another are
  concatenated into one long train per neuron, as in a recording, and counted in
  consecutive non-overlapping windows of ``window_steps`` steps (default one sample, T
  steps). This mixes stimulus-driven and trial-to-trial variability.
* **trial view** (:func:`fano_trial`): counts over the T steps of each sample, across the
  samples of one class (the same "stimulus" repeated), then averaged over classes. This is
  the trial-to-trial variability measured in vivo (Churchland et al. 2010, Nat Neurosci
  13:369).

Null: counts of independent Bernoulli firing at probability :math:`p` in a window of
:math:`w` steps are binomial, with variance :math:`w p (1-p)` and mean :math:`w p`, so
:math:`F = 1 - p` in both views (:func:`null_fano`), not 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.analysis.rates import binned_counts, check_probability
from tbnn.core.validate import check_int, check_labels
from tbnn.io.spikes import as_stream, check_spikes

__all__ = ["fano_factor", "fano_stream", "fano_trial", "null_fano", "window_counts"]


def fano_factor(counts: Any, axis: int = 0) -> np.ndarray:
    r"""Fano factor :math:`\operatorname{Var}(N)/\operatorname{E}[N]` (ddof 0) along ``axis``.

    As ``elephant.statistics.fanofactor`` applied to the spike trains whose counts are
    ``counts``. NaN where every count is 0.

    >>> fano_factor([[1, 2], [3, 2]]).tolist()
    [0.5, 0.0]
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim == 0 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("counts must be a non-empty array of finite spike counts >= 0.")
    mean = c.mean(axis=axis)
    var = c.var(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0, var / np.where(mean > 0, mean, 1.0), np.nan)


def window_counts(spikes: Any, window_steps: int) -> np.ndarray:
    """Spike counts of each neuron in consecutive windows of ``window_steps`` steps of its
    stream train, int64 ``[windows, neurons]``: :func:`tbnn.analysis.rates.binned_counts`
    under the name of the Fano factor's windows (errors name ``window_steps``).

    >>> s = np.ones((6, 2), bool)
    >>> window_counts(s, 3).tolist()
    [[3, 3], [3, 3]]
    """
    return binned_counts(spikes, window_steps, name="window_steps")


def fano_stream(spikes: Any, window_steps: int | None = None) -> np.ndarray:
    r"""Fano factor of each neuron's counts in consecutive windows of its stream train.

    Parameters
    ----------
    spikes : bool array ``[time, neurons]`` or ``[samples, T, neurons]``
    window_steps : int, optional
        Window length in steps; default ``T`` (one sample) for ``[samples, T, neurons]``,
        required for ``[time, neurons]``. At least two windows must fit.

    Returns
    -------
    np.ndarray ``[neurons]``
        NaN for neurons silent in every window.

    >>> s = np.zeros((4, 2, 1), bool); s[0, :, 0] = True
    >>> fano_stream(s).tolist()
    [1.5]
    """
    arr = check_spikes(spikes, ndims=(1, 2, 3))
    if window_steps is None:
        if arr.ndim != 3:
            raise ValueError("window_steps is required for spikes of shape [time] or "
                             "[time, neurons]; it defaults to T only for [samples, T, neurons].")
        window_steps = arr.shape[1]
    counts = window_counts(arr, window_steps)
    if counts.shape[0] < 2:
        raise ValueError(f"window_steps must leave at least two windows in the "
                         f"{as_stream(arr).shape[0]}-step train, got {window_steps}.")
    return fano_factor(counts, axis=0)


def fano_trial(spikes: Any, labels: Any, min_samples: int = 2) -> np.ndarray:
    r"""Trial-view Fano factor: across samples of the same class, averaged over classes.

    For each class :math:`c` with at least ``min_samples`` samples, the counts
    :math:`N_{k,i} = \sum_t s_{k,t,i}` of neuron *i* over the samples *k* of that class
    give :math:`F_{c,i} = \operatorname{Var}_k N_{k,i} / \operatorname{E}_k N_{k,i}`;
    the result is :math:`F_i = \langle F_{c,i} \rangle_c` over the classes where it is
    defined (the neuron fired at least once in that class). NaN where no class qualifies.

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]``
    labels : int array ``[samples]``
    min_samples : int
        Classes with fewer samples are skipped (default 2, the least that has a variance).

    Returns
    -------
    np.ndarray ``[neurons]``

    >>> s = np.zeros((4, 2, 1), bool); s[0, :, 0] = True
    >>> fano_trial(s, labels=[0, 0, 1, 1]).tolist()
    [1.0]
    """
    arr = check_spikes(spikes, ndims=(3,))
    lab = check_labels(labels, arr.shape[0], minimum=None, numpy=True)
    m = check_int(min_samples, "min_samples", minimum=2)
    counts = arr.sum(axis=1, dtype=np.int64)  # [samples, neurons]
    per_class = []
    for c in np.unique(lab):
        sel = counts[lab == c]
        if sel.shape[0] >= m:
            per_class.append(fano_factor(sel, axis=0))
    if not per_class:
        return np.full(arr.shape[2], np.nan)
    stack = np.stack(per_class)
    n_def = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    return np.where(n_def > 0, total / np.maximum(n_def, 1), np.nan)


def null_fano(p: Any) -> np.ndarray:
    r"""Fano factor of independent Bernoulli firing at probability :math:`p` per step.

    Counts in any window of :math:`w` steps are Binomial(:math:`w, p`):
    :math:`F = w p (1-p) / (w p) = 1 - p`. NaN where :math:`p = 0`.

    >>> null_fano([0.2]).tolist()
    [0.8]
    """
    p_arr = check_probability(p)
    return np.where(p_arr > 0, 1.0 - p_arr, np.nan)
