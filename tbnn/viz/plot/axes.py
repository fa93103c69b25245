"""Shared pieces of every tbnn figure: a styled function, a figure with one axis, checked
finite values, log axes, an empty-panel note."""

from __future__ import annotations

import functools
from typing import Any

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from tbnn.viz.style import RC, layer_color, new_figure

__all__ = ["RASTER_NEURONS"]


RASTER_NEURONS = 128
COLORS = [layer_color(i) for i in range(8)]


def styled(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


def get_ax(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is None:
        return new_figure(width, height)
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
    return ax.figure, ax


def finite_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} must hold finite values or NaN, got an infinite value.")
    return arr


def log_axis(axis: Any) -> None:
    """Readable labels on a log axis that may span less than a decade: 1, 2, 5 x 10^k."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0,)))
    axis.set_major_formatter(fmt)
    axis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    axis.axes.autoscale_view()
    lo, hi = axis.get_view_interval()
    axis.set_minor_formatter(fmt if hi / max(lo, 1e-300) < 200 else NullFormatter())


def empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
