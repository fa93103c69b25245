"""Inputs and outputs of an analysis: where the archive is, which layers, JSON-safe values,
file names for figures, the output folder.

Both ``tbnn analyze`` (:mod:`tbnn.analysis.report`) and ``tbnn raster``
(:mod:`tbnn.analysis.raster`) resolve their input with :func:`resolve_archive`, so either
accepts a simulation folder, a ``spikes.npz``, or any plain ``.npz`` of boolean
``[samples, T, neurons]`` arrays (see :mod:`tbnn.io.spikes`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any


from tbnn.core.validate import json_ready
from tbnn.io.files import atomic_write
from tbnn.io.spikes import SpikeRecord

__all__ = ["check_out_dir", "file_name_for", "read_archive", "relative_to", "resolve_archive",
           "select_layers", "write_bytes"]


def resolve_archive(source: str | os.PathLike, name: str = "simdir") -> tuple[Path, Path]:
    """``(archive, simulation.json)`` paths of a folder or of an ``.npz`` file.

    A folder means its ``spikes.npz``; a file means itself, with the ``simulation.json``
    next to it (which may be absent).

    Raises
    ------
    ValueError
        Naming ``name``, if ``source`` does not exist.

    >>> resolve_archive("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: simdir must be a folder written by `tbnn simulate`, ...; /nonexistent does not exist.
    """
    p = Path(source)
    if p.is_dir():
        return p / "spikes.npz", p / "simulation.json"
    if p.is_file():
        return p, p.parent / "simulation.json"
    raise ValueError(f"{name} must be a folder written by `tbnn simulate`, a spikes.npz or "
                     f"any .npz of boolean [samples, T, neurons] arrays; {p} does not exist.")


def read_archive(source: str | os.PathLike, name: str = "simdir"
                 ) -> tuple[SpikeRecord, Path, Path, dict[str, Any] | None]:
    """``(record, archive path, simulation.json path, its content or None)`` of a folder or
    an ``.npz`` file.

    ``simulation.json`` beside the archive is read first and verified (its checksum, and
    the archive's SHA-256 against its ``spikes_sha256``), so a replaced or corrupted archive
    is refused before it is parsed; then the archive is read
    (:func:`tbnn.io.spikes.load_spikes`: sizes, headers and CRCs checked). ``tbnn analyze``
    and ``tbnn raster`` both read their input here.

    Raises
    ------
    ValueError
        Naming ``name`` or the file, as :func:`resolve_archive`,
        :func:`tbnn.analysis.energy.read_simulation` and :func:`tbnn.io.spikes.load_spikes`.
    """
    from tbnn.analysis.energy import read_simulation
    from tbnn.io.spikes import load_spikes

    spikes_path, sim_path = resolve_archive(source, name)
    sim = read_simulation(sim_path)
    return load_spikes(spikes_path), spikes_path, sim_path, sim


def select_layers(rec: SpikeRecord, layer: str | None) -> list[str]:
    """All layer names of ``rec``, or ``[layer]`` after checking that it exists.

    >>> from tbnn.io.spikes import SpikeRecord
    >>> import numpy as np
    >>> rec = SpikeRecord({"a": np.zeros((1, 1, 1), bool)}, None, None, 1, 1.0)
    >>> select_layers(rec, None), select_layers(rec, "a")
    (['a'], ['a'])
    """
    if layer is None:
        return rec.layer_names
    if layer not in rec.layers:
        raise ValueError(f"layer must be one of {', '.join(rec.layer_names)}, got {layer!r}.")
    return [layer]


def file_name_for(name: str, used: set[str]) -> str:
    """A file-name-safe, unique stem for a layer name (recorded in ``used``).

    >>> used = set()
    >>> file_name_for("hidden 1", used), file_name_for("hidden 1", used)
    ('hidden_1', 'hidden_1_2')
    """
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    safe, k = base, 1
    while safe in used:
        k += 1
        safe = f"{base}_{k}"
    used.add(safe)
    return safe


def relative_to(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (POSIX separators), so that a report keeps naming
    its input after the folders around it are moved or renamed together.

    >>> relative_to(Path("/a/sim/spikes.npz"), Path("/a/analysis"))
    '../sim/spikes.npz'
    """
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(data))


def check_out_dir(out: str | os.PathLike) -> Path:
    """``out`` as a Path, refused if it exists and is not a folder.

    >>> check_out_dir("new-folder").name
    'new-folder'
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder for the analysis, {out} is a file.")
    return out


#: A JSON-safe copy: NumPy values to Python, NaN and infinities to None (the one cleaner,
#: :func:`tbnn.core.validate.json_ready`, under the name this module has always exported).
to_json = json_ready
