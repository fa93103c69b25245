"""JSON files: strict reading (no NaN, bounded size), atomic writing, and sealed JSON that carries
the SHA-256 of its own canonical form."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tbnn.core.validate import json_ready
from tbnn.io.files.atomic import MAX_JSON_BYTES, atomic_write, os_errors

__all__ = ["json_safe", "write_json", "read_json", "file_sha256", "canonical_json", "json_digest", "seal_json", "write_sealed_json", "read_sealed_json"]


#: The package's one JSON cleaner (:func:`tbnn.core.validate.json_ready`), under the name this
#: module has always exported: NaN and infinities become ``None``, keys strings.
json_safe = json_ready


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (NaN and infinities are written as ``null``)."""
    text = json.dumps(json_ready(obj), indent=2, allow_nan=False)
    return atomic_write(path, lambda fh: fh.write((text + "\n").encode("utf-8")))


def read_json(path: str | os.PathLike, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read JSON, turning a missing, oversized, unreadable or malformed file into one ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    with os_errors(path, "read"):
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{what} {path} is {size} bytes, more than the {max_bytes} a tbnn JSON file may have.")
        raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err}).") from None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks (bounded memory); for recording the
    checksum of one file of a set (``spikes.npz``) in another (``simulation.json``).

    >>> import tempfile, pathlib, hashlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p) == hashlib.sha256(b"abc").hexdigest()
    True
    """
    import hashlib

    h = hashlib.sha256()
    with os_errors(path, "read"), open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# ----------------------------------------------------------------------------- sealed JSON


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes (sorted keys, no spaces, no NaN): what the digests hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_digest(obj: Any) -> str:
    """SHA-256 (hex) of ``obj``'s canonical JSON (sorted keys, no spaces).

    >>> json_digest({"b": 1, "a": [1.5, None]}) == json_digest({"a": [1.5, None], "b": 1})
    True
    """
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def seal_json(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with a ``sha256`` field over the rest of it (NaN stored as ``null``)."""
    body = json_ready({k: v for k, v in obj.items() if k != "sha256"})
    return {**body, "sha256": json_digest(body)}


def write_sealed_json(path: str | Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` as JSON with its ``sha256`` (see :func:`seal_json`), atomically."""
    return write_json(path, seal_json(obj))


def read_sealed_json(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON object and verify its ``sha256`` field when it has one."""
    path = Path(path)
    obj = read_json(path, what)
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path} must hold a JSON object; got {type(obj).__name__}.")
    if "sha256" in obj:
        body = {k: v for k, v in obj.items() if k != "sha256"}
        if not isinstance(obj["sha256"], str) or json_digest(body) != obj["sha256"]:
            raise ValueError(f"{what} {path} fails its checksum (field sha256): the file was changed or "
                             f"corrupted after tbnn wrote it.")
    return obj
