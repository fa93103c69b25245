"""Figure of a network beside a recording: one small panel per measure.

Each panel shows, on the measure's axis, the network's value and the recording's (the
compared statistic, with the spread as ± one standard deviation of the per-neuron / per-unit
values), each side's null (hollow marker: Bernoulli at the network neurons' own rates,
Poisson at the units' own rates) and the literature band of :mod:`tbnn.analysis.reference`
(shaded), from the dict :func:`tbnn.analysis.recording_measures.compare_with_recording`
returns.
"""

from __future__ import annotations

import math
import os
from typing import Any

from tbnn.analysis.measures import MEASURES, RegistryView, measure_keys

__all__ = ["PANEL_ORDER", "plot_recording_comparison"]

PANEL_ORDER = RegistryView(lambda m: True if m.panel else None)
"""Measures drawn, in registration order (those present in the comparison): a live view of
the records' ``panel`` in :mod:`tbnn.analysis.measures`."""


#: Colour of each side of the comparison.
_COLORS = {"network": "C0", "recording": "C1"}


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def plot_recording_comparison(comparison: dict[str, Any], path: str | os.PathLike | None = None,
                              title: str | None = None, ncols: int = 4):
    """Draw the network-beside-recording panels; save to ``path`` (PNG) if given.

    Parameters
    ----------
    comparison : dict
        The result of :func:`tbnn.analysis.recording_measures.compare_with_recording`.
    path : path-like, optional
        PNG file to write (written whole or not at all).
    title : str, optional
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``comparison`` holds no measures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = comparison.get("measures") if isinstance(comparison, dict) else None
    keys = [k for k in measure_keys(panel=True) if ms and k in ms]
    if not keys:
        raise ValueError("comparison must be the dict compare_with_recording returns, with measures.")
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 1.55 * nrows + 0.6), squeeze=False,
                             constrained_layout=True)
    for ax, key in zip(axes.flat, keys):
        _draw_measure(ax, key, ms[key])
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    _legend(fig)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        from tbnn.io.files import atomic_write

        try:
            atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
        finally:
            plt.close(fig)
    return fig


def _draw_measure(ax: Any, key: str, e: dict[str, Any]) -> None:
    """One measure's panel: the band, network and recording rows, limits around them, title."""
    log = MEASURES[key].log_axis
    band = e.get("band")
    if band is not None:
        ax.axvspan(band["low"], band["high"], color="tab:green", alpha=0.18, lw=0)
    xs = []
    for row, side in enumerate(("network", "recording")):
        xs += _draw_side(ax, 1 - row, e, side, log)
    if band is not None:
        xs += [band["low"], band["high"]]
    xs = [x for x in xs if math.isfinite(x) and (x > 0 or not log)]
    if log and xs:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 2)
    elif xs:
        span = (max(xs) - min(xs)) or 1.0
        ax.set_xlim(min(xs) - 0.12 * span, max(xs) + 0.12 * span)
    ax.set_ylim(-0.7, 1.7)
    ax.set_yticks([1, 0], ["network", "recording"], fontsize=8)
    units = f" ({e['units']})" if e.get("units") else ""
    ax.set_title(f"{e.get('label', key)}{units}, {e['statistic']}", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3, lw=0.4)


def _draw_side(ax: Any, y: float, e: dict[str, Any], side: str, log: bool) -> list[float]:
    """One side's row (``side``: "network" or "recording") at height ``y``: its value with
    ± one standard deviation (clipped at a tenth of the value on a log axis) and its null;
    returns the x positions drawn."""
    c = _COLORS[side]
    v = _num(e[side]["value"])
    s = e[side].get("summary") or {}
    sd = _num(s.get("std"))
    null = _num(e["null"][side])
    xs = []
    if math.isfinite(v):
        lo = v - sd if math.isfinite(sd) else v
        if log:
            lo = max(lo, v / 10)
        ax.errorbar([v], [y], xerr=[[v - lo], [sd if math.isfinite(sd) else 0]], fmt="o", color=c,
                    ms=6, capsize=3)
        xs += [lo, v + (sd if math.isfinite(sd) else 0)]
    if math.isfinite(null):
        ax.plot([null], [y], marker="D", mfc="none", mec=c, ms=6, ls="none")
        xs.append(null)
    return xs


def _legend(fig: Any) -> None:
    """Markers of both sides and their nulls, and the literature band."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], marker="o", color="C0", ls="none", label="network (± 1 sd)"),
               Line2D([], [], marker="o", color="C1", ls="none", label="recording (± 1 sd)"),
               Line2D([], [], marker="D", mfc="none", mec="0.3", ls="none",
                      label="null: Bernoulli (network) / Poisson (recording) at the same rates"),
               Patch(color="tab:green", alpha=0.3, label="literature band (cortex in vivo)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=7)
