"""What the measure functions of the registry receive: one layer, or one recording.

:class:`LayerContext` holds a validated layer ``[samples, T, neurons]`` with its options and
computes shared intermediate results once (rates per step, the interval measures); its
:attr:`~LayerContext.shuffled` is the same layer after the seeded shuffle of each neuron's
time bins (the Bernoulli null drawn). :class:`RecordingContext` does the same for a
:class:`tbnn.io.recording.Recording` with Elephant (stream trains, rates, intervals,
conditions).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np

from tbnn.analysis import irregularity as irr
from tbnn.analysis import rates

__all__ = ["DEFINED_NOTE", "POISSON_NOTE", "SAME_NOTE", "LayerContext", "RecordingContext"]

#: the recording null, in words
POISSON_NOTE = "Poisson process at each unit's own rate"


class LayerContext:
    """One layer ``arr [samples, T, neurons]`` (validated) and the options of its measures.

    ``pair_idx`` are the neurons of the pair measures (a seeded subset of a large layer).

    >>> s = np.zeros((2, 4, 3), bool); s[:, ::2, 0] = True
    >>> ctx = LayerContext(s, 1.0, None, seed=0)
    >>> ctx.p.tolist(), ctx.shuffled.p.tolist()
    ([0.5, 0.0, 0.0], [0.5, 0.0, 0.0])
    """

    def __init__(self, arr: np.ndarray, dt: float, labels: np.ndarray | None, *, seed: int = 0,
                 bin_steps: int = 1, max_pair_neurons: int = 512, R_ms: float = 5.0,
                 pair_idx: np.ndarray | None = None, _null: bool = False):
        self.arr, self.dt, self.labels, self.seed = arr, dt, labels, seed
        self.bin_steps, self.max_pair_neurons, self.R_ms = bin_steps, max_pair_neurons, R_ms
        self.S, self.T, self.N = arr.shape
        if pair_idx is None:
            if self.N > max_pair_neurons:
                pair_idx = np.sort(np.random.default_rng(seed).choice(self.N, max_pair_neurons, replace=False))
            else:
                pair_idx = np.arange(self.N)
        self.pair_idx = pair_idx
        self.is_null = _null

    @cached_property
    def shuffled(self) -> LayerContext:
        """The same layer with each neuron's time bins shuffled (seeded): the drawn null."""
        if self.is_null:
            raise ValueError("a shuffled layer has no shuffled null of its own.")
        return LayerContext(rates.shuffle_bins(self.arr, seed=self.seed), self.dt, self.labels,
                            seed=self.seed, bin_steps=self.bin_steps,
                            max_pair_neurons=self.max_pair_neurons, R_ms=self.R_ms,
                            pair_idx=self.pair_idx, _null=True)

    @cached_property
    def p(self) -> np.ndarray:
        """Spike probability per step of each neuron."""
        return rates.rate_per_step(self.arr)

    @cached_property
    def intervals(self) -> dict[str, np.ndarray]:
        """ISIs and CV, CV2, LV, LvR from one pass (:func:`tbnn.analysis.irregularity.interval_measures`)."""
        return irr.interval_measures(self.arr, self.dt, self.R_ms)

    @cached_property
    def pairs(self) -> np.ndarray:
        """The layer restricted to the neurons of the pair measures."""
        return self.arr[:, :, self.pair_idx]


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


class RecordingContext:
    """A recording, checked options (``dt`` may be None, ``win`` and ``b_ms`` in ms, ``R``)
    and Elephant's modules, with shared results computed once."""

    def __init__(self, rec: Any, dt: float | None, win: float, b_ms: float, R: float):
        self.rec, self.dt, self.win, self.b_ms, self.R = rec, dt, win, b_ms, R
        self.es, self.stc, self.pq, self.BinnedSpikeTrain = _elephant()
        self.total_ms = float(rec.durations.sum()) * 1000.0

    @cached_property
    def stream(self) -> list[Any]:
        """One neo.SpikeTrain per unit, trials end to end."""
        return self.rec.stream()

    @cached_property
    def rates(self) -> np.ndarray:
        """Mean firing rate of each unit's stream train, Hz."""
        es = self.es
        return np.array([float(es.mean_firing_rate(st).rescale("Hz").magnitude) for st in self.stream])

    @cached_property
    def isis(self) -> list[np.ndarray]:
        """Each unit's ISIs in ms."""
        return [self.es.isi(st).rescale("ms").magnitude for st in self.stream]

    @cached_property
    def by_condition(self) -> list[np.ndarray]:
        """Trial indices of each condition."""
        rec = self.rec
        return [np.flatnonzero(rec.conditions == c) for c in np.unique(rec.conditions)]

    @cached_property
    def responses(self) -> np.ndarray:
        """Rates per trial ``[trials, units]`` in Hz."""
        return self.rec.counts() / self.rec.durations[:, None]

    def binned(self, bin_ms: float) -> Any:
        """The stream trains binned at ``bin_ms`` over the whole bins of the recording."""
        pq = self.pq
        n_bins = math.floor(self.total_ms / bin_ms + 1e-9)
        return self.BinnedSpikeTrain([st.rescale("ms") for st in self.stream], bin_size=bin_ms * pq.ms,
                                     t_start=0 * pq.ms, t_stop=n_bins * bin_ms * pq.ms)

#: the analytic null of the per-neuron measures, in words
DEFINED_NOTE = ("analytic: closed form at each neuron's p, over the neurons where the network "
                "value is defined")
#: the null of the rate measures, in words
SAME_NOTE = "equal to the network's by construction (the null fires at each neuron's own p)"
