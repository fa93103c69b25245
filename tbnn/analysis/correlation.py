r"""Pairwise correlations and synchrony of binary spike trains.

* :func:`correlation_matrix`: Pearson correlation of binned stream trains, as
  ``elephant.spike_train_correlation.correlation_coefficient`` on a
  ``BinnedSpikeTrain`` (``binary=False``):

  .. math:: C_{ij} = \frac{\langle b_i - \mu_i, b_j - \mu_j \rangle}
            {\sqrt{\langle b_i - \mu_i, b_i - \mu_i \rangle
                   \langle b_j - \mu_j, b_j - \mu_j \rangle}}

  Rows and columns of trains without variance (silent, or firing in every bin) are NaN,
  as Elephant gives for empty trains.
* :func:`noise_correlations`: spike-count ("noise") correlations :math:`r_{sc}`, the
  Pearson correlation across samples of the same class of the counts over a sample,
  averaged over classes (Cohen & Kohn 2011, Nat Neurosci 14:811).
* :func:`complexity_histogram`: number of steps in which exactly :math:`k` neurons spike
  (Grün et al. 2007; ``elephant.statistics.Complexity`` with ``binary=True, spread=0``).
* :func:`synchrony_chi2`: Golomb's synchrony measure :math:`\chi^2` (Golomb 2007,
  Scholarpedia 2:1347), the variance of the population mean over the mean of the single
  neurons' variances.

Null (independent Bernoulli neurons): all correlations 0; the complexity is the sum of
independent Bernoulli variables (Poisson-binomial, :func:`null_complexity`);
:math:`\chi^2 = 1/N` (:func:`null_synchrony_chi2`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.analysis.rates import binned_counts, check_probability
from tbnn.core.validate import check_int, check_labels
from tbnn.io.spikes import as_stream, check_spikes

__all__ = [
    "binned_counts",
    "complexity_distribution",
    "complexity_histogram",
    "correlation_matrix",
    "count_correlation_matrix",
    "noise_correlations",
    "null_complexity",
    "null_synchrony_chi2",
    "off_diagonal",
    "pairwise_correlations",
    "synchrony_chi2",
]


def _pearson_columns(x: np.ndarray) -> np.ndarray:
    """Pearson correlation between the columns of x; NaN rows/cols for constant columns."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc
    std = np.sqrt(np.diag(cov))
    ok = std > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        c = cov / np.outer(std, std)
    c[~ok, :] = np.nan
    c[:, ~ok] = np.nan
    np.clip(c, -1.0, 1.0, out=c)
    idx = np.flatnonzero(ok)
    c[idx, idx] = 1.0
    return c


def correlation_matrix(spikes: Any, bin_steps: int = 1) -> np.ndarray:
    """Pearson correlation matrix of the binned stream trains, ``[neurons, neurons]``.

    See the module docstring; equals Elephant's ``correlation_coefficient`` on the same
    trains binned at ``bin_steps * dt``. NaN rows/columns for trains without variance.

    >>> s = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1]], bool).T
    >>> correlation_matrix(s).round(3).tolist()
    [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    """
    return _pearson_columns(binned_counts(spikes, bin_steps, min_bins=2))


def off_diagonal(matrix: Any) -> np.ndarray:
    """Entries above the diagonal of a square matrix (each pair once), NaNs kept.

    >>> off_diagonal([[1.0, 0.5], [0.5, 1.0]]).tolist()
    [0.5]
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square, got shape {m.shape}.")
    return m[np.triu_indices(m.shape[0], k=1)]


def pairwise_correlations(spikes: Any, bin_steps: int = 1) -> np.ndarray:
    """Distribution of pairwise correlations of binned trains (each pair once, NaNs kept).

    >>> s = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1]], bool).T
    >>> pairwise_correlations(s).round(3).tolist()
    [1.0, -1.0, -1.0]
    """
    return off_diagonal(correlation_matrix(spikes, bin_steps))


def count_correlation_matrix(spikes: Any, labels: Any, min_samples: int = 3) -> np.ndarray:
    r"""Class-averaged spike-count correlation matrix, ``[neurons, neurons]``.

    For each class with at least ``min_samples`` samples, the Pearson correlation across
    its samples of the counts :math:`N_{k,i} = \sum_t s_{k,t,i}`; the matrix is the mean
    over classes of the defined entries (NaN where a pair is undefined in every class,
    e.g. a neuron whose count never varies within a class).

    >>> s = np.zeros((4, 2, 2), bool); s[[0, 2], 0, :] = True
    >>> count_correlation_matrix(s, labels=[0, 0, 0, 0]).round(3).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    arr = check_spikes(spikes, ndims=(3,))
    lab = check_labels(labels, arr.shape[0], minimum=None, numpy=True)
    m = check_int(min_samples, "min_samples", minimum=2)
    counts = arr.sum(axis=1, dtype=np.int64)
    n = arr.shape[2]
    total = np.zeros((n, n))
    n_def = np.zeros((n, n), dtype=np.int64)
    for c in np.unique(lab):
        sel = counts[lab == c]
        if sel.shape[0] < m:
            continue
        r = _pearson_columns(sel)
        ok = ~np.isnan(r)
        total[ok] += r[ok]
        n_def += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_def > 0, total / np.maximum(n_def, 1), np.nan)


def noise_correlations(spikes: Any, labels: Any, min_samples: int = 3) -> np.ndarray:
    """Distribution of spike-count noise correlations (each pair once, NaNs kept).

    See :func:`count_correlation_matrix`; ``spikes`` is ``[samples, T, neurons]``.

    >>> s = np.zeros((4, 2, 2), bool); s[[0, 2], 0, :] = True
    >>> noise_correlations(s, labels=[0, 0, 0, 0]).round(3).tolist()
    [1.0]
    """
    return off_diagonal(count_correlation_matrix(spikes, labels, min_samples))


def complexity_histogram(spikes: Any) -> np.ndarray:
    """Number of steps in which exactly ``k`` neurons spike, for ``k = 0 .. N``.

    Equals ``elephant.statistics.Complexity(..., binary=True, spread=0)
    .complexity_histogram`` padded with zeros to length ``N + 1``.

    >>> s = np.array([[1, 1], [0, 1], [0, 0]], bool)
    >>> complexity_histogram(s).tolist()
    [1, 1, 1]
    """
    stream = as_stream(spikes)
    k = stream.sum(axis=1, dtype=np.int64)
    return np.bincount(k, minlength=stream.shape[1] + 1)


def complexity_distribution(spikes: Any) -> np.ndarray:
    """:func:`complexity_histogram` normalised to a probability distribution over k.

    >>> s = np.array([[1, 1], [0, 1], [0, 0], [0, 0]], bool)
    >>> complexity_distribution(s).tolist()
    [0.5, 0.25, 0.25]
    """
    h = complexity_histogram(spikes)
    return h / h.sum()


def synchrony_chi2(spikes: Any) -> float:
    r"""Golomb's synchrony measure (Golomb 2007, Scholarpedia 2:1347).

    .. math:: \chi^2 = \frac{\operatorname{Var}_t\left(\frac{1}{N}\sum_i s_{i,t}\right)}
              {\frac{1}{N}\sum_i \operatorname{Var}_t(s_{i,t})}

    1 for fully synchronous trains, :math:`1/N` for independent ones. NaN if no neuron
    varies (all silent or all always firing).

    >>> s = np.array([[1, 1], [0, 0], [1, 1], [0, 0]], bool)
    >>> synchrony_chi2(s)
    1.0
    """
    stream = as_stream(spikes).astype(np.float64)
    den = stream.var(axis=0).mean()
    if den <= 0:
        return float("nan")
    return float(stream.mean(axis=1).var() / den)


def null_complexity(p: Any) -> np.ndarray:
    r"""Complexity distribution of independent Bernoulli neurons with probabilities ``p``.

    The number of neurons spiking in a step is a sum of independent Bernoulli variables
    with the neurons' own :math:`p_i` (Poisson-binomial), computed by convolution.

    Returns
    -------
    np.ndarray ``[N + 1]``
        :math:`P(k)` for ``k = 0 .. N``.

    >>> null_complexity([0.5, 0.5]).tolist()
    [0.25, 0.5, 0.25]
    """
    p_arr = check_probability(p).ravel()
    if p_arr.size == 0:
        raise ValueError("p must hold at least one spike probability.")
    dist = np.zeros(p_arr.size + 1)
    dist[0] = 1.0
    for i, pi in enumerate(p_arr):
        dist[1 : i + 2] = dist[1 : i + 2] * (1 - pi) + dist[: i + 1] * pi
        dist[0] *= 1 - pi
    return dist


def null_synchrony_chi2(n_neurons: int) -> float:
    r"""Golomb's :math:`\chi^2` of ``n_neurons`` independent neurons: :math:`1/N`.

    >>> null_synchrony_chi2(4)
    0.25
    """
    return 1.0 / check_int(n_neurons, "n_neurons")
