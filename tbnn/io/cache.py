"""On-disk cache of dataset arrays: generated or loaded once, read back by every later command.

Arrays are stored as one ``.npz`` file per dataset (``numpy.savez``, never pickle; read with
``allow_pickle=False``) in the cache folder:

* ``$TBNN_CACHE`` if that environment variable is set (``off`` disables the cache);
* else ``~/.cache/tbnn``.

A file's name carries a key: the SHA-256 of the dataset's name, its generator's
parameters and package versions, tbnn's version and the cache format, so that a change of
any of them makes a new file instead of reusing a stale one. Each file also records the
shape, dtype and SHA-256 checksum of every array; a file that fails any check on reading
(truncated, corrupt, tampered with, of another key, or not of the expected shapes) is not
trusted: the arrays are generated again and the file rewritten. Files are written
atomically (a uniquely named temporary file in the same folder, then ``os.replace``), so
concurrent commands never read half a file. A folder that cannot be written leaves the
cache unused, never an error.

>>> import numpy as np, tempfile
>>> folder = tempfile.mkdtemp()
>>> make = lambda: {"x": np.arange(6.0).reshape(2, 3)}
>>> cached_arrays("demo", {"n": 6}, make, folder=folder)["x"].shape
(2, 3)
>>> cache_path("demo", {"n": 6}, folder).is_file()
True
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tbnn import __version__
from tbnn.io.files import atomic_write

__all__ = ["CACHE_ENV", "CACHE_FORMAT", "cache_dir", "cache_key", "cache_path", "cached_arrays",
           "read_cached", "write_cached"]

#: Environment variable naming the cache folder (``off``: no cache).
CACHE_ENV = "TBNN_CACHE"
#: Version of the file layout; part of every key.
CACHE_FORMAT = 1

_META = "__meta__"


def cache_dir() -> Path | None:
    """The cache folder: ``$TBNN_CACHE``, else ``~/.cache/tbnn``; ``None`` when disabled (``off``)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() == "off":
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tbnn"


def cache_key(name: str, params: Mapping[str, Any]) -> str:
    """Hex SHA-256 (first 20 digits) of the name, the generator's parameters, tbnn and the format."""
    text = json.dumps({"name": name, "params": dict(params), "tbnn": __version__,
                       "format": CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def cache_path(name: str, params: Mapping[str, Any], folder: str | os.PathLike | None = None) -> Path | None:
    """The file that holds (or would hold) the arrays of ``name`` with ``params``.

    ``folder`` overrides :func:`cache_dir`.
    """
    folder = cache_dir() if folder is None else Path(folder)
    return None if folder is None else folder / f"{name}-{cache_key(name, params)}.npz"


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8).reshape(-1)).hexdigest()


def write_cached(path: str | os.PathLike, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` and their shapes, dtypes and checksums to ``path`` atomically."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if k == _META or v.dtype.hasobject:
            raise ValueError(f"array {k!r} cannot be cached (reserved name or object dtype).")
    meta = {"key": key, "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _digest(v)}
                                   for k, v in arrays.items()}}
    payload = {**arrays, _META: np.array(json.dumps(meta, sort_keys=True))}
    return atomic_write(path, lambda fh: np.savez(fh, **payload))


def read_cached(path: str | os.PathLike, key: str,
                expect: Mapping[str, tuple[tuple[int, ...], str]] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of a valid cache file, or ``None`` if it is missing or fails a check.

    Checked: the file opens as ``.npz`` without pickle, records ``key``, holds exactly the
    arrays it lists, each of the listed shape, dtype and SHA-256; with ``expect``
    (name -> ``(shape, dtype)``), the arrays are also exactly those.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META not in z.files:
                return None
            meta = json.loads(str(z[_META][()]))
            listed = meta["arrays"]
            if meta["key"] != key or set(listed) != set(z.files) - {_META}:
                return None
            out = {k: z[k] for k in listed}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    for k, a in out.items():
        m = listed[k]
        if list(a.shape) != m["shape"] or a.dtype.str != m["dtype"] or _digest(a) != m["sha256"]:
            return None
    if expect is not None:
        if set(expect) != set(out):
            return None
        for k, (shape, dtype) in expect.items():
            if out[k].shape != tuple(shape) or out[k].dtype != np.dtype(dtype):
                return None
    return out


def cached_arrays(name: str, params: Mapping[str, Any], make: Callable[[], Mapping[str, np.ndarray]],
                  expect: Mapping[str, tuple[tuple[int, ...], str]] | None = None,
                  folder: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Arrays of dataset ``name`` from the cache, else from ``make()`` (then cached).

    Parameters
    ----------
    name : short dataset name, the start of the file name.
    params : everything the arrays depend on (generator arguments, package versions);
        JSON-serialisable.
    make : returns the arrays (name -> numpy array, no object dtype).
    expect : optional name -> ``(shape, dtype)`` the arrays must have.
    folder : the cache folder (default :func:`cache_dir`).

    Returns
    -------
    dict of numpy arrays. An invalid cache file is regenerated; a folder that cannot be
    written leaves the arrays uncached.
    """
    path = cache_path(name, params, folder)
    key = cache_key(name, params)
    if path is not None:
        hit = read_cached(path, key, expect)
        if hit is not None:
            return hit
    arrays = {k: np.asarray(v) for k, v in make().items()}
    if path is not None:
        try:
            write_cached(path, key, arrays)
        except (OSError, ValueError):  # a read-only or full disk (one sentence from fileio): run uncached
            pass
    return arrays
