"""``tbnn raster``: draw the raster of a recorded run (or any spike archive) to a file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tbnn.viz import plot
from tbnn.io.files import stage_file
from tbnn.analysis.runfiles import read_archive, select_layers
from tbnn.viz.formats import check_formats

__all__ = ["default_raster_samples", "parse_sample_range", "raster_run"]


def default_raster_samples(samples: int, timesteps: int) -> int:
    """Samples a raster shows by default: at most 10, and about 400 steps in all.

    >>> default_raster_samples(100, 4), default_raster_samples(100, 100)
    (10, 4)
    """
    return int(max(1, min(samples, 10, max(1, 400 // timesteps))))


def parse_sample_range(samples: Any, S: int) -> tuple[int, int]:
    """``"A:B"`` (half-open, as a Python slice; either end may be left out) as ``(A, B)``.

    >>> parse_sample_range("2:5", 10), parse_sample_range(":3", 10), parse_sample_range("7:", 10)
    ((2, 5), (0, 3), (7, 10))
    """
    if not isinstance(samples, str):
        raise ValueError(f"samples must be a string 'A:B' of sample indices, got {samples!r}.")
    m = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", samples)
    if not m:
        raise ValueError(f"samples must be a string 'A:B' of sample indices, got {samples!r}.")
    a = int(m.group(1)) if m.group(1) else 0
    b = int(m.group(2)) if m.group(2) else S
    if not (0 <= a < b <= S):
        raise ValueError(f"samples must be 'A:B' with 0 <= A < B <= {S} (the archive holds "
                         f"{S} samples), got {samples!r}.")
    return a, b


def raster_run(simdir: str | os.PathLike, out_png: str | os.PathLike, layer: str | None = None,
               sample: int | None = None, samples: str | None = None, *,
               sort_by_rate: bool = False, neurons: int | None = None, select: str = "even",
               formats: tuple[str, ...] = (), overwrite: bool = False, _flag: str = "out_png") -> Path:
    """Draw a raster of a recorded run to ``out_png``: one panel per layer, neurons
    subsampled by :func:`tbnn.viz.plot.subsample_neurons` and the rule stated in the title.

    Parameters
    ----------
    simdir : path-like
        Folder written by ``tbnn simulate``, its ``spikes.npz``, or any ``.npz`` of
        boolean ``[samples, T, neurons]`` arrays.
    out_png : path-like
        Output ``.png``; its folder is created after validation; written atomically.
    layer : str, optional
        One layer; default all layers, one panel each.
    sample : int, optional
        One sample index.
    samples : str, optional
        A range ``"A:B"`` of sample indices (half-open, as a Python slice).
        Default (neither given): :func:`default_raster_samples`.
    sort_by_rate : bool
        Order the shown neurons by spike count.
    neurons : int, optional
        Neurons shown per layer (default :data:`tbnn.viz.plot.RASTER_NEURONS`).
    select : {"even", "active"}
        Which neurons: evenly spaced indices or the most active.
    formats : tuple of str
        Also write these vector formats (``"svg"``, ``"pdf"``) next to the PNG.
    overwrite : bool
        Replace existing files (each written complete, then renamed over the old one).

    Returns
    -------
    Path of the PNG written.

    Raises
    ------
    ValueError
        Naming the parameter, on a missing archive, an unknown layer, a bad sample or
        range, a non-``.png`` output, or a bad ``neurons`` / ``select`` / ``formats``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "rec.npz"), h=np.random.default_rng(0).random((4, 5, 30)) < 0.2)
    >>> raster_run(os.path.join(d, "rec.npz"), os.path.join(d, "r.png"), neurons=10).name
    'r.png'
    """
    rec, spikes_path, _, _ = read_archive(simdir)  # simulation.json and spikes_sha256 checked first, as analyze does
    names = select_layers(rec, layer)
    S = rec.samples
    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise ValueError(f"{_flag} must be a file name ending in .png, got {str(out)!r}.")
    if out.exists() and out.is_dir():
        raise ValueError(f"{_flag} must be a file name ending in .png, {out} is a folder.")
    formats = check_formats(formats)
    if sample is not None and samples is not None:
        raise ValueError("give either sample or samples, not both.")
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) \
                or not 0 <= sample < S:
            raise ValueError(f"sample must be an integer in [0, {S - 1}] (the archive holds "
                             f"{S} samples), got {sample!r}.")
        a, b = int(sample), int(sample) + 1
    elif samples is not None:
        a, b = parse_sample_range(samples, S)
    else:
        a, b = 0, default_raster_samples(S, rec.timesteps)
    if select not in ("even", "active"):
        raise ValueError(f"select must be 'even' or 'active', got {select!r}.")
    plot.subsample_neurons(np.zeros(1), neurons, select)  # validates neurons
    data = ({n: rec.layers[n][a:b] for n in names} if len(names) > 1
            else rec.layers[names[0]][a:b])
    prefix = spikes_path.parent.name if spikes_path.name == "spikes.npz" else spikes_path.name
    if len(names) == 1:
        prefix = f"{prefix} · layer {names[0]}"
    fig = plot.raster(data, dt_ms=rec.dt_ms if rec.dt_declared else None,
                      sort_by_rate=sort_by_rate, title=prefix,
                      sample_offset=a, neurons=neurons, select=select)
    # the single owner of the file: refused targets are refused before anything is written, the
    # PNG carries its own digest and its copies' (so --overwrite replaces only tbnn's own figure)
    with stage_file(out, overwrite=overwrite, flag=_flag, formats=tuple(formats), source=str(simdir)) as tmp:
        plot.save_figure(fig, tmp, formats=tuple(formats))  # copies beside the temporary PNG, under its name
    return out
