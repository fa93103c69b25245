"""Spike archives on disk (``.npz``, sample-first ``[samples, T, neurons]`` per layer): save and
load, with every array and key checked."""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tbnn.core.validate import check_dt, check_int, check_labels
from tbnn.io.bounded import open_npz
from tbnn.io.files import atomic_write
from tbnn.io.spikes.checks import to_numpy
from tbnn.io.spikes.record import DEFAULT_DT_MS, RESERVED, SPIKES_FORMAT_VERSION, SpikeRecord

__all__ = ["save_spikes", "save_time_first", "load_spikes"]


def save_spikes(
    path: str | os.PathLike,
    layers: Mapping[str, Any],
    labels: Any = None,
    predictions: Any = None,
    timesteps: int | None = None,
    dt_ms: float = DEFAULT_DT_MS,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a spikes archive atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
        Destination file, conventionally ``SIMDIR/spikes.npz``.
    layers : mapping of str to bool array ``[samples, timesteps, neurons]``
        Spikes of each spiking layer, in network order (NumPy arrays or torch tensors),
        sample-first (use :func:`save_time_first` for time-first recordings).
    labels, predictions : int array ``[samples]``, optional
        True and predicted class of each sample (not stored when None).
    timesteps : int, optional
        Time steps per sample (``>= 1``); must equal each layer's second axis
        (default: taken from the first layer).
    dt_ms : float
        Declared duration of one time step in ms (finite, ``> 0``; default 1).
    extra : mapping of str to array, optional
        Further non-object arrays to store (keys must not clash with layer names or the
        reserved keys ``layer_names, labels, predictions, timesteps, dt_ms``).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ValueError
        Naming the argument, if a layer is not boolean ``[samples, timesteps, neurons]``,
        the layers disagree, or labels / predictions do not have one entry per sample.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "spikes.npz")
    >>> _ = save_spikes(f, {"h": np.ones((3, 4, 2), bool)}, labels=[0, 1, 0], dt_ms=2.0)
    >>> load_spikes(f).labels.tolist()
    [0, 1, 0]
    """
    path = Path(path)
    if not isinstance(layers, Mapping) or len(layers) == 0:
        raise ValueError("layers must be a non-empty mapping from layer name to spike array.")
    dt = _check_timing(timesteps, dt_ms)
    labels_a, preds_a = _sample_vectors(labels, predictions)
    n_samples = None if labels_a is None else labels_a.shape[0]
    arrays, n_samples, timesteps = _layer_arrays(layers, n_samples, timesteps)
    if preds_a is not None and preds_a.shape[0] != n_samples:
        raise ValueError(f"predictions must have one entry per sample ({n_samples}), "
                         f"got {preds_a.shape[0]}.")
    names = list(arrays)
    _add_extra(arrays, extra)
    arrays["layer_names"] = np.array(names, dtype=np.str_)
    if labels_a is not None:
        arrays["labels"] = labels_a
    if preds_a is not None:
        arrays["predictions"] = preds_a
    arrays["timesteps"] = np.array(int(timesteps), dtype=np.int64)
    arrays["dt_ms"] = np.array(dt, dtype=np.float64)
    arrays["tbnn_spikes_version"] = np.array(SPIKES_FORMAT_VERSION, dtype=np.int64)

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"path must be inside an existing folder, {parent} does not exist.")
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def _check_timing(timesteps: Any, dt_ms: Any) -> float:
    """Refuse a ``timesteps`` that is not an integer >= 1 (None: from the layers) and a
    ``dt_ms`` that is not a finite number > 0; returns ``dt_ms`` as a float."""
    if timesteps is not None:
        check_int(timesteps, "timesteps")
    return check_dt(dt_ms)


def _sample_vectors(labels: Any, predictions: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``labels`` and ``predictions`` as checked integer vectors (None when absent) of one length."""
    labels_a = None if labels is None else check_labels(labels, None, "labels", minimum=None, numpy=True)
    preds_a = None if predictions is None else check_labels(predictions, None, "predictions", minimum=None, numpy=True)
    if labels_a is not None and preds_a is not None and preds_a.shape != labels_a.shape:
        raise ValueError(
            f"predictions must have one entry per sample like labels ({labels_a.shape[0]}), "
            f"got {preds_a.shape[0]}."
        )
    return labels_a, preds_a


def _layer_arrays(layers: Mapping[str, Any], n_samples: int | None,
                  timesteps: int | None) -> tuple[dict[str, np.ndarray], int | None, int | None]:
    """Each layer as a contiguous boolean ``[samples, timesteps, neurons]`` array, in order,
    with the sample and step counts they share (taken from the first layer when not given)."""
    arrays: dict[str, np.ndarray] = {}
    for name, spikes in layers.items():
        if not isinstance(name, str) or not name or name in RESERVED:
            raise ValueError(
                f"layer names must be non-empty strings other than {', '.join(RESERVED)}, "
                f"got {name!r}."
            )
        arr = to_numpy(spikes)
        if arr.dtype != np.bool_:
            raise ValueError(
                f"layer {name!r} has dtype {arr.dtype}; spikes must be boolean "
                "arrays [samples, timesteps, neurons]."
            )
        if n_samples is None and arr.ndim == 3:
            n_samples = arr.shape[0]
        if timesteps is None and arr.ndim == 3:
            timesteps = int(arr.shape[1])
        if arr.ndim != 3 or arr.shape[0] != n_samples or arr.shape[1] != timesteps:
            raise ValueError(
                f"layer {name!r} has shape {arr.shape}; spikes must have shape "
                f"[samples={n_samples}, timesteps={timesteps}, neurons]."
            )
        arrays[name] = np.ascontiguousarray(arr)
    return arrays, n_samples, timesteps


def _add_extra(arrays: dict[str, np.ndarray], extra: Mapping[str, Any] | None) -> None:
    """Add the ``extra`` arrays to ``arrays`` (the layers), refusing a name that clashes and
    object arrays (which only pickle could store)."""
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key or key in RESERVED or key in arrays:
            raise ValueError(
                f"extra key {key!r} is not allowed; use a non-empty name that is not a layer "
                "name or a reserved key."
            )
        arr = to_numpy(value)
        if arr.dtype == object:
            raise ValueError(f"extra array {key!r} has dtype object; only plain numeric, "
                             "boolean or string arrays can be stored without pickle.")
        arrays[key] = arr


def save_time_first(
    path: str | os.PathLike,
    layers: Mapping[str, Any],
    labels: Any = None,
    predictions: Any = None,
    dt_ms: float = DEFAULT_DT_MS,
) -> Path:
    """Write time-first recordings (snnTorch, SpikingJelly: ``[T, B, ...]``) as an archive.

    Each recording ``[T, B, d1, d2, ...]`` (torch tensor or NumPy array, boolean or 0/1
    numbers) is moved to the archive's sample-first layout ``[B, T, d1 * d2 * ...]``
    (features flattened in C order) and written with :func:`save_spikes`.

    Parameters
    ----------
    path : path-like
        Destination ``.npz``.
    layers : mapping of str to array ``[T, B, ...]``
        One recording per spiking layer, in network order; all share ``T`` and ``B``.
    labels, predictions : int array ``[B]``, optional
    dt_ms : float
        Duration of one step in ms (default 1).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If a recording has fewer than two axes, holds values other than 0 and 1, or the
        recordings disagree on ``T`` or ``B``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> rec = np.zeros((4, 3, 2, 5), dtype=np.float32)   # [T=4, B=3, 2, 5], as snnTorch
    >>> rec[1, 0, 0, 0] = 1.0
    >>> f = save_time_first(os.path.join(tempfile.mkdtemp(), "r.npz"), {"lif1": rec})
    >>> r = load_spikes(f)
    >>> r.layers["lif1"].shape, bool(r.layers["lif1"][0, 1, 0])
    ((3, 4, 10), True)
    """
    if not isinstance(layers, Mapping) or len(layers) == 0:
        raise ValueError("layers must be a non-empty mapping from layer name to a time-first "
                         "recording [T, B, ...].")
    out: dict[str, np.ndarray] = {}
    for name, rec in layers.items():
        arr = to_numpy(rec)
        if arr.ndim < 2:
            raise ValueError(f"layers[{name!r}] must be time-first [T, B, ...], got shape "
                             f"{arr.shape}.")
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "fiu" or not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"layers[{name!r}] must hold spikes (booleans or 0/1), got "
                                 f"dtype {arr.dtype} with other values.")
            arr = arr != 0
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1) if arr.ndim > 2 else arr[:, :, None]
        out[name] = np.ascontiguousarray(arr.transpose(1, 0, 2))
    shapes = {k: v.shape[:2] for k, v in out.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("layers must share T and B (axes 0 and 1), got "
                         + ", ".join(f"{k}: T={s[1]}, B={s[0]}" for k, s in shapes.items()) + ".")
    return save_spikes(path, out, labels=labels, predictions=predictions, dt_ms=dt_ms)


def _not_archive(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a spikes archive ({why}).")


def _scalar(npz: Any, key: str, path: Path) -> np.ndarray:
    arr = npz[key]
    if arr.ndim != 0 and arr.size != 1:
        raise _not_archive(path, f"'{key}' must be a scalar, got shape {arr.shape}")
    return arr.reshape(())


def _optional_vector(npz: Any, key: str, path: Path) -> np.ndarray | None:
    if key not in npz.files:
        return None
    arr = npz[key]
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise _not_archive(path, f"'{key}' must be a 1-D integer array")
    return arr.astype(np.int64)


def load_spikes(path: str | os.PathLike, time_first: bool | None = None) -> SpikeRecord:
    """Read and validate a spikes archive: one written by :func:`save_spikes` or a plain
    ``.npz`` of boolean ``[samples, T, neurons]`` arrays.

    In a plain archive the layers are the 3-D boolean arrays, named by their keys, in file
    order; ``labels``, ``predictions``, ``timesteps`` and ``dt_ms`` are optional (``T``
    from the shapes; ``dt_ms`` defaults to :data:`DEFAULT_DT_MS` with
    ``dt_declared = False``).

    Parameters
    ----------
    path : path-like
        The ``.npz`` file, or a folder that contains ``spikes.npz``.
    time_first : bool, optional
        Declares a plain archive's layout: ``True`` reads its 3-D arrays as time-first
        ``[T, samples, neurons]`` (snnTorch's layout) and moves them to sample-first;
        ``False`` as sample-first, silently. ``None`` (default): sample-first, with one note
        stating the layout read when the archive has no ``timesteps`` key (and a warning
        naming the time-first mix-up when axis 1 exceeds axis 0).

    Returns
    -------
    SpikeRecord

    Raises
    ------
    ValueError
        If the file does not exist, is not an archive, is corrupt (a member's CRC-32),
        exceeds the size limit (:func:`tbnn.io.bounded.max_bytes`), was written by a newer
        tbnn (``tbnn_spikes_version``), holds no boolean 3-D array, or its shapes disagree
        with ``labels`` and ``timesteps``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "plain.npz")
    >>> np.savez(f, a=np.zeros((4, 3, 2), bool), b=np.ones((4, 3, 5), bool), dt_ms=0.5)
    >>> r = load_spikes(f)
    >>> r.layer_names, r.dt_ms, r.labels is None
    (['a', 'b'], 0.5, True)
    """
    path = Path(path)
    if path.is_dir() and (path / "spikes.npz").exists():
        path = path / "spikes.npz"
    elif path.is_dir():
        raise ValueError(f"spikes archive {path} is a folder without spikes.npz; pass the spikes.npz "
                         "written by `tbnn simulate` (or any .npz of boolean [samples, T, neurons] "
                         "arrays) or its folder.")
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"spikes archive {path} does not exist; pass the spikes.npz written "
                         "by `tbnn simulate` (or any .npz of boolean [samples, T, neurons] "
                         "arrays) or its folder.")
    try:
        return _read_archive(path, time_first)
    except (zlib.error, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"spikes archive {path} is corrupt ({exc}).") from None
    except OSError as exc:
        raise ValueError(f"spikes archive {path} cannot be read ({exc}).") from None


def _read_archive(path: Path, time_first: bool | None = None) -> SpikeRecord:
    """:func:`load_spikes` once the path is known to exist."""
    npz = open_npz(path, "spikes archive")  # sizes, headers and CRCs checked first
    with npz:
        try:
            keys = list(npz.files)
            raw = _named_layers(npz, keys, path) if "layer_names" in keys else _plain_layers(npz, keys, path)
            if "tbnn_spikes_version" in keys:
                _check_version(npz, path)
            if time_first:
                raw = {k: (np.ascontiguousarray(a.swapaxes(0, 1)) if a.ndim == 3 else a) for k, a in raw.items()}
            first = next(iter(raw.values()))
            if "timesteps" not in keys and "layer_names" not in keys and first.ndim == 3 and time_first is None:
                _warn_layout(path, list(first.shape))
            labels = _optional_vector(npz, "labels", path)
            preds = _optional_vector(npz, "predictions", path)
            if labels is not None:
                n_samples = labels.shape[0]
            else:
                n_samples = first.shape[0] if first.ndim == 3 else -1
            if preds is not None and preds.shape[0] != n_samples and labels is not None:
                raise ValueError(f"{path}: predictions ({preds.shape[0]}) and labels "
                                 f"({labels.shape[0]}) must have one entry per sample.")
            if "timesteps" in keys:
                timesteps = _declared_timesteps(npz, path)
            else:
                timesteps = first.shape[1] if first.ndim == 3 else -1
            declared = "dt_ms" in keys
            dt = _declared_dt(npz, path) if declared else DEFAULT_DT_MS
            layers = _checked_layers(raw, n_samples, timesteps, path)
            if preds is not None and preds.shape[0] != n_samples:
                raise ValueError(f"{path}: predictions has {preds.shape[0]} entries, the "
                                 f"layers hold {n_samples} samples; it must have one entry "
                                 "per sample.")
            extra = {k: npz[k] for k in keys if k not in RESERVED and k not in layers}
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise _not_archive(path, "it holds pickled object arrays") from None
            raise
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise _not_archive(path, f"corrupt member: {exc}") from None
    return SpikeRecord(
        layers=layers,
        labels=labels,
        predictions=preds,
        timesteps=timesteps,
        dt_ms=dt,
        extra=extra,
        path=path,
        dt_declared=declared,
    )


def _named_layers(npz: Any, keys: list[str], path: Path) -> dict[str, np.ndarray]:
    """The layers an archive of :func:`save_spikes` lists in ``layer_names``, in that order."""
    names_arr = npz["layer_names"]
    if names_arr.dtype.kind != "U" or names_arr.ndim != 1 or names_arr.size == 0:
        raise _not_archive(path, "'layer_names' must be a non-empty 1-D unicode "
                                 "array")
    names = [str(n) for n in names_arr]
    absent = [n for n in names if n not in keys]
    if absent:
        raise _not_archive(path, f"layers listed but not stored: "
                                 f"{', '.join(absent)}")
    return {n: npz[n] for n in names}


def _plain_layers(npz: Any, keys: list[str], path: Path) -> dict[str, np.ndarray]:
    """The layers of a plain archive: every 3-D boolean array, in file order."""
    raw = {}
    for k in keys:
        if k in RESERVED:
            continue
        a = npz[k]
        if a.dtype == np.bool_ and a.ndim == 3:
            raw[k] = a
    if not raw:
        raise _not_archive(path, "it holds no boolean [samples, T, neurons] "
                                 "array; keys: " + ", ".join(keys) + "; store 0/1 "
                                 "spikes as bool, and time-first recordings with "
                                 "tbnn.io.spikes.save_time_first")
    return raw


def _check_version(npz: Any, path: Path) -> None:
    """Refuse a ``tbnn_spikes_version`` that is not an integer >= 1 or is newer than this tbnn reads."""
    v_arr = _scalar(npz, "tbnn_spikes_version", path)
    if not np.issubdtype(v_arr.dtype, np.integer) or int(v_arr) < 1:
        raise _not_archive(path, "'tbnn_spikes_version' must be an integer >= 1")
    if int(v_arr) > SPIKES_FORMAT_VERSION:
        raise ValueError(f"spikes archive {path} has tbnn_spikes_version {int(v_arr)}: it was "
                         f"written by a newer tbnn (this one reads up to {SPIKES_FORMAT_VERSION}).")


def _warn_layout(path: Path, shape: list[int]) -> None:
    """Say, at the caller of :func:`load_spikes`, which layout a plain archive without
    ``timesteps`` was read as, naming the time-first mix-up when axis 1 exceeds axis 0."""
    hint = ""
    if shape[1] > shape[0]:
        hint = (f"; axis 1 ({shape[1]}) exceeds axis 0 ({shape[0]}): if it is time-first [T, samples, "
                f"neurons] (snnTorch's layout) write it with tbnn.io.spikes.save_time_first, or load "
                f"it with load_spikes(path, time_first=True)")
    warnings.warn(f"{path} declares no timesteps: read as [samples, T, neurons] = {shape}{hint}; "
                  f"a timesteps key declares the layout.", stacklevel=4)


def _declared_timesteps(npz: Any, path: Path) -> int:
    """The archive's ``timesteps``, an integer >= 1."""
    t_arr = _scalar(npz, "timesteps", path)
    if not np.issubdtype(t_arr.dtype, np.integer) or int(t_arr) < 1:
        raise _not_archive(path, "'timesteps' must be an integer >= 1")
    return int(t_arr)


def _declared_dt(npz: Any, path: Path) -> float:
    """The archive's ``dt_ms``, a finite number > 0."""
    dt_arr = _scalar(npz, "dt_ms", path)
    if dt_arr.dtype.kind not in "fiu" or not np.isfinite(dt_arr) \
            or float(dt_arr) <= 0:
        raise _not_archive(path, "'dt_ms' must be a finite number > 0")
    return float(dt_arr)


def _checked_layers(raw: dict[str, np.ndarray], n_samples: int, timesteps: int,
                    path: Path) -> dict[str, np.ndarray]:
    """The layers, each refused unless boolean ``[n_samples, timesteps, neurons]``."""
    layers: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
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
    return layers
