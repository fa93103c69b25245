"""Figures of spiking activity, drawn from the arrays they are given.

Rasters (:func:`raster`, with one neuron-sampling rule, :func:`subsample_neurons`), the
PSTH, histograms of rates, ISIs and correlations, CV against rate, the complexity
distribution, and :func:`measure_panels`: one small panel per measure with its own axis,
showing the network's distribution, the null's, an optional recording's and the
biological band.

This module computes no statistic: it imports only :mod:`tbnn.io.spikes` (for the spike
checks) and :mod:`tbnn.viz.style`. Every function draws on ``ax`` if one is given (else on a
new figure) and returns the :class:`matplotlib.figure.Figure`; figures use the Agg canvas
directly (no pyplot, nothing left open). :func:`save_figure` writes PNG (and optionally
SVG / PDF) atomically.

>>> import numpy as np
>>> fig = raster(np.random.default_rng(0).random((3, 5, 40)) < 0.2, dt_ms=1.0)
>>> fig.axes[0].get_ylabel()
'neuron'
"""

from __future__ import annotations

from tbnn.viz.plot.axes import RASTER_NEURONS
from tbnn.viz.plot.histograms import (
    complexity_plot,
    correlation_histogram,
    cv_rate_scatter,
    isi_histogram,
    psth,
    rate_histogram,
)
from tbnn.viz.plot.panels import measure_panels
from tbnn.viz.plot.raster import raster, raster_title, subsample_neurons
from tbnn.viz.style import new_figure, save_figure

__all__ = ["RASTER_NEURONS", "complexity_plot", "correlation_histogram", "cv_rate_scatter", "isi_histogram", "measure_panels", "new_figure", "psth", "raster", "raster_title", "rate_histogram", "save_figure", "subsample_neurons"]
