"""Tensors in safetensors files: SHA-256 over tensors and config, atomic save, header-first
reading, and the run format's constants."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from tbnn.core.deprecation import deprecated_attributes
from tbnn.io.files import atomic_write, canonical_json
from tbnn.io.versioned import check_version, note_unchecked

__all__ = ["RUN_KIND", "RUN_FORMAT_VERSION", "CHECKPOINT_NAME", "tensor_digest", "save_tensors", "read_header", "load_tensors", "tensor_version", "verify_digest"]


RUN_KIND = "tbnn-run"
#: Layout of a run directory: 1 = separate state files, no checksums; 2 = one checkpoint
#: file, checksums, ``format_version`` in ``config.json``. (``FORMAT_VERSION`` before: kept,
#: deprecated, since the spike archive and ``simulation.json`` have format versions of their own.)
RUN_FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.safetensors"
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.checkpoint.RUN_FORMAT_VERSION",
                                                                  lambda: RUN_FORMAT_VERSION)})

# ----------------------------------------------------------------------------- digests


def tensor_digest(tensors: dict[str, torch.Tensor], config: Any = None) -> str:
    """SHA-256 (hex) over tensors (names, dtypes, shapes, bytes, in name order) and ``config``.

    ``config`` (any JSON value) is the hyperparameters that fix the tensors' meaning; a
    change to either changes the digest.

    >>> a = {"w": torch.ones(2, 3)}
    >>> tensor_digest(a, {"T": 4}) == tensor_digest({"w": torch.ones(2, 3)}, {"T": 4})
    True
    >>> tensor_digest(a, {"T": 4}) == tensor_digest(a, {"T": 5})
    False
    """
    h = hashlib.sha256()
    h.update(canonical_json(config))
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(canonical_json([name, str(t.dtype), list(t.shape)]))
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- tensor files


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write tensors to a safetensors file atomically (contiguous CPU copies)."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda fh: fh.write(save(flat, metadata=metadata)))


def read_header(path: str | Path, what: str = "checkpoint") -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, read from its header only.

    Nothing but the header is read, so this is cheap whatever the file's size; a missing,
    truncated or foreign file is one ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file ({err}).") from None
    return shapes, meta


def load_tensors(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file is one ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file ({err}).") from None


#: Metadata keys of a version-1 weights file (``save_weights`` before checksums), exactly.
V1_WEIGHTS_KEYS = frozenset({"format", "kind"})


def tensor_version(path: Path, what: str, meta: dict[str, str]) -> int:
    """Format version of a safetensors file from its metadata; refuses what cannot be trusted.

    A ``format_version`` newer than this tbnn's is refused ("written by a newer tbnn"); one
    without a ``sha256`` key is refused (the checksum was removed or damaged); no
    ``format_version`` is version 1 only when the metadata keys are exactly version 1's
    (``format``, ``kind``), with a note that the file is unchecked.

    >>> tensor_version(Path("w.safetensors"), "checkpoint", {"format": "pt", "kind": "tbnn-run",
    ...                "format_version": "2", "sha256": "0" * 64})
    2
    >>> tensor_version(Path("w.safetensors"), "checkpoint", {"format": "pt", "kind": "tbnn-run",
    ...                "format_version": "2", "sha257": "0" * 64})
    Traceback (most recent call last):
    ...
    ValueError: checkpoint w.safetensors has format_version 2 but no sha256 metadata key: its checksum was removed or damaged, so its tensors cannot be trusted.
    """
    if "format_version" in meta:
        version = check_version(meta["format_version"], RUN_FORMAT_VERSION, path)
        if not isinstance(meta.get("sha256"), str):
            raise ValueError(f"{what} {path} has format_version {version} but no sha256 metadata key: its "
                             f"checksum was removed or damaged, so its tensors cannot be trusted.")
        return version
    if set(meta) != V1_WEIGHTS_KEYS or meta.get("kind") != RUN_KIND:
        raise ValueError(f"{what} {path} has no format_version in its metadata (keys: {', '.join(sorted(meta))}); "
                         f"it is not a file tbnn wrote, or its metadata was damaged.")
    note_unchecked(path, what)
    return 1


def verify_digest(path: Path, what: str, tensors: dict[str, torch.Tensor], meta: dict[str, str],
                  config: Any) -> None:
    """Refuse tensors (and their stored config) whose SHA-256 differs from the metadata's ``sha256``."""
    if tensor_version(path, what, meta) == 1:
        return  # format version 1: written before checksums (tensor_version said so)
    want = meta["sha256"]
    if tensor_digest(tensors, config) != want:
        raise ValueError(f"{what} {path} fails its checksum (metadata field sha256): its tensors or the "
                         f"configuration stored with them were changed or corrupted after tbnn wrote it.")
