"""Tensors in safetensors files: SHA-256 over tensors and config, atomic save, header-first
reading, and the run format's constants."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from tbnn.io.files import atomic_write, canonical_json

__all__ = ["RUN_KIND", "FORMAT_VERSION", "CHECKPOINT_NAME", "tensor_digest", "save_tensors", "read_header", "load_tensors", "verify_digest"]


RUN_KIND = "tbnn-run"
#: Layout of a run directory: 1 = separate state files, no checksums; 2 = one checkpoint
#: file, checksums, ``format_version`` in ``config.json``.
FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.safetensors"

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


def verify_digest(path: Path, what: str, tensors: dict[str, torch.Tensor], meta: dict[str, str],
                  config: Any) -> None:
    """Refuse tensors (and their stored config) whose SHA-256 differs from the metadata's ``sha256``."""
    want = meta.get("sha256")
    if want is None:
        return  # format version 1: no checksum
    if tensor_digest(tensors, config) != want:
        raise ValueError(f"{what} {path} fails its checksum (metadata field sha256): its tensors or the "
                         f"configuration stored with them were changed or corrupted after tbnn wrote it.")
