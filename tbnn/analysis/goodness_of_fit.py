r"""A goodness-of-fit test of normality with fitted parameters (Lilliefors, by parametric bootstrap).

The Kolmogorov–Smirnov statistic of a sample :math:`x_1 \dots x_n` against a normal whose mean
and standard deviation were estimated from the same sample,

.. math::

    D = \sup_z \big|F_n(z) - \Phi(z)\big|, \qquad z_i = \frac{x_i - \hat\mu}{\hat\sigma},
    \quad \hat\mu = \bar x, \quad \hat\sigma^2 = \frac{1}{n}\sum_i (x_i - \bar x)^2,

is smaller than with known parameters (the fit pulls the normal toward the data), so the
Kolmogorov distribution's p-value is too large and a wrong model passes too often. Its null
distribution does not depend on :math:`\mu` or :math:`\sigma` (location-scale family), so it
is found by simulation (Lilliefors 1967, J Am Stat Assoc 62:399): ``n_boot`` samples of
:math:`n` standard normals, each standardized with its own fitted mean and standard
deviation, give :math:`D_1 \dots D_B`, and

.. math:: p = \frac{1 + \#\{b : D_b \ge D\}}{B + 1}

(the Monte Carlo p-value of ``scipy.stats.goodness_of_fit``, which it matches up to Monte
Carlo error; Davison & Hinkley 1997, *Bootstrap Methods*, ch. 4). A p-value below
:math:`\alpha` rejects the normal model; above it the model is **not rejected** (which is
not evidence that it holds: a small sample rejects little).

On log firing rates it tests a log-normal rate distribution (Buzsáki & Mizuseki 2014, Nat
Rev Neurosci 15:264), as :func:`tbnn.analysis.rates.lognormal_fit` does.

>>> x = np.random.default_rng(0).normal(2.0, 0.5, 200)
>>> r = lilliefors_test(x, n_boot=199, seed=0)
>>> r.n, round(r.mu, 1), round(r.sigma, 1), r.verdict()
(200, 2.0, 0.5, 'not rejected at 5 %')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from tbnn.core.validate import check_int

__all__ = ["LillieforsResult", "ks_normal_statistic", "lilliefors_test"]

#: Bootstrap samples per chunk (bounds the memory of one draw: chunk x n doubles).
_CHUNK_VALUES = 2_000_000


def ks_normal_statistic(x: Any) -> np.ndarray:
    r"""KS statistic of each row of ``x`` against the standard normal after standardizing the
    row with its own mean and standard deviation (ddof 0): :math:`D` of the module docstring.

    ``x``: ``[n]`` or ``[rows, n]``; returns a float (``[n]``) or ``[rows]``. Equal to
    ``scipy.stats.kstest((x - x.mean()) / x.std(), "norm").statistic``.

    >>> round(float(ks_normal_statistic([0.0, 1.0, 2.0, 10.0])), 4)
    0.3738
    """
    a = np.asarray(x, dtype=float)
    one = a.ndim == 1
    a = np.atleast_2d(a)
    n = a.shape[-1]
    z = (a - a.mean(-1, keepdims=True)) / a.std(-1, keepdims=True)
    cdf = ndtr(np.sort(z, axis=-1))
    i = np.arange(1, n + 1)
    d = np.maximum((i / n - cdf).max(-1), (cdf - (i - 1) / n).max(-1))
    return d[0] if one else d


@dataclass(frozen=True)
class LillieforsResult:
    """The test's outcome: the statistic :math:`D`, its bootstrap ``pvalue``, the sample size
    ``n``, ``n_boot`` bootstrap samples, and the fitted ``mu`` and ``sigma`` (ddof 0). All
    NaN (``n_boot`` 0) when the sample cannot be tested (fewer than 3 values, or all equal)."""

    statistic: float
    pvalue: float
    n: int
    n_boot: int
    mu: float
    sigma: float

    def verdict(self, alpha: float = 0.05) -> str:
        """``"not rejected at 5 %"``, ``"rejected at 5 %"`` (for ``alpha`` 0.05) or ``"not tested"``;
        never "accepted".

        >>> LillieforsResult(0.2, 0.001, 40, 999, 0.0, 1.0).verdict()
        'rejected at 5 %'
        """
        if not math.isfinite(self.pvalue):
            return "not tested"
        return f"{'rejected' if self.pvalue < alpha else 'not rejected'} at {100 * alpha:g} %"


def lilliefors_test(x: Any, n_boot: int = 999, seed: int = 0) -> LillieforsResult:
    """Test whether ``x`` is normal with unknown mean and standard deviation (module docstring).

    Parameters
    ----------
    x : 1-D array of finite values (for a log-normal test: the logarithms).
    n_boot : int
        Bootstrap samples ``B >= 1`` of the null distribution (999 gives p to about ±0.014 at 0.05).
    seed : int
        Seed of the bootstrap draws (``numpy.random.default_rng``).

    Raises
    ------
    ValueError
        ``x`` is not a 1-D array of finite numbers, or ``n_boot`` / ``seed`` is not an integer
        (``n_boot >= 1``, ``seed >= 0``).
    """
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or not np.all(np.isfinite(a)):
        raise ValueError("x must be a 1-D array of finite numbers.")
    B = check_int(n_boot, "n_boot")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    n = a.size
    if n < 3 or np.all(a == a[0]):
        nan = float("nan")
        return LillieforsResult(nan, nan, int(n), 0, nan, nan)
    d = float(ks_normal_statistic(a))
    chunk = max(1, _CHUNK_VALUES // n)
    exceed = 0
    for start in range(0, B, chunk):
        draws = rng.standard_normal((min(chunk, B - start), n))
        exceed += int((ks_normal_statistic(draws) >= d).sum())
    return LillieforsResult(d, (1 + exceed) / (B + 1), int(n), B, float(a.mean()), float(a.std()))
