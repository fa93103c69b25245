"""Distributions of spiking activity: PSTH, rate, ISI and correlation histograms, CV against
rate, the complexity distribution."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tbnn.core.validate import check_dt
from tbnn.viz.plot.axes import COLORS, empty_note, finite_array, get_ax, log_axis, styled
from tbnn.viz.style import BIO_COLOR, NULL_COLOR, layer_color

__all__ = ["psth", "rate_histogram", "isi_histogram", "cv_rate_scatter", "correlation_histogram", "complexity_plot"]


@styled
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
    fig, ax = get_ax(ax, 3.5, 2.6)
    dt = check_dt(dt_ms)
    layers = dict(rates) if isinstance(rates, Mapping) else {"": rates}
    for i, (name, pair) in enumerate(layers.items()):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError("rates must be a pair (rate_hz, sem_hz) of arrays [T] or a "
                             "mapping of layer name to such pairs.")
        mean, sem = finite_array(pair[0], "rate_hz"), finite_array(pair[1], "sem_hz")
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


@styled
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
    fig, ax = get_ax(ax, 3.5, 2.6)
    r = finite_array(rates_hz, "rates_hz")
    if r.size == 0 or np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError("rates_hz must be a non-empty array of rates >= 0.")
    xlabel = "firing rate (Hz)" + (f"\n{caption}" if caption else "")
    pos = r[r > 0]
    n_silent = int(r.size - pos.size)
    if pos.size == 0:
        empty_note(ax, f"all {r.size} neurons silent")
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
    log_axis(ax.xaxis)
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


@styled
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
    fig, ax = get_ax(ax, 3.5, 2.6)
    x = finite_array(isis_ms, "isis_ms")
    x = x[~np.isnan(x)]
    if dt_ms is not None:
        dt_ms = check_dt(dt_ms)
    if np.any(x <= 0):
        raise ValueError("isis_ms must hold intervals > 0.")
    if x.size == 0:
        empty_note(ax, "no inter-spike intervals\n(fewer than 2 spikes per neuron)")
        ax.set_xlabel("inter-spike interval (ms)")
        ax.set_ylabel("intervals per ms of ISI")
        return fig
    y = None
    if null is not None:
        y = finite_array(null, "null")
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
    log_axis(ax.xaxis)
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


@styled
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
    fig, ax = get_ax(ax, 3.5, 2.6)
    pp = finite_array(p, "p")
    cc = finite_array(cv, "cv")
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
            log_axis(ax.xaxis)
        top = max(top, float(np.nanmax(cc[ok])) * 1.1)
    else:
        empty_note(ax, "no neuron with a defined CV")
    ax.axhspan(0.7, 1.3, color=BIO_COLOR, alpha=0.6, zorder=0, linewidth=0,
               label="cortex 0.7–1.3 (Softky & Koch 1993)")
    ax.set_xlabel("firing rate (Hz)" if dt is not None else "spike probability per step p")
    ax.set_ylabel("CV of ISIs")
    ax.set_ylim(-0.06 * top, top * 1.7)
    ax.legend(loc="upper left", handletextpad=0.3, labelspacing=0.25)
    return fig


@styled
def correlation_histogram(corrs: Any, ax: Axes | None = None, bins: int = 41, null: Any = None,
                          xlabel: str = "pairwise correlation") -> Figure:
    """Histogram of pairwise correlation coefficients (NaN pairs counted, not drawn),
    with an optional null distribution (e.g. of shuffled trains) as a grey outline.

    >>> fig = correlation_histogram([0.1, -0.05, 0.2, float("nan")], null=[0.0, 0.01])
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'network (3 pairs; 1 undefined)'
    """
    fig, ax = get_ax(ax, 3.5, 2.6)
    c = finite_array(corrs, "corrs")
    n_nan = int(np.isnan(c).sum())
    c = c[~np.isnan(c)]
    y = None
    if null is not None:
        y = finite_array(null, "null")
        y = y[~np.isnan(y)]
    if c.size == 0:
        empty_note(ax, f"no defined pair ({n_nan} undefined)")
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


@styled
def complexity_plot(network: Any, null: Any = None, ax: Axes | None = None) -> Figure:
    """Complexity distribution (probability that k neurons spike in the same step), with
    an optional null distribution (e.g. the Poisson-binomial of independent neurons).

    >>> fig = complexity_plot([0.5, 0.3, 0.2], null=[0.49, 0.42, 0.09])
    >>> fig.axes[0].get_xlabel()
    'neurons spiking in a step (complexity)'
    """
    fig, ax = get_ax(ax, 3.5, 2.6)
    d = finite_array(network, "network")
    if d.size == 0 or np.any(np.isnan(d)) or np.any(d < 0):
        raise ValueError("network must be a non-empty distribution of probabilities >= 0.")
    k = np.arange(d.size)
    ax.bar(k, d, width=1.0, color=COLORS[0], alpha=0.85, label="network")
    last = int(np.flatnonzero(d > 0).max()) if np.any(d > 0) else 0
    if null is not None:
        n = finite_array(null, "null")
        ax.step(np.arange(n.size), n, where="mid", color=NULL_COLOR, label="independent null")
        sig = np.flatnonzero(n > 1e-4 * max(n.max(), 1e-300))
        if sig.size:
            last = max(last, int(sig.max()))
    ax.set_xlim(-0.5, last + 1.5)
    ax.set_xlabel("neurons spiking in a step (complexity)")
    ax.set_ylabel("probability")
    ax.legend()
    return fig
