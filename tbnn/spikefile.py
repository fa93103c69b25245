"""The simulator's spike archive (``spikes.npz``): the one place that writes and reads it.

Layout of the archive (a NumPy ``.npz``, always loaded with ``allow_pickle=False``):

==================  =========================  ==========================================
key                 dtype / shape              meaning
==================  =========================  ==========================================
``<layer name>``    bool ``[samples, T, n]``   spikes of one spiking layer, one per layer
``layer_names``     unicode ``[layers]``       layer names in network order
``labels``          int64 ``[samples]``        true class of each sample
``predictions``     int64 ``[samples]``        predicted class of each sample
``timesteps``       int64 scalar               ``T``, time steps per sample
``dt_ms``           float64 scalar             declared duration of one step, in ms
``tbnn_spikes_version``  int64 scalar          format version (currently 1)
``extra``: any other arrays passed as ``extra`` to :func:`save_spikes`
==================  =========================  ==========================================

Samples are presented one after another; analysis that needs one long train per neuron
("stream view", as in a recording) concatenates them in sample order.

Also here: :func:`to_neo`, which converts boolean spike arrays into ``neo.SpikeTrain``
objects for use with Elephant (needs the ``bio`` extra).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import atomic_write

__all__ = ["FORMAT_VERSION", "SpikeRecord", "load_spikes", "save_spikes", "to_neo"]

FORMAT_VERSION = 1
_RESERVED = ("layer_names", "labels", "predictions", "timesteps", "dt_ms", "tbnn_spikes_version")


@dataclass
class SpikeRecord:
    """Contents of a spikes archive.

    Attributes
    ----------
    layers : dict[str, np.ndarray]
        Boolean spikes ``[samples, timesteps, neurons]`` per layer, in network order.
    labels, predictions : np.ndarray
        int64 ``[samples]``.
    timesteps : int
        Time steps per sample.
    dt_ms : float
        Declared duration of one time step in milliseconds.
    extra : dict[str, np.ndarray]
        Any further arrays stored in the archive.
    path : Path or None
        Where the record was read from.
    """

    layers: dict[str, np.ndarray]
    labels: np.ndarray
    predictions: np.ndarray
    timesteps: int
    dt_ms: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def samples(self) -> int:
        """Number of samples in the archive."""
        return int(self.labels.shape[0])

    @property
    def layer_names(self) -> list[str]:
        """Layer names in network order."""
        return list(self.layers)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_int_vector(x: Any, name: str) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(
            f"{name} must be a 1-D integer array with one entry per sample, "
            f"got dtype {arr.dtype} and shape {arr.shape}."
        )
    return arr.astype(np.int64)


def save_spikes(
    path: str | os.PathLike,
    layers: Mapping[str, Any],
    labels: Any,
    predictions: Any,
    timesteps: int,
    dt_ms: float,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a spikes archive atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
        Destination file, conventionally ``SIMDIR/spikes.npz``.
    layers : mapping of str to bool array ``[samples, timesteps, neurons]``
        Spikes of each spiking layer, in network order (NumPy arrays or torch tensors).
    labels, predictions : int array ``[samples]``
        True and predicted class of each sample.
    timesteps : int
        Time steps per sample (``>= 1``); must equal each layer's second axis.
    dt_ms : float
        Declared duration of one time step in ms (finite, ``> 0``).
    extra : mapping of str to array, optional
        Further non-object arrays to store (keys must not clash with layer names or the
        reserved keys ``layer_names, labels, predictions, timesteps, dt_ms``).

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    if not isinstance(layers, Mapping) or len(layers) == 0:
        raise ValueError("layers must be a non-empty mapping from layer name to spike array.")
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
        raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}.")
    try:
        dt = float(dt_ms)
    except (TypeError, ValueError):
        raise ValueError(f"dt_ms must be a finite number > 0, got {dt_ms!r}.") from None
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt_ms must be a finite number > 0, got {dt_ms!r}.")
    labels_a = _check_int_vector(labels, "labels")
    preds_a = _check_int_vector(predictions, "predictions")
    if preds_a.shape != labels_a.shape:
        raise ValueError(
            f"predictions must have one entry per sample like labels ({labels_a.shape[0]}), "
            f"got {preds_a.shape[0]}."
        )
    n_samples = labels_a.shape[0]

    arrays: dict[str, np.ndarray] = {}
    names: list[str] = []
    for name, spikes in layers.items():
        if not isinstance(name, str) or not name or name in _RESERVED:
            raise ValueError(
                f"layer names must be non-empty strings other than {', '.join(_RESERVED)}, "
                f"got {name!r}."
            )
        arr = _to_numpy(spikes)
        if arr.dtype != np.bool_:
            raise ValueError(
                f"layer {name!r} has dtype {arr.dtype}; spikes must be boolean "
                "arrays [samples, timesteps, neurons]."
            )
        if arr.ndim != 3 or arr.shape[0] != n_samples or arr.shape[1] != timesteps:
            raise ValueError(
                f"layer {name!r} has shape {arr.shape}; spikes must have shape "
                f"[samples={n_samples}, timesteps={timesteps}, neurons]."
            )
        names.append(name)
        arrays[name] = np.ascontiguousarray(arr)

    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key or key in _RESERVED or key in arrays:
            raise ValueError(
                f"extra key {key!r} is not allowed; use a non-empty name that is not a layer "
                "name or a reserved key."
            )
        arr = _to_numpy(value)
        if arr.dtype == object:
            raise ValueError(f"extra array {key!r} has dtype object; only plain numeric, "
                             "boolean or string arrays can be stored without pickle.")
        arrays[key] = arr

    arrays["layer_names"] = np.array(names, dtype=np.str_)
    arrays["labels"] = labels_a
    arrays["predictions"] = preds_a
    arrays["timesteps"] = np.array(int(timesteps), dtype=np.int64)
    arrays["dt_ms"] = np.array(dt, dtype=np.float64)
    arrays["tbnn_spikes_version"] = np.array(FORMAT_VERSION, dtype=np.int64)

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"path must be inside an existing folder, {parent} does not exist.")
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def _not_archive(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a tbnn spikes archive ({why}).")


def _scalar(npz: Any, key: str, path: Path) -> np.ndarray:
    arr = npz[key]
    if arr.ndim != 0 and arr.size != 1:
        raise _not_archive(path, f"'{key}' must be a scalar, got shape {arr.shape}")
    return arr.reshape(())


def load_spikes(path: str | os.PathLike) -> SpikeRecord:
    """Read and validate a spikes archive written by :func:`save_spikes`.

    Parameters
    ----------
    path : path-like
        The ``spikes.npz`` file (or a simulation folder that contains one).

    Returns
    -------
    SpikeRecord

    Raises
    ------
    ValueError
        If the file does not exist, is not a tbnn spikes archive, holds a non-boolean
        layer, or its shapes disagree with ``labels`` and ``timesteps``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "spikes.npz"
    if not path.is_file():
        raise ValueError(f"spikes archive {path} does not exist; pass the spikes.npz written "
                         "by `tbnn simulate` or its folder.")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _not_archive(path, f"cannot be read as .npz: {exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _not_archive(path, "it is a single .npy array, not an .npz archive")
    with npz:
        try:
            keys = set(npz.files)
            missing = [k for k in ("layer_names", "labels", "predictions", "timesteps", "dt_ms")
                       if k not in keys]
            if missing:
                raise _not_archive(path, f"missing keys {', '.join(missing)}")
            names_arr = npz["layer_names"]
            if names_arr.dtype.kind != "U" or names_arr.ndim != 1 or names_arr.size == 0:
                raise _not_archive(path, "'layer_names' must be a non-empty 1-D unicode array")
            names = [str(n) for n in names_arr]
            absent = [n for n in names if n not in keys]
            if absent:
                raise _not_archive(path, f"layers listed but not stored: {', '.join(absent)}")
            labels = npz["labels"]
            preds = npz["predictions"]
            for key, arr in (("labels", labels), ("predictions", preds)):
                if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                    raise _not_archive(path, f"'{key}' must be a 1-D integer array")
            if preds.shape != labels.shape:
                raise ValueError(f"{path}: predictions ({preds.shape[0]}) and labels "
                                 f"({labels.shape[0]}) must have one entry per sample.")
            t_arr = _scalar(npz, "timesteps", path)
            if not np.issubdtype(t_arr.dtype, np.integer) or int(t_arr) < 1:
                raise _not_archive(path, "'timesteps' must be an integer >= 1")
            timesteps = int(t_arr)
            dt_arr = _scalar(npz, "dt_ms", path)
            if dt_arr.dtype.kind not in "fiu" or not np.isfinite(dt_arr) or float(dt_arr) <= 0:
                raise _not_archive(path, "'dt_ms' must be a finite number > 0")
            dt = float(dt_arr)
            n_samples = labels.shape[0]
            layers: dict[str, np.ndarray] = {}
            for name in names:
                arr = npz[name]
                if arr.dtype != np.bool_:
                    raise ValueError(
                        f"layer {name!r} in {path} has dtype {arr.dtype}; spikes must be boolean."
                    )
                if arr.ndim != 3 or arr.shape[0] != n_samples or arr.shape[1] != timesteps:
                    raise ValueError(
                        f"layer {name!r} in {path} has shape {arr.shape}; expected "
                        f"[samples={n_samples}, timesteps={timesteps}, neurons]."
                    )
                layers[name] = arr
            extra = {k: npz[k] for k in npz.files if k not in _RESERVED and k not in layers}
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise _not_archive(path, "it holds pickled object arrays") from None
            raise
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise _not_archive(path, f"corrupt member: {exc}") from None
    return SpikeRecord(
        layers=layers,
        labels=labels.astype(np.int64),
        predictions=preds.astype(np.int64),
        timesteps=timesteps,
        dt_ms=dt,
        extra=extra,
        path=path,
    )


def to_neo(spikes: Any, dt_ms: float) -> list:
    """Convert boolean spikes to one ``neo.SpikeTrain`` per neuron (for Elephant).

    A spike in step ``i`` becomes a spike at time ``i * dt_ms`` ms (the start of its bin),
    with ``t_start = 0`` and ``t_stop = n_steps * dt_ms``, so that binning with
    ``bin_size = dt_ms`` recovers the array. ``[samples, T, neurons]`` input is first
    concatenated along time (stream view).

    Parameters
    ----------
    spikes : bool array ``[time]``, ``[time, neurons]`` or ``[samples, time, neurons]``
    dt_ms : float
        Duration of one step in ms (``> 0``).

    Returns
    -------
    list of neo.SpikeTrain
        One train per neuron, times in ms.
    """
    from tbnn.analysis.rates import as_stream, check_dt

    dt = check_dt(dt_ms)
    stream = as_stream(spikes)
    try:
        import neo
        import quantities as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "to_neo needs neo and quantities, which come with the bio extra: "
            "pip install tbnn[bio]"
        ) from exc
    n_steps = stream.shape[0]
    t_stop = n_steps * dt
    return [
        neo.SpikeTrain(np.flatnonzero(stream[:, i]) * dt, units=pq.ms, t_start=0.0,
                       t_stop=t_stop)
        for i in range(stream.shape[1])
    ]
