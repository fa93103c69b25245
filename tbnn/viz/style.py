"""The one figure style of tbnn: colours by layer and by model, font sizes, dpi, formats.

Every figure of the package (:mod:`tbnn.viz.plot`, the analysis report) and of the experiment
scripts (``simulations/``) is drawn inside :func:`context` and written by
:func:`save_figure`, so colours, fonts and resolution agree everywhere. Colours are the
Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design").

>>> layer_color(0) == LAYER_COLORS[0], model_color("tbn")
(True, '#0072B2')
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbnn.viz import formats as formats_registry

__all__ = [
    "BIO_COLOR",
    "DPI",
    "FORMATS",
    "LAYER_COLORS",
    "MODEL_COLORS",
    "NULL_COLOR",
    "RC",
    "RECORDING_COLOR",
    "context",
    "layer_color",
    "model_color",
    "new_figure",
    "save_figure",
]

#: Okabe–Ito palette, in the order layers are coloured.
LAYER_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                "#000000", "#F0E442"]
#: One colour per model kind, used by every experiment figure.
MODEL_COLORS = {"tbn": "#0072B2", "dat": "#0072B2", "ste": "#E69F00", "float": "#000000",
                "lif": "#D55E00", "tbn_cnn": "#56B4E9", "lif_cnn": "#CC79A7"}
NULL_COLOR = "#7f7f7f"
BIO_COLOR = "#b8dcb8"
RECORDING_COLOR = "#CC79A7"
DPI = 100
#: Output formats: PNG always, a vector format on request (the live names of the
#: registry :mod:`tbnn.viz.formats`).
FORMATS = formats_registry.FORMATS

RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.2,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "image.interpolation": "nearest",
}


def layer_color(i: int) -> str:
    """Colour of the ``i``-th layer (cycling through :data:`LAYER_COLORS`).

    >>> layer_color(8) == layer_color(0)
    True
    """
    return LAYER_COLORS[int(i) % len(LAYER_COLORS)]


def model_color(name: str) -> str:
    """Colour of a model kind (``tbn``, ``ste``, ``float``, ``lif``, ...); grey if unknown."""
    return MODEL_COLORS.get(str(name).lower(), NULL_COLOR)


@contextlib.contextmanager
def context() -> Iterator[None]:
    """Matplotlib rc settings of the house style, for the duration of a ``with`` block."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def new_figure(width: float = 4.0, height: float = 3.0, nrows: int = 1, ncols: int = 1,
               **subplots: Any) -> tuple[Any, Any]:
    """A new figure on the Agg canvas (no pyplot, nothing left open), constrained layout,
    with ``nrows x ncols`` axes in the house style.

    >>> fig, ax = new_figure(2, 1)
    >>> fig.get_size_inches().tolist()
    [2.0, 1.0]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with context():
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        subplots.setdefault("squeeze", True)
        axes = fig.subplots(nrows, ncols, **subplots)
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = DPI,
                formats: tuple[str, ...] = ()) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file in the same folder, then
    rename), and also in each vector format of ``formats`` next to it (same stem).

    The format of ``path`` comes from its suffix (``.png``, ``.pdf``, ``.svg``); the
    folder must exist.

    Raises
    ------
    ValueError
        If the suffix or a format is not one of :data:`FORMATS`, or the folder is missing.

    >>> import tempfile, os
    >>> fig, ax = new_figure(2, 1)
    >>> p = save_figure(fig, os.path.join(tempfile.mkdtemp(), "f.png"), formats=("svg",))
    >>> sorted(os.listdir(p.parent))
    ['f.png', 'f.svg']
    """
    from tbnn.io.files import atomic_write

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"path must end in {formats_registry.suffix_list()}; got {path.name!r}.")
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {f!r}.")
    if not path.parent.is_dir():
        raise ValueError(f"path must be inside an existing folder, {path.parent} does not exist.")
    with context():
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
        for f in formats:
            if f != fmt:
                atomic_write(path.with_suffix("." + f),
                             lambda fh, f=f: fig.savefig(fh, format=f, dpi=dpi))
    return path
