"""Figures for spiking activity: rasters, PSTH, rate / ISI / correlation histograms,
CV against rate, complexity, and a network-vs-null-vs-biology summary panel.

Every function takes arrays, draws on ``ax`` if one is given (else on a new figure) and
returns the :class:`matplotlib.figure.Figure`. Figures are built with the Agg canvas
directly (no pyplot, no global backend switch, nothing left open), in a compact
publication style; :func:`save_figure` writes PNGs atomically at ~120 dpi.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator
from matplotlib.transforms import blended_transform_factory

from tbnn.analysis.rates import as_stream, check_dt, check_spikes, rate_distribution
from tbnn.analysis.rates import psth as _psth
from tbnn.fileio import atomic_write

__all__ = [
    "COLORS",
    "complexity_plot",
    "correlation_histogram",
    "cv_rate_scatter",
    "isi_histogram",
    "new_figure",
    "psth",
    "raster",
    "rate_histogram",
    "save_figure",
    "summary_panel",
]

#: Okabe–Ito colour-blind-safe palette (layer colours in order).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#F0E442"]
NULL_COLOR = "#7f7f7f"
BIO_COLOR = "#b8dcb8"

STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.2,
    "figure.dpi": 120,
    "savefig.dpi": 120,
    "image.interpolation": "nearest",
}


def _styled(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def new_figure(width: float = 4.0, height: float = 3.0, nrows: int = 1, ncols: int = 1
               ) -> tuple[Figure, Any]:
    """A new Agg figure (constrained layout) with ``nrows x ncols`` axes, in the house style."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=True)
    return fig, axes


def _get_ax(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is None:
        return new_figure(width, height)
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
    return ax.figure, ax


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file in the same folder, then rename).

    The format comes from the suffix (``.png``, ``.pdf``, ``.svg``); the folder must exist.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("png", "pdf", "svg"):
        raise ValueError(f"path must end in .png, .pdf or .svg, got {path.name!r}.")
    if not path.parent.is_dir():
        raise ValueError(f"path must be inside an existing folder, {path.parent} does not exist.")
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return path


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
    axis.set_minor_formatter(fmt)


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


# ----------------------------------------------------------------------------------------
@_styled
def raster(
    spikes: Any,
    dt_ms: float | None = None,
    ax: Axes | None = None,
    sort_by_rate: bool = False,
    title: str | None = None,
    sample_offset: int = 0,
) -> Figure:
    """Raster plot: neurons (rows) against time, one mark per spike.

    Parameters
    ----------
    spikes : bool array ``[samples, T, neurons]`` or ``[time, neurons]``, or a mapping
        of layer name to such arrays (same time axis); layers are stacked from top to
        bottom in order and coloured by layer.
    dt_ms : float, optional
        Step duration; the time axis is in ms if given, else in steps.
    sort_by_rate : bool
        Order each layer's neurons by spike count, most active at the top.
    sample_offset : int
        Index of the first sample shown (for the sample labels on top).

    Samples of ``[samples, T, neurons]`` input are separated by thin vertical lines.
    Each spike fills its (step, neuron) cell, so a dense binary code reads as a picture.
    """
    fig, ax = _get_ax(ax, 6.0, 3.2)
    layers = dict(spikes) if isinstance(spikes, Mapping) else {"": spikes}
    if not layers:
        raise ValueError("spikes must hold at least one layer.")
    dt = check_dt(dt_ms) if dt_ms is not None else None
    streams, T_sample, length = [], None, None
    for name, arr in layers.items():
        a = check_spikes(arr, name=f"spikes[{name!r}]" if name else "spikes", ndims=(2, 3))
        T = a.shape[1] if a.ndim == 3 else None
        s = as_stream(a)
        if length is None:
            length, T_sample = s.shape[0], T
        elif s.shape[0] != length or T != T_sample:
            raise ValueError("spikes layers must share the same samples and time steps.")
        if sort_by_rate:
            s = s[:, np.argsort(-s.sum(axis=0), kind="stable")]
        streams.append((name, s))
    n_total = sum(s.shape[1] for _, s in streams)
    img = np.ones((n_total, length, 3))
    row, ticks, labels, bounds = 0, [], [], []
    for i, (name, s) in enumerate(streams):
        color = np.array(to_rgb(COLORS[i % len(COLORS)] if len(streams) > 1 else "#000000"))
        img[row : row + s.shape[1]][s.T] = color
        ticks.append(row + s.shape[1] / 2 - 0.5)
        labels.append(name)
        row += s.shape[1]
        bounds.append(row)
    scale = dt if dt is not None else 1.0
    interp = "nearest" if length <= 1500 and n_total <= 1500 else "antialiased"
    ax.imshow(img, aspect="auto", interpolation=interp,
              extent=(0, length * scale, n_total - 0.5, -0.5))
    # thin white cell borders when cells are large, so adjacent spikes stay distinct
    if length <= 120:
        ax.vlines(np.arange(1, length) * scale, -0.5, n_total - 0.5, colors="white",
                  linewidth=0.4)
    if n_total <= 120:
        ax.hlines(np.arange(n_total - 1) + 0.5, 0, length * scale, colors="white",
                  linewidth=0.4)
    if T_sample is not None and length // T_sample > 1:
        for k in range(1, length // T_sample):
            ax.axvline(k * T_sample * scale, color="0.55", linewidth=0.5)
        if length // T_sample <= 20:
            trans = blended_transform_factory(ax.transData, ax.transAxes)
            for k in range(length // T_sample):
                ax.text((k + 0.5) * T_sample * scale, 1.01, str(sample_offset + k),
                        transform=trans, ha="center", va="bottom", fontsize=6, color="0.4")
    for b in bounds[:-1]:
        ax.axhline(b - 0.5, color="0.3", linewidth=0.6)
    ax.set_xlim(0, length * scale)
    ax.set_xlabel("time (ms)" if dt is not None else "time step")
    if len(streams) > 1:
        ax.set_yticks(ticks, labels)
        for tl, c in zip(ax.get_yticklabels(), COLORS):
            tl.set_color(c)
        ax.set_ylabel("layer")
    else:
        ax.set_ylabel("neuron" + (" (sorted by rate)" if sort_by_rate else ""))
    if title:
        ax.set_title(title, pad=10 if T_sample else 4)
    return fig


@_styled
def psth(spikes: Any, dt_ms: float, ax: Axes | None = None) -> Figure:
    """Peri-stimulus time histogram: population rate (Hz) at each step of a sample, mean
    over samples and neurons with its standard error across samples (shaded).

    ``spikes`` is ``[samples, T, neurons]`` (or a mapping of layer name to such arrays,
    one line per layer).
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    dt = check_dt(dt_ms)
    layers = dict(spikes) if isinstance(spikes, Mapping) else {"": spikes}
    for i, (name, arr) in enumerate(layers.items()):
        a = check_spikes(arr, name=f"spikes[{name!r}]" if name else "spikes", ndims=(3,))
        mean, sem = _psth(a, dt)
        t = (np.arange(a.shape[1]) + 0.5) * dt
        c = COLORS[i % len(COLORS)]
        ax.plot(t, mean, "-o", color=c, markersize=3, label=name or None)
        ax.fill_between(t, mean - sem, mean + sem, color=c, alpha=0.25, linewidth=0)
    ax.set_xlabel("time within sample (ms)")
    ax.set_ylabel("population rate (Hz)")
    ax.set_ylim(bottom=0)
    if len(layers) > 1:
        ax.legend()
    return fig


@_styled
def rate_histogram(rates_hz: Any, ax: Axes | None = None, bins: int = 20, fit: bool = True
                   ) -> Figure:
    """Histogram of firing rates on a logarithmic axis with the fitted log-normal.

    Silent neurons cannot sit on a log axis; their number is given in the legend.
    """
    fig, ax = _get_ax(ax, 3.5, 2.6)
    r = _finite(rates_hz, "rates_hz")
    if r.size == 0 or np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError("rates_hz must be a non-empty array of rates >= 0.")
    dist = rate_distribution(r, bins=bins)
    if dist.counts.sum() == 0:
        _empty_note(ax, f"all {r.size} neurons silent")
        ax.set_xlabel("firing rate (Hz)")
        return fig
    e = dist.edges
    ax.bar(e[:-1], dist.counts, width=np.diff(e), align="edge", color=COLORS[0], alpha=0.8,
           edgecolor="white", linewidth=0.4,
           label=f"{int(dist.counts.sum())} neurons" + (f" ({dist.n_silent} silent)"
                                                         if dist.n_silent else ""))
    ax.set_xscale("log")
    _log_axis(ax.xaxis)
    f = dist.fit
    if fit and np.isfinite(f.sigma) and f.sigma > 0:
        width = math.log10(e[1]) - math.log10(e[0])
        x = np.logspace(math.log10(e[0]), math.log10(e[-1]), 200)
        y = f.n_fit * f.pdf(x) * x * math.log(10) * width
        ax.plot(x, y, color=COLORS[1],
                label=f"log-normal fit\nmedian {f.median_hz:.3g} Hz, σ={f.sigma:.2f}")
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("neurons")
    ax.legend(loc="upper left")
    return fig


def _isi_edges(x: np.ndarray, dt_ms: float | None, max_bins: int = 60) -> np.ndarray:
    hi = float(x.max())
    if dt_ms is None:
        return np.linspace(0, hi * 1.0001, min(max_bins, max(5, int(np.sqrt(x.size)) + 1)))
    n_steps = round(hi / dt_ms)
    per = max(1, math.ceil(n_steps / max_bins))
    return (np.arange(0, n_steps + per + 1, per) + 0.5) * dt_ms


@_styled
def isi_histogram(isis_ms: Any, ax: Axes | None = None, dt_ms: float | None = None,
                  null: Any = None, log_y: bool | None = None) -> Figure:
    """Histogram of inter-spike intervals (ms), pooled over neurons.

    With ``dt_ms`` the bins are aligned to whole steps. ``null`` (e.g. the pooled ISIs of
    :func:`tbnn.analysis.rates.shuffle_bins`) is drawn as a grey outline; a geometric
    (Bernoulli) ISI law is a straight line on the log ``y`` axis used by default when the
    counts span more than two decades.
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
        return fig
    y = None
    if null is not None:
        y = _finite(null, "null")
        y = y[~np.isnan(y)]
    edges = _isi_edges(np.concatenate([x, y]) if y is not None and y.size else x, dt_ms)
    counts, _, _ = ax.hist(x, bins=edges, color=COLORS[0], alpha=0.8, label="network")
    if y is not None and y.size:
        ax.hist(y, bins=edges, histtype="step", color=NULL_COLOR, linewidth=1.2,
                label="shuffled null")
    pos = counts[counts > 0]
    if log_y is None:
        log_y = pos.size > 0 and pos.max() / pos.min() > 100
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("intervals")
    ax.legend()
    return fig


@_styled
def cv_rate_scatter(p: Any, cv: Any, ax: Axes | None = None, dt_ms: float | None = None
                    ) -> Figure:
    r"""CV of each neuron's ISIs against its rate, with the Bernoulli null
    :math:`CV = \sqrt{1 - p}`.

    ``p`` is the spike probability per step; with ``dt_ms`` the x axis is the rate in Hz
    (:math:`p \cdot 1000 / \Delta t`). Neurons with undefined CV (NaN) are left out and
    counted in the legend.
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
    if ok.any():
        ax.scatter(to_x(pp[ok]), cc[ok], s=8, color=COLORS[0], alpha=0.7, linewidths=0,
                   label=f"neurons ({int(ok.sum())}" + (f"; {n_nan} undefined)" if n_nan else ")"))
        lo, hi = pp[ok].min(), pp[ok].max()
        logx = hi / lo > 20
        grid = (np.logspace(np.log10(lo), np.log10(hi), 200) if logx
                else np.linspace(lo, hi, 200) if hi > lo else np.array([lo]))
        ax.plot(to_x(grid), np.sqrt(1 - grid), color=NULL_COLOR, linestyle="--",
                label="Bernoulli null √(1−p)", marker="" if grid.size > 1 else "_")
        if logx:
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
    else:
        _empty_note(ax, "no neuron with a defined CV")
    ax.axhline(1.0, color=BIO_COLOR, linewidth=3, alpha=0.8, zorder=0, label="Poisson / cortex ≈ 1")
    ax.set_xlabel("firing rate (Hz)" if dt is not None else "spike probability per step p")
    ax.set_ylabel("CV of ISIs")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower left")
    return fig


@_styled
def correlation_histogram(corrs: Any, ax: Axes | None = None, bins: int = 41, null: Any = None,
                          xlabel: str = "pairwise correlation") -> Figure:
    """Histogram of pairwise correlation coefficients (NaN pairs counted, not drawn),
    with an optional null distribution (e.g. of shuffled trains) as a grey outline."""
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
    ax.hist(c, bins=edges, color=COLORS[0], alpha=0.8,
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
    an optional null distribution (e.g. the Poisson-binomial of independent neurons)."""
    fig, ax = _get_ax(ax, 3.5, 2.6)
    d = _finite(network, "network")
    if d.size == 0 or np.any(np.isnan(d)) or np.any(d < 0):
        raise ValueError("network must be a non-empty distribution of probabilities >= 0.")
    k = np.arange(d.size)
    ax.bar(k, d, width=1.0, color=COLORS[0], alpha=0.8, label="network")
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


@_styled
def summary_panel(rows: Sequence[Mapping[str, Any]], ax: Axes | None = None,
                  title: str | None = None) -> Figure:
    """Network against null against biology, one row per measure.

    Each row is a mapping with ``label``, ``network`` and optionally ``null``, ``low``,
    ``high`` (biological range), ``units`` and ``min_scale`` (the least full scale of the
    row, e.g. 0.3 for correlations so that values near 0 are drawn near 0). Rows have
    different units, so each row is scaled to its own largest value; the numbers are
    printed at the right. The shaded band is the biological range, the filled dot the
    network, the open diamond the null.
    """
    if not isinstance(rows, Sequence) or len(rows) == 0:
        raise ValueError("rows must be a non-empty sequence of mappings with label and network.")
    fig, ax = _get_ax(ax, 6.0, 0.32 * len(rows) + 0.9)
    labels = []
    xmin = 0.0
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or "label" not in row or "network" not in row:
            raise ValueError("rows must be mappings with at least 'label' and 'network'.")
        y = len(rows) - 1 - i
        net = _f(row.get("network"))
        nul = _f(row.get("null"))
        lo, hi = _f(row.get("low")), _f(row.get("high"))
        vals = [abs(v) for v in (net, nul, lo, hi) if np.isfinite(v)]
        scale = max(vals) * 1.1 if vals and max(vals) > 0 else 1.0
        scale = max(scale, _f(row.get("min_scale")) if row.get("min_scale") else 0.0)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.fill_betweenx([y - 0.32, y + 0.32], lo / scale, hi / scale, color=BIO_COLOR,
                             linewidth=0, label="biology" if i == 0 else None)
        if np.isfinite(nul):
            ax.plot(nul / scale, y, marker="D", markersize=5, markerfacecolor="white",
                    markeredgecolor=NULL_COLOR, linestyle="none")
        if np.isfinite(net):
            ax.plot(net / scale, y, marker="o", markersize=5, color=COLORS[0], linestyle="none")
        for v in (net, nul, lo):
            if np.isfinite(v):
                xmin = min(xmin, v / scale)
        units = row.get("units") or ""
        bio = f"{_fmt(lo)}–{_fmt(hi)}" if np.isfinite(lo) and np.isfinite(hi) else "—"
        text = f"{_fmt(net)}  |  {_fmt(nul)}  |  {bio} {units}".rstrip()
        ax.text(1.02, y, text, transform=blended_transform_factory(ax.transAxes, ax.transData),
                va="center", ha="left", fontsize=7)
        labels.append(str(row["label"]))
    ax.set_yticks(range(len(rows) - 1, -1, -1), labels)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(min(xmin, 0.0) - 0.05, 1.02)
    ax.set_xticks([])
    ax.spines["bottom"].set_visible(False)
    ax.set_xlabel("each row scaled to its largest value; numbers at right: "
                  "network | null | biological range", fontsize=7, color="0.4")
    handles = [
        Line2D([], [], marker="o", color=COLORS[0], linestyle="none",
                                label="network"),
        Line2D([], [], marker="D", markerfacecolor="white",
                                markeredgecolor=NULL_COLOR, linestyle="none",
                                label="Bernoulli null"),
        Patch(color=BIO_COLOR, label="biological range"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=3)
    if title:
        ax.set_title(title)
    return fig


def _f(v: Any) -> float:
    if v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"summary values must be numbers or None, got {v!r}.") from None


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v:.3g}"
