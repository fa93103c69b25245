"""Spike rasters, with one neuron-sampling rule (:func:`subsample_neurons`) and the title that
states it."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from tbnn.core.validate import check_dt, check_int
from tbnn.io.spikes import as_stream, check_spikes
from tbnn.viz.plot.axes import RASTER_NEURONS, get_ax, styled
from tbnn.viz.style import layer_color, new_figure

__all__ = ["subsample_neurons", "raster_title", "raster"]


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
    k = RASTER_NEURONS if n is None else check_int(n, "neurons")
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


@styled
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
    streams, T_sample, length, shown = _shown_streams(layers, neurons, select, sort_by_rate)
    n_samples = length // T_sample if T_sample else 1
    if ax is None:
        rows = [max(0.9, min(2.6, 0.016 * s.shape[1] + 0.5)) for _, s, _ in streams]
        fig, axes = new_figure(6.4, sum(rows) + 0.9, nrows=len(streams), ncols=1,
                               squeeze=False, sharex=True, gridspec_kw={"height_ratios": rows})
        axes = list(axes[:, 0])
    else:
        fig, ax = get_ax(ax, 6.4, 3.0)
        axes = [ax]
    scale = dt if dt is not None else 1.0
    for i, (ax_i, (name, s, idx)) in enumerate(zip(axes, streams)):
        _draw_stream(ax_i, name, s, idx, layer_color(i) if len(streams) > 1 else None, scale,
                     T_sample, n_samples)
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


def _shown_streams(layers: dict[str, Any], neurons: int | None, select: str, sort_by_rate: bool):
    """Each layer as a stream ``[time, neurons]`` of its shown neurons: ``(streams, steps per
    sample or None, stream length, shown)`` with ``streams`` a list of ``(name, stream, neuron
    indices)`` and ``shown`` the ``(shown, in layer)`` counts that :func:`raster_title` states."""
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
    return streams, T_sample, length, shown


def _draw_stream(ax: Axes, name: str, s: np.ndarray, idx: np.ndarray, color: str | None,
                 scale: float, T_sample: int | None, n_samples: int) -> None:
    """One layer's panel (``color``: the layer's, None for black of a single layer): a cell
    per step and neuron, cell borders when few, sample boundaries, and the neuron axis
    labelled with the shown neurons' own indices."""
    length, n = s.shape
    cmap = ListedColormap(["white", color or "#000000"])
    ax.imshow(s.T, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=1,
              extent=(0, length * scale, n - 0.5, -0.5))
    if n <= 60 and length <= 200:  # thin cell borders so adjacent spikes stay distinct
        ax.hlines(np.arange(n - 1) + 0.5, 0, length * scale, colors="white",
                  linewidth=0.3)
        ax.vlines(np.arange(1, length) * scale, -0.5, n - 0.5, colors="white",
                  linewidth=0.3)
    if T_sample is not None and n_samples > 1:
        ax.vlines(np.arange(1, n_samples) * T_sample * scale, -0.5, n - 0.5,
                  colors="0.45", linewidth=0.7)
    # neuron axis: the shown neurons' own indices
    ticks = np.unique(np.linspace(0, n - 1, min(n, 4)).round().astype(int))
    ax.set_yticks(ticks, [str(int(idx[t])) for t in ticks])
    ax.set_ylim(n - 0.5, -0.5)
    label = "neuron" if not name else f"{name}\nneuron"
    ax.set_ylabel(label, color=color or "black")
    ax.set_xlim(0, length * scale)
