"""Figures of spiking activity, drawn from the arrays they are given.

Rasters (:func:`raster`, with one neuron-sampling rule, :func:`subsample_neurons`), the
PSTH, histograms of rates, ISIs and correlations, CV against rate, the complexity
distribution, and :func:`measure_panels`: one small panel per measure with its own axis,
showing the network's distribution, the null's, an optional recording's and the
biological band.

This module computes no statistic: it imports only :mod:`tbnn.spikefile` (for the spike
checks) and :mod:`tbnn.style`. Every function draws on ``ax`` if one is given (else on a
new figure) and returns the :class:`matplotlib.figure.Figure`; figures use the Agg canvas
directly (no pyplot, nothing left open). :func:`save_figure` writes PNG (and optionally
SVG / PDF) atomically.

>>> import numpy as np
>>> fig = raster(np.random.default_rng(0).random((3, 5, 40)) < 0.2, dt_ms=1.0)
>>> fig.axes[0].get_ylabel()
'neuron'
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from tbnn.spikefile import as_stream, check_dt, check_spikes
from tbnn.style import (
    BIO_COLOR,
    NULL_COLOR,
    RC,
    RECORDING_COLOR,
    layer_color,
    new_figure,
    save_figure,
)

__all__ = [
    "RASTER_NEURONS",
    "complexity_plot",
    "correlation_histogram",
    "cv_rate_scatter",
    "isi_histogram",
    "measure_panels",
    "new_figure",
    "psth",
    "raster",
    "raster_title",
    "rate_histogram",
    "save_figure",
    "subsample_neurons",
]

#: Most neuron rows a raster draws per layer unless told otherwise (a row stays >= 1 px).
RASTER_NEURONS = 128
COLORS = [layer_color(i) for i in range(8)]


def _styled(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


def _get_ax(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is None:
        return new_figure(width, height)
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
    return ax.figure, ax


def _finite(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} must hold finite values or NaN, got an infinite value.")
    return arr


def _log_axis(axis: Any) -> None:
    """Readable labels on a log axis that may span less than a decade: 1, 2, 5 x 10^k."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0,)))
    axis.set_major_formatter(fmt)
    axis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    axis.axes.autoscale_view()
    lo, hi = axis.get_view_interval()
    axis.set_minor_formatter(fmt if hi / max(lo, 1e-300) < 200 else NullFormatter())


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


# ----------------------------------------------------------------------------------------
def subsample_neurons(counts: Any, n: int | None = None, by: str = "even") -> np.ndarray:
    """The one rule that picks which neurons a raster shows.

    Parameters
    ----------
    counts : array ``[neurons]``
        Spike count of each neuron (used by ``by="active"``).
    n : int, optional
        Neurons to keep (default :data:`RASTER_NEURONS`); all when the layer is smaller.
    by : {"even", "active"}
        ``"even"``: evenly spaced indices ``round(linspace(0, N - 1, n))``; ``"active"``:
        the ``n`` neurons with most spikes (ties by index).

    Returns
    -------
    np.ndarray
        Sorted neuron indices.

    >>> subsample_neurons(np.zeros(10), 4).tolist()
    [0, 3, 6, 9]
    >>> subsample_neurons([5, 0, 9, 1], 2, by="active").tolist()
    [0, 2]
    """
    c = np.asarray(counts).ravel()
    N = c.size
    k = RASTER_NEURONS if n is None else n
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"neurons must be an integer >= 1, got {n!r}.")
    if by not in ("even", "active"):
        raise ValueError(f"by must be 'even' or 'active', got {by!r}.")
    if k >= N:
        return np.arange(N)
    if by == "even":
        return np.unique(np.round(np.linspace(0, N - 1, k)).astype(np.int64))
    return np.sort(np.argsort(-c, kind="stable")[:k])


def raster_title(first_sample: int, n_samples: int, shown: Mapping[str, tuple[int, int]],
                 by: str = "even", prefix: str | None = None) -> str:
    """The one title rule of every raster: what is shown, and how neurons were chosen.

    ``shown`` maps layer name to ``(neurons shown, neurons in the layer)``.

    >>> raster_title(0, 8, {"hidden1": (200, 256)})
    'samples 0–7 · hidden1: 200 of 256 neurons (evenly spaced)'
    >>> raster_title(3, 1, {"a": (5, 5), "b": (5, 5)}, prefix="run x")
    'run x · sample 3 · all neurons'
    """
    what = (f"sample {first_sample}" if n_samples == 1
            else f"samples {first_sample}–{first_sample + n_samples - 1}")
    how = "evenly spaced" if by == "even" else "most active"
    sub = [f"{name}: {k} of {n} neurons ({how})" for name, (k, n) in shown.items() if k < n]
    parts = [prefix] if prefix else []
    parts.append(what)
    parts.append("; ".join(sub) if sub else "all neurons")
    return " · ".join(parts)


@_styled
def raster(
    spikes: Any,
    dt_ms: float | None = None,
    ax: Axes | None = None,
    sort_by_rate: bool = False,
    title: str | None = None,
    sample_offset: int = 0,
    neurons: int | None = None,
    select: str = "even",
) -> Figure:
    """Raster plot: one pixel row per neuron, one column per time step, a dark cell per
    spike; one panel per layer with its own neuron axis.

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]`` or ``[time, neurons]``, or a mapping
        of layer name to such arrays (same samples and steps): one panel per layer, top to
        bottom in order, separated and labelled.
    dt_ms : float, optional
        Step duration; the time axis is in ms if given, else in steps.
    ax : Axes, optional
        Draw one layer into this axes (a mapping of several layers needs its own figure).
    sort_by_rate : bool
        Order each layer's shown neurons by spike count, most active at the top.
    title : str, optional
        Prefix of the title (e.g. the run); the rest follows :func:`raster_title`.
    sample_offset : int
        Index of the first sample shown (for the sample labels on top).
    neurons : int, optional
        Neurons shown per layer (default :data:`RASTER_NEURONS`), chosen by
        :func:`subsample_neurons` and stated in the title.
    select : {"even", "active"}
        How the shown neurons are chosen when a layer is larger than ``neurons``.

    Sample boundaries of ``[samples, T, neurons]`` input are marked by vertical lines and
    numbered on top.

    Raises
    ------
    ValueError
        If a layer is not boolean, the layers disagree on samples or steps, or ``ax`` is
        given with several layers.

    Examples
    --------
    >>> s = np.random.default_rng(0).random((4, 5, 1000)) < 0.1
    >>> fig = raster({"input": s[:, :, :64], "hidden": s}, dt_ms=1.0, neurons=100)
    >>> fig._suptitle.get_text()
    'samples 0–3 · hidden: 100 of 1000 neurons (evenly spaced)'
    """
    layers = dict(spikes) if isinstance(spikes, Mapping) else {"": spikes}
    if not layers:
        raise ValueError("spikes must hold at least one layer.")
    if select not in ("even", "active"):
        raise ValueError(f"select must be 'even' or 'active', got {select!r}.")
    if ax is not None and len(layers) > 1:
        raise ValueError("ax can hold one layer; pass several layers without ax to get one "
                         "panel per layer.")
    dt = check_dt(dt_ms) if dt_ms is not None else None
    streams, T_sample, length = [], None, None
    shown: dict[str, tuple[int, int]] = {}
    for name, arr in layers.items():
        a = check_spikes(arr, name=f"spikes[{name!r}]" if name else "spikes", ndims=(2, 3))
        T = a.shape[1] if a.ndim == 3 else None
        s = as_stream(a)
        if length is None:
            length, T_sample = s.shape[0], T
        elif s.shape[0] != length or T != T_sample:
            raise ValueError("spikes layers must share the same samples and time steps.")
        counts = s.sum(axis=0)
        idx = subsample_neurons(counts, neurons, select)
        if sort_by_rate:
            idx = idx[np.argsort(-counts[idx], kind="stable")]
        shown[name or "layer"] = (idx.size, s.shape[1])
        streams.append((name, s[:, idx], idx))
    n_samples = length // T_sample if T_sample else 1
    if ax is None:
        rows = [max(0.9, min(2.6, 0.016 * s.shape[1] + 0.5)) for _, s, _ in streams]
        fig, axes = new_figure(6.4, sum(rows) + 0.9, nrows=len(streams), ncols=1,
                               squeeze=False, sharex=True, gridspec_kw={"height_ratios": rows})
        axes = list(axes[:, 0])
    else:
        fig, ax = _get_ax(ax, 6.4, 3.0)
        axes = [ax]
    scale = dt if dt is not None else 1.0
    for i, (ax_i, (name, s, idx)) in enumerate(zip(axes, streams)):
        color = layer_color(i) if len(streams) > 1 else "#000000"
        cmap = ListedColormap(["white", color])
        n = s.shape[1]
        ax_i.imshow(s.T, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=1,
                    extent=(0, length * scale, n - 0.5, -0.5))
        if n <= 60 and length <= 200:  # thin cell borders so adjacent spikes stay distinct
            ax_i.hlines(np.arange(n - 1) + 0.5, 0, length * scale, colors="white",
                        linewidth=0.3)
            ax_i.vlines(np.arange(1, length) * scale, -0.5, n - 0.5, colors="white",
                        linewidth=0.3)
        if T_sample is not None and n_samples > 1:
            ax_i.vlines(np.arange(1, n_samples) * T_sample * scale, -0.5, n - 0.5,
                        colors="0.45", linewidth=0.7)
        # neuron axis: the shown neurons' own indices
        ticks = np.unique(np.linspace(0, n - 1, min(n, 4)).round().astype(int))
        ax_i.set_yticks(ticks, [str(int(idx[t])) for t in ticks])
        ax_i.set_ylim(n - 0.5, -0.5)
        label = "neuron" if not name else f"{name}\nneuron"
        ax_i.set_ylabel(label, color=color if len(streams) > 1 else "black")
        ax_i.set_xlim(0, length * scale)
    top = axes[0]
    if T_sample is not None and 1 < n_samples <= 20:
        trans = blended_transform_factory(top.transData, top.transAxes)
        for k in range(n_samples):
            top.text((k + 0.5) * T_sample * scale, 1.01, str(sample_offset + k),
                     transform=trans, ha="center", va="bottom", fontsize=6, color="0.35")
    axes[-1].set_xlabel("time (ms)" if dt is not None else "time step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=8))
    t = "\n".join(textwrap.wrap(raster_title(sample_offset, n_samples, shown, select, title),
                                 88 if len(axes) > 1 else 80))
    if len(axes) > 1:
        fig.suptitle(t)
    else:
        top.set_title(t, pad=12 if (T_sample and 1 < n_samples <= 20) else 4)
    return fig


@_styled
def psth(rates: Any, dt_ms: float, ax: Axes | None = None) -> Figure:
    """Peri-stimulus time histogram: population rate (Hz) at each step of a sample with
    its standard error (shaded).

    ``rates`` is ``(rate_hz, sem_hz)`` (two arrays ``[T]``, e.g. from
    :func:`tbnn.analysis.rates.psth`) or a mapping of layer name to such pairs (one line
    per layer).

    >>> import numpy as np
    >>> fig = psth((np.array([10.0, 20.0]), np.array([1.0, 2.0])), dt_ms=1.0)
    >>> fig.axes[0].get_ylabel()
    'population rate (Hz)'
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    dt = check_dt(dt_ms)
    layers = dict(rates) if isinstance(rates, Mapping) else {"": rates}
    for i, (name, pair) in enumerate(layers.items()):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError("rates must be a pair (rate_hz, sem_hz) of arrays [T] or a "
                             "mapping of layer name to such pairs.")
        mean, sem = _finite(pair[0], "rate_hz"), _finite(pair[1], "sem_hz")
        if mean.shape != sem.shape:
            raise ValueError("rate_hz and sem_hz must have one value per step each.")
        t = (np.arange(mean.size) + 0.5) * dt
        c = layer_color(i)
        ax.plot(t, mean, "-o", color=c, markersize=3, label=name or None)
        ax.fill_between(t, mean - sem, mean + sem, color=c, alpha=0.25, linewidth=0)
    ax.set_xlabel("time within sample (ms)")
    ax.set_ylabel("population rate (Hz)")
    ax.set_ylim(bottom=0)
    if len(layers) > 1:
        ax.legend()
    return fig


@_styled
def rate_histogram(rates_hz: Any, ax: Axes | None = None, bins: int = 20,
                   fit_pdf: Callable[[np.ndarray], np.ndarray] | None = None,
                   fit_label: str = "fit", caption: str | None = None) -> Figure:
    """Histogram of firing rates on log-spaced bins of a log axis; silent neurons get
    their own bar at the left ("0").

    ``fit_pdf`` (a density in Hz, e.g. an accepted log-normal fit) is drawn scaled to the
    counts; leave it None when a goodness-of-fit test rejects the fit and say so in
    ``caption`` (printed under the axis label).

    >>> fig = rate_histogram([0.0, 1.0, 2.0, 4.0, 8.0], caption="log-normal not tested")
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['4 active neurons', '1 silent (rate 0)']
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    r = _finite(rates_hz, "rates_hz")
    if r.size == 0 or np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError("rates_hz must be a non-empty array of rates >= 0.")
    xlabel = "firing rate (Hz)" + (f"\n{caption}" if caption else "")
    pos = r[r > 0]
    n_silent = int(r.size - pos.size)
    if pos.size == 0:
        _empty_note(ax, f"all {r.size} neurons silent")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("neurons")
        return fig
    lo, hi = float(pos.min()), float(pos.max())
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    edges = np.logspace(math.log10(lo), math.log10(hi), int(bins) + 1)
    edges[0], edges[-1] = lo * (1 - 1e-9), hi * (1 + 1e-9)
    counts, _ = np.histogram(pos, bins=edges)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=COLORS[0],
           alpha=0.85, edgecolor="white", linewidth=0.4,
           label=f"{pos.size} active neurons")
    # silent neurons: a hatched bar one bin-width left of the axis' range, tick "0"
    ratio = edges[1] / edges[0]
    x0 = edges[0] / ratio**2.5
    ax.bar([x0], [n_silent], width=[x0 * (ratio - 1)], align="edge", color="white",
           edgecolor=NULL_COLOR, hatch="////", linewidth=0.8,
           label=f"{n_silent} silent (rate 0)")
    ax.set_xscale("log")
    ax.set_xlim(x0 / ratio, edges[-1] * ratio)
    _log_axis(ax.xaxis)
    if fit_pdf is not None:
        width = math.log10(edges[1]) - math.log10(edges[0])
        x = np.logspace(math.log10(edges[0]), math.log10(edges[-1]), 200)
        y = pos.size * np.asarray(fit_pdf(x), dtype=float) * x * math.log(10) * width
        ax.plot(x, y, color=COLORS[1], label=fit_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neurons")
    ax.set_ylim(0, max(counts.max(), n_silent, 1) * 1.45)
    ax.legend(loc="upper left")
    return fig


def _isi_edges(x: np.ndarray, dt_ms: float | None, max_bins: int = 40) -> np.ndarray:
    """Log-spaced ISI bin edges; with ``dt_ms`` aligned between whole steps."""
    lo, hi = float(x.min()), float(x.max())
    if dt_ms is None:
        if hi <= lo:
            lo, hi = lo / 1.5, hi * 1.5
        return np.logspace(math.log10(lo) - 1e-6, math.log10(hi) + 1e-6, max_bins + 1)
    n_lo, n_hi = max(1, round(lo / dt_ms)), max(1, round(hi / dt_ms))
    steps = np.unique(np.round(np.logspace(0, math.log10(n_hi + 1), max_bins + 1)))
    steps = steps[steps >= 1]
    edges = np.concatenate([[0.5], steps + 0.5]) * dt_ms
    keep = np.searchsorted(edges, n_lo * dt_ms) - 1
    return edges[max(keep, 0):]


@_styled
def isi_histogram(isis_ms: Any, ax: Axes | None = None, dt_ms: float | None = None,
                  null: Any = None, log_y: bool | None = None) -> Figure:
    """Histogram of inter-spike intervals (ms), pooled over neurons, on a log time axis.

    Bins are log-spaced (aligned between whole steps with ``dt_ms``) and counts are
    divided by the bin width in steps (intervals per step of ISI), so a flat density reads
    flat. ``null`` (e.g. the pooled ISIs of a shuffled train) is drawn as a grey outline;
    the ``y`` axis is logarithmic by default when the densities span more than two
    decades.

    >>> fig = isi_histogram([1.0, 1.0, 2.0, 10.0, 300.0], dt_ms=1.0)
    >>> fig.axes[0].get_xscale()
    'log'
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    x = _finite(isis_ms, "isis_ms")
    x = x[~np.isnan(x)]
    if dt_ms is not None:
        dt_ms = check_dt(dt_ms)
    if np.any(x <= 0):
        raise ValueError("isis_ms must hold intervals > 0.")
    if x.size == 0:
        _empty_note(ax, "no inter-spike intervals\n(fewer than 2 spikes per neuron)")
        ax.set_xlabel("inter-spike interval (ms)")
        ax.set_ylabel("intervals per ms of ISI")
        return fig
    y = None
    if null is not None:
        y = _finite(null, "null")
        y = y[~np.isnan(y)]
    edges = _isi_edges(np.concatenate([x, y]) if y is not None and y.size else x, dt_ms)
    widths = np.diff(edges)
    counts, _ = np.histogram(x, bins=edges)
    dens = counts / widths
    ax.bar(edges[:-1], dens, width=widths, align="edge", color=COLORS[0], alpha=0.85,
           label=f"network ({x.size} ISIs)")
    if y is not None and y.size:
        cy, _ = np.histogram(y, bins=edges)
        ax.stairs(cy / widths, edges, color=NULL_COLOR, linewidth=1.2, label="shuffled null")
    ax.set_xscale("log")
    _log_axis(ax.xaxis)
    pos = dens[dens > 0]
    if log_y is None:
        log_y = pos.size > 0 and pos.max() / pos.min() > 100
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(top=float(pos.max()) * 40)
    elif pos.size:
        ax.set_ylim(top=float(pos.max()) * 1.4)
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("intervals per ms of ISI")
    ax.legend(loc="upper right")
    return fig


@_styled
def cv_rate_scatter(p: Any, cv: Any, ax: Axes | None = None, dt_ms: float | None = None
                    ) -> Figure:
    r"""CV of each neuron's ISIs against its rate, with the Bernoulli null
    :math:`CV = \sqrt{1 - p}`.

    ``p`` is the spike probability per step; with ``dt_ms`` the x axis is the rate in Hz
    (:math:`p \cdot 1000 / \Delta t`). Neurons with undefined CV (NaN) are left out and
    counted in the legend; neurons with CV = 0 (e.g. exactly two spikes) sit on the axis,
    drawn unclipped and counted.

    >>> fig = cv_rate_scatter([0.1, 0.2, 0.3], [0.0, 0.9, float("nan")])
    >>> bool(fig.axes[0].get_ylim()[0] < 0)
    True
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    pp = _finite(p, "p")
    cc = _finite(cv, "cv")
    if pp.shape != cc.shape:
        raise ValueError(f"p and cv must have one value per neuron each, got {pp.size} and "
                         f"{cc.size}.")
    if np.any(pp < 0) or np.any(pp > 1):
        raise ValueError("p must hold spike probabilities per step in [0, 1].")
    dt = check_dt(dt_ms) if dt_ms is not None else None
    to_x = (lambda q: q * 1000.0 / dt) if dt is not None else (lambda q: q)
    ok = ~np.isnan(cc) & (pp > 0)
    n_nan = int(np.sum(~ok))
    top = 1.5
    if ok.any():
        zero = ok & (cc == 0)
        ax.scatter(to_x(pp[ok & ~zero]), cc[ok & ~zero], s=9, color=COLORS[0], alpha=0.7,
                   linewidths=0, clip_on=False,
                   label=f"neurons ({int(ok.sum())}" + (f"; {n_nan} undefined)" if n_nan
                                                        else ")"))
        if zero.any():
            ax.scatter(to_x(pp[zero]), cc[zero], s=14, marker="v", color=COLORS[1],
                       clip_on=False, zorder=3, label=f"CV = 0 ({int(zero.sum())})")
        lo, hi = pp[ok].min(), pp[ok].max()
        logx = hi / lo > 20
        grid = (np.logspace(np.log10(lo), np.log10(hi), 200) if logx
                else np.linspace(lo, hi, 200) if hi > lo else np.array([lo]))
        ax.plot(to_x(grid), np.sqrt(1 - grid), color=NULL_COLOR, linestyle="--",
                label="Bernoulli null √(1−p)", marker="" if grid.size > 1 else "_")
        if logx:
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
        top = max(top, float(np.nanmax(cc[ok])) * 1.1)
    else:
        _empty_note(ax, "no neuron with a defined CV")
    ax.axhspan(0.7, 1.3, color=BIO_COLOR, alpha=0.6, zorder=0, linewidth=0,
               label="cortex 0.7–1.3 (Softky & Koch 1993)")
    ax.set_xlabel("firing rate (Hz)" if dt is not None else "spike probability per step p")
    ax.set_ylabel("CV of ISIs")
    ax.set_ylim(-0.06 * top, top * 1.7)
    ax.legend(loc="upper left", handletextpad=0.3, labelspacing=0.25)
    return fig


@_styled
def correlation_histogram(corrs: Any, ax: Axes | None = None, bins: int = 41, null: Any = None,
                          xlabel: str = "pairwise correlation") -> Figure:
    """Histogram of pairwise correlation coefficients (NaN pairs counted, not drawn),
    with an optional null distribution (e.g. of shuffled trains) as a grey outline.

    >>> fig = correlation_histogram([0.1, -0.05, 0.2, float("nan")], null=[0.0, 0.01])
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'network (3 pairs; 1 undefined)'
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    c = _finite(corrs, "corrs")
    n_nan = int(np.isnan(c).sum())
    c = c[~np.isnan(c)]
    y = None
    if null is not None:
        y = _finite(null, "null")
        y = y[~np.isnan(y)]
    if c.size == 0:
        _empty_note(ax, f"no defined pair ({n_nan} undefined)")
        ax.set_xlabel(xlabel)
        return fig
    allv = np.concatenate([c, y]) if y is not None and y.size else c
    lo, hi = float(allv.min()), float(allv.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    edges = np.linspace(lo, hi, int(bins) + 1)
    ax.hist(c, bins=edges, color=COLORS[0], alpha=0.85,
            label=f"network ({c.size} pairs" + (f"; {n_nan} undefined)" if n_nan else ")"))
    if y is not None and y.size:
        ax.hist(y, bins=edges, histtype="step", color=NULL_COLOR, linewidth=1.2,
                label="shuffled null")
    ax.axvline(0, color="0.3", linewidth=0.6)
    ax.axvline(float(np.mean(c)), color=COLORS[1], linewidth=1.0, linestyle=":",
               label=f"mean {np.mean(c):.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.35)
    ax.legend(loc="upper left")
    return fig


@_styled
def complexity_plot(network: Any, null: Any = None, ax: Axes | None = None) -> Figure:
    """Complexity distribution (probability that k neurons spike in the same step), with
    an optional null distribution (e.g. the Poisson-binomial of independent neurons).

    >>> fig = complexity_plot([0.5, 0.3, 0.2], null=[0.49, 0.42, 0.09])
    >>> fig.axes[0].get_xlabel()
    'neurons spiking in a step (complexity)'
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    d = _finite(network, "network")
    if d.size == 0 or np.any(np.isnan(d)) or np.any(d < 0):
        raise ValueError("network must be a non-empty distribution of probabilities >= 0.")
    k = np.arange(d.size)
    ax.bar(k, d, width=1.0, color=COLORS[0], alpha=0.85, label="network")
    last = int(np.flatnonzero(d > 0).max()) if np.any(d > 0) else 0
    if null is not None:
        n = _finite(null, "null")
        ax.step(np.arange(n.size), n, where="mid", color=NULL_COLOR, label="independent null")
        sig = np.flatnonzero(n > 1e-4 * max(n.max(), 1e-300))
        if sig.size:
            last = max(last, int(sig.max()))
    ax.set_xlim(-0.5, last + 1.5)
    ax.set_xlabel("neurons spiking in a step (complexity)")
    ax.set_ylabel("probability")
    ax.legend()
    return fig


def _lighter(color: str, f: float) -> tuple[float, float, float]:
    """``color`` mixed with white (``f`` = 0: unchanged, 1: white); opaque colours keep
    PNGs small where alpha blending would not."""
    from matplotlib.colors import to_rgb

    r = np.asarray(to_rgb(color))
    return tuple(r + (1 - r) * f)


def _spread(ax: Axes, y: float, v: np.ndarray, color: str, log: bool, left: float,
            rng: np.random.Generator) -> None:
    """A box (quartiles, median), whiskers (5th-95th percentile) and the values as a
    jittered strip; on a log axis values <= 0 sit at the left edge as open triangles."""
    if v.size == 0:
        return
    pos = v[v > 0] if log else v
    if pos.size:
        q5, q25, q50, q75, q95 = np.percentile(pos, [5, 25, 50, 75, 95])
        pts = pos if pos.size <= 150 else rng.choice(pos, 150, replace=False)
        ax.scatter(pts, y + rng.uniform(-0.22, 0.22, pts.size), s=4, color=_lighter(color, 0.45),
                   linewidths=0, zorder=2)
        ax.add_patch(matplotlib.patches.Rectangle((q25, y - 0.28), q75 - q25, 0.56,
                                                  facecolor="none", edgecolor=color,
                                                  linewidth=1.0, zorder=3))
        ax.plot([q50, q50], [y - 0.3, y + 0.3], color=color, linewidth=1.8, zorder=3)
        ax.plot([q5, q25], [y, y], color=color, linewidth=0.9, zorder=3)
        ax.plot([q75, q95], [y, y], color=color, linewidth=0.9, zorder=3)
    if log and (v <= 0).any():
        ax.scatter([left], [y], marker="<", s=22, facecolors="white", edgecolors=color,
                   clip_on=False, zorder=4)


@_styled
def measure_panels(panels: Sequence[Mapping[str, Any]], title: str | None = None,
                   ncols: int = 3) -> Figure:
    """Network against null (and an optional recording) against biology: one small panel
    per measure, each on its own labelled axis.

    Each panel is a mapping with

    ``label`` (str), ``network`` (array of the network's values: per neuron, pair or
    step), and optionally ``units``, ``statistic`` (e.g. "median", named in the title),
    ``null`` (array: the null model's values), ``null_label``, ``recording`` (array: the
    same measure in a recording), ``recording_label``, ``low`` / ``high`` (biological
    range, drawn as a band), ``citation`` (its short key, printed in the title) and ``log``
    (bool; default: logarithmic when the positive values span more than 1.5 decades).

    Each distribution is a box (quartiles, median line), whiskers (5th to 95th
    percentile) and the values themselves as a jittered strip; NaN values are counted in
    the row label (at most 150 values per row are drawn, a seeded random subset), values
    <= 0 on a log axis sit at the left edge as open triangles and
    are counted in the axis label.

    >>> fig = measure_panels([{"label": "CV of ISIs", "network": [0.5, 0.8, 0.9],
    ...                        "null": [0.95, 0.97], "low": 0.7, "high": 1.3,
    ...                        "citation": "Softky & Koch 1993"}])
    >>> fig.axes[0].get_title(loc="left").splitlines()[0]
    'CV of ISIs'
    """
    if not isinstance(panels, Sequence) or len(panels) == 0:
        raise ValueError("panels must be a non-empty sequence of mappings with label and "
                         "network.")
    ncols = max(1, min(int(ncols), len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(3.2 * ncols, 1.95 * nrows + 0.7, nrows=nrows, ncols=ncols,
                           squeeze=False)
    rng = np.random.default_rng(0)
    has_rec = False
    for k, panel in enumerate(panels):
        ax = axes[k // ncols, k % ncols]
        if not isinstance(panel, Mapping) or "label" not in panel or "network" not in panel:
            raise ValueError("panels must be mappings with at least 'label' and 'network'.")
        rows = [("network", _finite(panel["network"], "network"), COLORS[0])]
        if panel.get("null") is not None:
            rows.append((panel.get("null_label", "null"), _finite(panel["null"], "null"),
                         NULL_COLOR))
        if panel.get("recording") is not None:
            has_rec = True
            rows.append((panel.get("recording_label", "recording"),
                         _finite(panel["recording"], "recording"), RECORDING_COLOR))
        lo, hi = panel.get("low"), panel.get("high")
        allv = np.concatenate([r[1][~np.isnan(r[1])] for r in rows])
        band = [float(b) for b in (lo, hi) if b is not None]
        pos = np.concatenate([allv[allv > 0], [b for b in band if b > 0]])
        log = panel.get("log")
        if log is None:
            log = bool(pos.size >= 2 and pos.min() > 0 and pos.max() / pos.min() > 10**1.5
                       and (allv >= 0).all())
        if log and pos.size == 0:
            log = False
        if log:
            left = float(pos.min()) / 2.0
            right = float(pos.max()) * 2.0
        else:
            both = np.concatenate([allv, band]) if allv.size or band else np.array([0.0, 1.0])
            a, b = float(both.min()), float(both.max())
            pad = 0.08 * (b - a) if b > a else max(abs(a) * 0.1, 0.05)
            left, right = a - pad, b + pad
        if lo is not None and hi is not None:
            ax.axvspan(float(lo), float(hi), color=BIO_COLOR, linewidth=0, zorder=0)
        labels = []
        n_le0 = 0
        for j, (name, v, color) in enumerate(rows):
            y = len(rows) - 1 - j
            nan = int(np.isnan(v).sum())
            d = v[~np.isnan(v)]
            _spread(ax, y, d, color, log, left, rng)
            if log:
                n_le0 += int((d <= 0).sum())
            labels.append(f"{name}\n(n={d.size}" + (f", {nan} NaN)" if nan else ")"))
        ax.set_yticks(range(len(rows) - 1, -1, -1), labels)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        if log:
            ax.set_xscale("log")
        ax.set_xlim(left, right)
        if log:
            _log_axis(ax.xaxis)
        units = panel.get("units") or ""
        xl = (units or "dimensionless") + (f" (log axis; {n_le0} values ≤ 0 at left edge)" if n_le0
                                   else " (log axis)" if log else "")
        ax.set_xlabel(xl)
        head = str(panel["label"]) + (f" ({panel['statistic']})" if panel.get("statistic")
                                      else "")
        bio = ""
        if lo is not None and hi is not None:
            bio = f"cortex {float(lo):.3g}–{float(hi):.3g}" + (
                f" ({panel['citation']})" if panel.get("citation") else "")
        ttl = "\n".join(textwrap.wrap(head, 36) + (textwrap.wrap(bio, 38) if bio else []))
        ax.set_title(ttl, fontsize=7.5, loc="left")
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    handles = [matplotlib.patches.Patch(facecolor=_lighter(COLORS[0], 0.45),
                                        edgecolor=COLORS[0], label="network"),
               matplotlib.patches.Patch(facecolor=_lighter(NULL_COLOR, 0.45),
                                        edgecolor=NULL_COLOR, label="null (Bernoulli)"),
               matplotlib.patches.Patch(color=BIO_COLOR, label="biological range")]
    if has_rec:
        handles.insert(2, matplotlib.patches.Patch(facecolor=_lighter(RECORDING_COLOR, 0.45),
                                                   edgecolor=RECORDING_COLOR,
                                                   label="recording"))
    fig.legend(handles=handles, loc="outside lower center",
               ncol=len(handles) if ncols > 1 else 2)
    if title:
        fig.suptitle(title)
    return fig
