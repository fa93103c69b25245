"""Ownership by content: what tbnn wrote into an output, recorded by name and SHA-256.

Every folder tbnn writes holds one manifest, ``.tbnn-manifest.json``: the kind of output
and the SHA-256 of every file tbnn wrote there, sealed with its own digest
(:func:`~tbnn.io.files.jsonfile.seal_json`). A PNG figure carries the same record in a
``tEXt`` chunk of its own (:func:`seal_png`), with the digests of its vector copies.

A folder is tbnn's own (:func:`foreign_entry` returns ``None``) when every entry in it is
a file whose digest the manifest records, or a file whose own seal verifies (a sealed
JSON file, a simulation's ``spikes.npz`` named by the ``spikes_sha256`` of its
``simulation.json``, a checkpoint with its digest), or a folder holding such files.
An output written before manifests existed counts as its own only when every file in it
is one that version writes for its kind and the seals verify (:data:`KINDS`). A user's
file, a subfolder, a symbolic link, an edited file or a same-named file tbnn did not
write is foreign; the first one (in sorted order) is named.

The record is a sealed digest of the file list; for a folder ``D`` holding ``a`` and
``b/c``:

.. math::

    \\mathrm{files}(D) = \\{\\, a \\mapsto \\mathrm{SHA256}(a),\\;
    b/c \\mapsto \\mathrm{SHA256}(b/c) \\,\\}

(FIPS 180-4 for SHA-256.)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tbnn.io.files.atomic import LOCK_NAME, is_temp_name
from tbnn.io.files.jsonfile import file_sha256, read_json, read_sealed_json, write_sealed_json

__all__ = ["MANIFEST_NAME", "KINDS", "register_kind", "scan", "write_manifest", "read_manifest",
           "foreign_entry", "output_owner", "seal_png", "png_record", "is_bookkeeping"]

MANIFEST_NAME = ".tbnn-manifest.json"
_MANIFEST_KIND = "tbnn-manifest"
_PNG_KEY = b"tbnn"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: A check of one file by its own content: ``check(folder, relpath) -> "sealed" | "named" | None``.
#: ``"sealed"``: its own seal verifies (own even where a manifest records another digest, e.g. a
#: checkpoint committed after the manifest); ``"named"``: a file the version before manifests
#: wrote there, with no seal of its own (own only in a folder without a manifest).
FileCheck = Callable[[Path, str], "str | None"]

#: kind of output -> (marker file, check of one file by content). Extended by the layers that
#: know a kind's files (the run folder registers ``run``, see :func:`register_kind`).
KINDS: dict[str, tuple[str, FileCheck]] = {}


def register_kind(kind: str, marker: str, check: FileCheck) -> None:
    """Register how a ``kind`` of output is recognised: its marker file and its file check."""
    KINDS[kind] = (marker, check)


def is_bookkeeping(name: str) -> bool:
    """tbnn's lock files and temporary names (never counted as an output's content)."""
    return name.startswith(LOCK_NAME) or is_temp_name(name)


def scan(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """Every entry under ``folder`` (relative path, path), sorted, without tbnn's bookkeeping
    and without the folder's own manifest; folders are listed before what they hold, and
    symbolic links are listed, never followed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "b").mkdir(); _ = (d / "b" / "c").write_text("x")
    >>> [rel for rel, _ in scan(d)]
    ['b', 'b/c']
    """
    folder = Path(folder)
    out: list[tuple[str, Path]] = []

    def walk(d: Path, prefix: str) -> None:
        for p in sorted(d.iterdir(), key=lambda q: q.name):
            if is_bookkeeping(p.name) or (not prefix and p.name == MANIFEST_NAME):
                continue
            rel = prefix + p.name
            out.append((rel, p))
            if p.is_dir() and not p.is_symlink():
                walk(p, rel + "/")

    walk(folder, "")
    return out


def write_manifest(folder: str | os.PathLike, kind: str, names: list[str] | None = None) -> Path:
    """Record the files tbnn wrote into ``folder`` (all its files, or only ``names``) with their
    SHA-256, in ``folder/.tbnn-manifest.json`` sealed with its own digest; written atomically.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("hi")
    >>> _ = write_manifest(d, "simulation")
    >>> foreign_entry(d, "simulation") is None
    True
    >>> _ = (d / "a.txt").write_text("edited"); foreign_entry(d, "simulation")
    'a.txt'
    """
    folder = Path(folder)
    if names is None:
        names = [rel for rel, p in scan(folder) if p.is_file() and not p.is_symlink()]
    files = {rel: file_sha256(folder / rel) for rel in sorted(names)}
    return write_sealed_json(folder / MANIFEST_NAME, {"kind": _MANIFEST_KIND, "format_version": 1,
                                                      "output": kind, "files": files})


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of ``folder``, ``None`` when it has none; ``ValueError`` when it is not one
    tbnn wrote (bad seal, wrong fields)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file() and not path.is_symlink():
        return None
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link, not a manifest tbnn wrote.")
    man = read_sealed_json(path, "manifest")
    if (not isinstance(man, dict) or man.get("kind") != _MANIFEST_KIND or "sha256" not in man
            or not isinstance(man.get("files"), dict) or not isinstance(man.get("output"), str)):
        raise ValueError(f"{path} is not a manifest tbnn wrote.")
    return man


def output_owner(folder: str | os.PathLike) -> str | None:
    """The kind of tbnn output ``folder`` is, decided by content: its manifest, or (an output
    written before manifests) its marker file's own seal; ``None`` for anything else."""
    folder = Path(folder)
    try:
        man = read_manifest(folder)
    except (ValueError, OSError):
        return None
    if man is not None:
        return man["output"]
    for kind, (marker, check) in KINDS.items():
        try:
            if (folder / marker).is_file() and check(folder, marker) is not None:
                return kind
        except (ValueError, OSError):
            continue
    return None


def foreign_entry(folder: str | os.PathLike, kind: str) -> str | None:
    """The first entry of ``folder`` (relative path) that is not ``kind`` output tbnn wrote
    and left unchanged, or ``None`` when everything in it is tbnn's own (see the module text).
    """
    folder = Path(folder)
    try:
        man = read_manifest(folder)
    except ValueError:
        return MANIFEST_NAME
    if man is not None and man["output"] != kind:
        return MANIFEST_NAME
    recorded: dict[str, str] = man["files"] if man is not None else {}
    check = KINDS.get(kind, (None, lambda f, r: None))[1]
    own_dirs: set[str] = set()
    for rel in recorded:
        parts = rel.split("/")
        own_dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for rel, p in scan(folder):
        if p.is_symlink():
            return rel
        if p.is_dir():
            if rel in own_dirs or (man is None and _sub_kind(folder, rel) is not None):
                continue
            return rel
        if not p.is_file():
            return rel
        if rel in recorded and file_sha256(p) == recorded[rel]:
            continue
        try:
            verdict = check(folder, rel)
        except (ValueError, OSError, KeyError, TypeError):
            verdict = None
        if verdict == "sealed" or (verdict == "named" and man is None):
            continue
        return rel
    return None


def _sub_kind(folder: Path, rel: str) -> str | None:
    """Sub-outputs of an output written before manifests (a demo's ``run``, ``sim``, ``analysis``)."""
    return {"run": "run", "sim": "simulation", "analysis": "analysis"}.get(rel) if (
        folder / "demo.json").is_file() else None


# ---------------------------------------------------------------- checks of each kind's files


def _sealed_json(folder: Path, rel: str, key: str | None = None, value: Any = None) -> str | None:
    obj = read_sealed_json(folder / rel, "file")
    if not isinstance(obj, dict) or "sha256" not in obj:
        return None
    return "sealed" if key is None or obj.get(key) == value else None


def _check_simulation(folder: Path, rel: str) -> str | None:
    if rel == "simulation.json":
        return _sealed_json(folder, rel)
    if rel == "spikes.npz":
        sim = read_sealed_json(folder / "simulation.json", "simulation")
        if "sha256" in sim and sim.get("spikes_sha256") == file_sha256(folder / rel):
            return "sealed"
    return None


def _check_analysis(folder: Path, rel: str) -> str | None:
    ana = read_json(folder / "analysis.json", "analysis")
    if not isinstance(ana, dict) or "tbnn_analysis_version" not in ana or not isinstance(ana.get("figures"), dict):
        return None
    if rel in ("analysis.json", "report.md"):
        return "named"
    figs = ana["figures"]
    names = {figs.get("raster")}
    for entry in (figs.get("layers") or {}).values():
        names.update(v for k, v in entry.items() if k != "caption") if isinstance(entry, dict) else None
    stems = {str(n).rsplit(".", 1)[0] for n in names if isinstance(n, str)}
    stem, _, ext = rel.rpartition(".")
    return "named" if "/" not in rel and stem in stems and ext in ("png", "svg", "pdf") else None


def _check_demo(folder: Path, rel: str) -> str | None:
    if rel == "demo.json":
        demo = read_json(folder / rel, "demo")
        if isinstance(demo, dict) and "sha256" in demo:
            return _sealed_json(folder, rel, "kind", "tbnn-demo")
        ok = isinstance(demo, dict) and set(demo) == {"kind", "epochs", "seed"} and demo["kind"] == "tbnn-demo"
        return "named" if ok else None
    if rel == "raster.png":
        return "sealed" if png_record(folder / rel) is not None else "named"
    head, _, rest = rel.partition("/")
    sub = _sub_kind(folder, head)
    if sub is None or not rest:
        return None
    try:
        man = read_manifest(folder / head)
    except ValueError:
        return None
    if man is not None and (rest == MANIFEST_NAME or man["files"].get(rest) == file_sha256(folder / rel)):
        return "sealed"  # recorded by the part's own sealed manifest
    verdict = KINDS.get(sub, (None, lambda f, r: None))[1](folder / head, rest)
    return verdict if verdict == "sealed" or man is None else None


register_kind("simulation", "simulation.json", _check_simulation)
register_kind("analysis", "analysis.json", _check_analysis)
register_kind("demo", "demo.json", _check_demo)


# ------------------------------------------------------------------------ PNG figures


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes, int, int]]:
    """(type, payload, start, end) of every chunk; ``ValueError`` when ``data`` is not a PNG."""
    if not data.startswith(_PNG_MAGIC):
        raise ValueError("not a PNG file")
    out, i = [], len(_PNG_MAGIC)
    while i + 8 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        end = i + 12 + n
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        out.append((kind, data[i + 8:i + 8 + n], i, end))
        i = end
    if i != len(data) or not out or out[-1][0] != b"IEND":
        raise ValueError("a PNG must end with its IEND chunk")
    return out


def seal_png(path: str | os.PathLike, files: dict[str, str] | None = None, **info: Any) -> None:
    """Add tbnn's record to a PNG (in place): a ``tEXt`` chunk ``tbnn`` holding the SHA-256 of
    the PNG without that chunk, ``files`` (name -> SHA-256 of the copies beside it) and ``info``.

    >>> import tempfile, pathlib, matplotlib
    >>> matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.png"; plt.figure().savefig(p); plt.close("all")
    >>> seal_png(p, command="example"); png_record(p)["command"]
    'example'
    >>> data = bytearray(p.read_bytes()); data[60] ^= 1; _ = p.write_bytes(bytes(data)); png_record(p) is None
    True
    """
    path = Path(path)
    data = path.read_bytes()
    chunks = _png_chunks(data)
    iend = chunks[-1][2]
    record = {"kind": "tbnn-figure", "sha256": hashlib.sha256(data).hexdigest(), "files": dict(files or {}), **info}
    payload = _PNG_KEY + b"\0" + json.dumps(record, sort_keys=True).encode("latin-1", "replace")
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload + struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    path.write_bytes(data[:iend] + chunk + data[iend:])


def png_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """tbnn's record in a PNG whose digest still verifies, else ``None`` (not a PNG, no record,
    or changed since tbnn wrote it)."""
    try:
        data = Path(path).read_bytes()
        chunks = _png_chunks(data)
    except (OSError, ValueError):
        return None
    if len(chunks) < 2 or chunks[-2][0] != b"tEXt" or not chunks[-2][1].startswith(_PNG_KEY + b"\0"):
        return None
    _, payload, start, end = chunks[-2]
    try:
        record = json.loads(payload[len(_PNG_KEY) + 1:].decode("latin-1"))
    except ValueError:
        return None
    body = data[:start] + data[end:]
    if not isinstance(record, dict) or record.get("sha256") != hashlib.sha256(body).hexdigest():
        return None
    return record
