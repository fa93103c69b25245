"""One small panel per measure: the network's distribution, the null's, an optional
recording's and the biological band (:func:`measure_panels`)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tbnn.viz.plot.axes import COLORS, finite_array, log_axis, styled
from tbnn.viz.style import BIO_COLOR, NULL_COLOR, RECORDING_COLOR, new_figure

__all__ = ["measure_panels"]


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


@styled
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
        has_rec |= _draw_panel(axes[k // ncols, k % ncols], panel, rng)
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    _legend(fig, has_rec, ncols)
    if title:
        fig.suptitle(title)
    return fig


def _draw_panel(ax: Axes, panel: Mapping[str, Any], rng: np.random.Generator) -> bool:
    """One measure's panel: its rows, band, axis and title; True when it holds a recording."""
    if not isinstance(panel, Mapping) or "label" not in panel or "network" not in panel:
        raise ValueError("panels must be mappings with at least 'label' and 'network'.")
    rows = _panel_rows(panel)
    lo, hi = panel.get("low"), panel.get("high")
    log, left, right = _axis_range(rows, lo, hi, panel.get("log"))
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
        log_axis(ax.xaxis)
    units = panel.get("units") or ""
    xl = (units or "dimensionless") + (f" (log axis;\n{n_le0} values ≤ 0 at left edge)" if n_le0
                               else " (log axis)" if log else "")
    ax.set_xlabel(xl)
    ax.set_title(_panel_title(panel, lo, hi), fontsize=7.5, loc="left")
    return panel.get("recording") is not None


def _panel_rows(panel: Mapping[str, Any]) -> list[tuple[str, np.ndarray, str]]:
    """``(row label, values, colour)`` of the network, then the null and the recording if given."""
    rows = [("network", finite_array(panel["network"], "network"), COLORS[0])]
    if panel.get("null") is not None:
        rows.append((panel.get("null_label", "null"), finite_array(panel["null"], "null"),
                     NULL_COLOR))
    if panel.get("recording") is not None:
        rows.append((panel.get("recording_label", "recording"),
                     finite_array(panel["recording"], "recording"), RECORDING_COLOR))
    return rows


def _axis_range(rows: list[tuple[str, np.ndarray, str]], lo: Any, hi: Any,
                log: bool | None) -> tuple[bool, float, float]:
    """Whether the axis is logarithmic (``log`` None: when the positive values and band span
    more than 1.5 decades and none is negative) and its limits, padded around the values."""
    allv = np.concatenate([r[1][~np.isnan(r[1])] for r in rows])
    band = [float(b) for b in (lo, hi) if b is not None]
    pos = np.concatenate([allv[allv > 0], [b for b in band if b > 0]])
    if log is None:
        log = bool(pos.size >= 2 and pos.min() > 0 and pos.max() / pos.min() > 10**1.5
                   and (allv >= 0).all())
    if log and pos.size == 0:
        log = False
    if log:
        return log, float(pos.min()) / 2.0, float(pos.max()) * 2.0
    both = np.concatenate([allv, band]) if allv.size or band else np.array([0.0, 1.0])
    a, b = float(both.min()), float(both.max())
    pad = 0.08 * (b - a) if b > a else max(abs(a) * 0.1, 0.05)
    return log, a - pad, b + pad


def _panel_title(panel: Mapping[str, Any], lo: Any, hi: Any) -> str:
    """The measure (with its statistic) and the biological range with its source, wrapped."""
    head = str(panel["label"]) + (f" ({panel['statistic']})" if panel.get("statistic")
                                  else "")
    bio = ""
    if lo is not None and hi is not None:
        bio = f"cortex {float(lo):.3g}–{float(hi):.3g}" + (
            f" ({panel['citation']})" if panel.get("citation") else "")
    return "\n".join(textwrap.wrap(head, 36) + (textwrap.wrap(bio, 38) if bio else []))


def _legend(fig: Figure, has_rec: bool, ncols: int) -> None:
    """The figure's legend: network, null, the recording if any panel holds one, biology."""
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
