r"""Sparseness of responses, and the energy proxy (spikes and synaptic operations).

Responses are spike counts per sample, :math:`r_{k,i} = \sum_t s_{k,t,i}` for sample
*k* and neuron *i*, from ``[samples, T, neurons]`` spikes.

* Treves–Rolls activity ratio (Treves & Rolls 1991, Network 2:371; Rolls & Tovee 1995,
  J Neurophysiol 73:713):

  .. math:: a = \frac{\left(\frac{1}{n}\sum_j r_j\right)^2}{\frac{1}{n}\sum_j r_j^2}
            \in (0, 1]

  small :math:`a` means sparse.
* Vinje–Gallant sparseness (Vinje & Gallant 2000, Science 287:1273):

  .. math:: S = \frac{1 - a}{1 - 1/n} \in [0, 1]

  large :math:`S` means sparse.

Both are NaN when every response is 0. **Lifetime** sparseness: over the *n* samples for
each neuron (how selective a neuron is); **population** sparseness: over the *n* neurons
for each sample (how few neurons respond to a stimulus) (Willmore & Tolhurst 2001,
Network 12:255).

Null (independent Bernoulli firing at :math:`p_i` per step, ``T`` steps per sample):
counts are Binomial(T, :math:`p_i`). The analytic null uses the ratio of expectations,
:math:`a \approx E[\bar r]^2 / E[\overline{r^2}]`, exact as the number of samples (or
neurons) grows; the shuffle null (:func:`tbnn.analysis.rates.shuffle_bins`) is exact in
distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tbnn.analysis.rates import check_probability
from tbnn.core.validate import check_int
from tbnn.io.spikes import check_spikes

__all__ = [
    "energy_proxy",
    "lifetime_sparseness",
    "null_lifetime_sparseness",
    "null_population_sparseness",
    "population_sparseness",
    "treves_rolls",
    "vinje_gallant",
]

_MEASURES = ("vinje_gallant", "treves_rolls")


def _check_responses(responses: Any) -> np.ndarray:
    r = np.asarray(responses, dtype=float)
    if r.ndim == 0 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("responses must be a non-empty array of finite responses >= 0.")
    return r


def treves_rolls(responses: Any, axis: int = -1) -> np.ndarray:
    r"""Treves–Rolls activity ratio :math:`a = \bar r^2 / \overline{r^2}` along ``axis``.

    NaN where every response is 0.

    >>> treves_rolls([1.0, 0.0, 0.0, 0.0]).tolist()
    0.25
    """
    r = _check_responses(responses)
    m1 = r.mean(axis=axis)
    m2 = (r**2).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m2 > 0, m1**2 / np.where(m2 > 0, m2, 1.0), np.nan)


def vinje_gallant(responses: Any, axis: int = -1) -> np.ndarray:
    r"""Vinje–Gallant sparseness :math:`S = (1 - a)/(1 - 1/n)` along ``axis``.

    ``n`` is the length of ``axis`` (at least 2). NaN where every response is 0.

    >>> vinje_gallant([1.0, 0.0, 0.0, 0.0]).tolist()
    1.0
    """
    r = _check_responses(responses)
    n = r.shape[axis]
    if n < 2:
        raise ValueError(f"responses must hold at least two values along axis {axis}, got {n}.")
    return (1.0 - treves_rolls(r, axis=axis)) / (1.0 - 1.0 / n)


def _measure(measure: str):
    if measure == "vinje_gallant":
        return vinje_gallant
    if measure == "treves_rolls":
        return treves_rolls
    raise ValueError(f"measure must be one of {', '.join(_MEASURES)}, got {measure!r}.")


def lifetime_sparseness(spikes: Any, measure: str = "vinje_gallant") -> np.ndarray:
    """Sparseness of each neuron's counts across samples, ``[neurons]``.

    ``spikes`` is ``[samples, T, neurons]`` with at least two samples.

    >>> s = np.zeros((4, 2, 1), bool); s[0, :, 0] = True
    >>> lifetime_sparseness(s).tolist()
    [1.0]
    """
    f = _measure(measure)
    arr = check_spikes(spikes, ndims=(3,))
    if arr.shape[0] < 2:
        raise ValueError("spikes must hold at least two samples for lifetime sparseness.")
    return f(arr.sum(axis=1, dtype=np.int64), axis=0)


def population_sparseness(spikes: Any, measure: str = "vinje_gallant") -> np.ndarray:
    """Sparseness of the counts across neurons in each sample, ``[samples]``.

    ``spikes`` is ``[samples, T, neurons]`` with at least two neurons.

    >>> s = np.zeros((1, 2, 4), bool); s[0, :, 0] = True
    >>> population_sparseness(s).tolist()
    [1.0]
    """
    f = _measure(measure)
    arr = check_spikes(spikes, ndims=(3,))
    if arr.shape[2] < 2:
        raise ValueError("spikes must hold at least two neurons for population sparseness.")
    return f(arr.sum(axis=1, dtype=np.int64), axis=1)


def _binomial_moments(p: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    m1 = T * p
    m2 = T * p * (1 - p) + m1**2
    return m1, m2


def null_lifetime_sparseness(p: Any, timesteps: int, samples: int,
                             measure: str = "vinje_gallant") -> np.ndarray:
    r"""Lifetime sparseness of a Bernoulli neuron firing at :math:`p` per step.

    With counts Binomial(T, p): :math:`a = T p / (1 - p + T p)`;
    :math:`S = (1 - a)/(1 - 1/n)` for ``n = samples``. NaN where :math:`p = 0`.

    >>> null_lifetime_sparseness([0.5], timesteps=4, samples=100).round(4).tolist()
    [0.202]
    """
    _measure(measure)
    p_arr = check_probability(p)
    T = check_int(timesteps, "timesteps")
    n = check_int(samples, "samples", minimum=2)
    m1, m2 = _binomial_moments(p_arr, T)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(p_arr > 0, m1**2 / np.where(m2 > 0, m2, 1.0), np.nan)
    return a if measure == "treves_rolls" else (1 - a) / (1 - 1 / n)


def null_population_sparseness(p: Any, timesteps: int, measure: str = "vinje_gallant"
                               ) -> float:
    r"""Population sparseness of independent Bernoulli neurons with probabilities ``p``.

    :math:`a \approx (\frac{1}{N}\sum_i T p_i)^2 / \frac{1}{N}\sum_i (T p_i (1-p_i) +
    T^2 p_i^2)`, :math:`S = (1 - a)/(1 - 1/N)`. NaN if every :math:`p_i = 0`.

    >>> round(float(null_population_sparseness([0.5, 0.5], timesteps=4)), 4)
    0.4
    """
    _measure(measure)
    p_arr = check_probability(p).ravel()
    if p_arr.size < 2:
        raise ValueError("p must hold at least two neurons for population sparseness.")
    T = check_int(timesteps, "timesteps")
    m1, m2 = _binomial_moments(p_arr, T)
    if m2.mean() <= 0:
        return float("nan")
    a = float(m1.mean() ** 2 / m2.mean())
    return a if measure == "treves_rolls" else float((1 - a) / (1 - 1 / p_arr.size))


def energy_proxy(layers: Mapping[str, Any], fanout: Mapping[str, float] | None = None
                 ) -> dict[str, Any]:
    r"""Spikes and synaptic operations per inference (per sample), the energy proxy.

    Spiking dominates the brain's energy budget (Attwell & Laughlin 2001, J Cereb Blood
    Flow Metab 21:1133; Lennie 2003, Curr Biol 13:493); in a network, each spike costs one
    synaptic operation per postsynaptic target, so

    .. math:: \text{ops per sample} = \frac{1}{K}\sum_\ell \text{fanout}_\ell
              \sum_{k,t,i} s^{(\ell)}_{k,t,i}

    over the ``K`` samples.

    Parameters
    ----------
    layers : mapping of layer name to bool ``[samples, T, neurons]``
    fanout : mapping of layer name to postsynaptic targets per spike, optional
        From ``simulation.json``; layers without an entry get ``synaptic_ops = None``.

    Returns
    -------
    dict
        ``{"layers": {name: {"neurons", "spikes_per_sample", "spikes_per_neuron_per_sample",
        "fanout", "synaptic_ops_per_sample"}}, "spikes_per_sample",
        "synaptic_ops_per_sample"}`` (the total ops is None unless every layer has a fanout).

    >>> layers = {'h': np.ones((2, 3, 4), bool)}
    >>> energy_proxy(layers, {'h': 10})['synaptic_ops_per_sample']
    120.0
    """
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError("layers must be a non-empty mapping from layer name to spikes.")
    fan = dict(fanout or {})
    out: dict[str, Any] = {"layers": {}}
    tot_spikes = 0.0
    tot_ops: float | None = 0.0
    n_samples = None
    for name, spikes in layers.items():
        arr = check_spikes(spikes, name=f"layers[{name!r}]", ndims=(3,))
        if n_samples is None:
            n_samples = arr.shape[0]
        elif arr.shape[0] != n_samples:
            raise ValueError("layers must all hold the same number of samples.")
        sps = float(arr.sum(dtype=np.int64)) / arr.shape[0]
        f = fan.get(name)
        if f is not None:
            f = float(f)
            if not np.isfinite(f) or f < 0:
                raise ValueError(f"fanout[{name!r}] must be a finite number >= 0, got {f!r}.")
        ops = sps * f if f is not None else None
        out["layers"][name] = {
            "neurons": int(arr.shape[2]),
            "spikes_per_sample": sps,
            "spikes_per_neuron_per_sample": sps / arr.shape[2],
            "fanout": f,
            "synaptic_ops_per_sample": ops,
        }
        tot_spikes += sps
        tot_ops = None if (tot_ops is None or ops is None) else tot_ops + ops
    out["spikes_per_sample"] = tot_spikes
    out["synaptic_ops_per_sample"] = tot_ops
    return out
