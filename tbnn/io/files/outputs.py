"""The single owner of every output: the policy for a target (new, tbnn's own by its manifest,
or refused), the lock, the private staging folder, the seal and the move that put a complete
output in place without deleting anything tbnn did not write (:func:`stage_dir`,
:func:`stage_file`)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbnn.io.files.atomic import (
    LOCK_NAME,
    OUTPUT_MARKERS,
    clean_stale_temps,
    file_op,
    fsync_dir,
    os_errors,
    temp_name,
)
from tbnn.io.files.jsonfile import file_sha256, read_json
from tbnn.io.files.lock import FolderLock
from tbnn.io.files.manifest import KINDS, foreign_entry, is_bookkeeping, output_owner, png_record, seal_png, write_manifest

__all__ = ["visible_entries", "output_kind", "enclosing_run", "enclosing_output", "check_target", "commit_dir",
           "swap_in", "prepare_parent", "stage_dir", "stage_file", "output_dir", "output_file"]

#: Staging folders of outputs this process is building (a part written inside one is part of it).
_ACTIVE: list[Path] = []


# ------------------------------------------------------------------------ output policy


def visible_entries(folder: str | os.PathLike) -> list[Path]:
    """Entries of ``folder`` other than tbnn's lock files and tbnn temporary names."""
    folder = Path(folder)
    return [p for p in folder.iterdir() if not is_bookkeeping(p.name)]


def output_kind(folder: str | os.PathLike) -> str | None:
    """The kind of tbnn output ``folder`` holds (a key of :data:`OUTPUT_MARKERS`), or ``None``.

    A run directory is recognised by a ``config.json`` whose ``kind`` is ``tbnn-run``; the
    other kinds by their marker file.
    """
    folder = Path(folder)
    for kind, marker in OUTPUT_MARKERS.items():
        if (folder / marker).is_file():
            if kind == "run":
                try:
                    cfg = read_json(folder / marker, "run config")
                except ValueError:
                    continue
                if not isinstance(cfg, dict) or cfg.get("kind") != "tbnn-run":
                    continue
            return kind
    return None


def enclosing_run(path: str | os.PathLike) -> Path | None:
    """The run directory that ``path`` is (or lies inside), or ``None``."""
    p = Path(os.path.abspath(path))
    for folder in (p, *p.parents):
        try:
            if output_kind(folder) == "run":
                return folder
        except OSError:
            return None
    return None


def _overwrite_name(flag: str) -> str:
    return "--overwrite" if flag.startswith("--") else "overwrite=True"


def _is_active(folder: Path) -> bool:
    return any(folder == a or a in folder.parents for a in _ACTIVE)


def enclosing_output(path: str | os.PathLike) -> tuple[Path, str] | None:
    """The tbnn output (folder, kind) that ``path`` lies inside (``path`` itself excluded),
    decided by content (:func:`~tbnn.io.files.manifest.output_owner`), or ``None``. Folders
    this process is still building (a demo's staging) do not count."""
    p = Path(os.path.abspath(path))
    for folder in p.parents:
        if _is_active(folder):
            return None
        try:
            kind = output_owner(folder)
            if kind is None and output_kind(folder) == "run":
                kind = "run"
        except OSError:
            return None
        if kind is not None:
            return folder, kind
    return None


def check_target(path: str | os.PathLike, kind: str, overwrite: bool = False, flag: str = "--out") -> bool:
    """Refuse a target the output policy forbids (one sentence naming ``flag``); return whether it
    holds an earlier ``kind`` output to replace.

    Refused: a symbolic link (never replaced or moved), a path inside another tbnn output,
    a file, a folder holding anything that is not ``kind`` output tbnn wrote and left
    unchanged (the first such entry is named; see
    :func:`~tbnn.io.files.manifest.foreign_entry`), and without ``overwrite`` any earlier output.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "thesis.tex").write_text("x")
    >>> check_target(d, "simulation", overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --out ... holds thesis.tex, which tbnn did not write; nothing was replaced: move it away or choose another --out.
    """
    path = Path(path)
    w = _overwrite_name(flag)
    if path.is_symlink():
        raise ValueError(f"{flag} {path} is a symbolic link; tbnn never replaces or moves a link: give the folder "
                         f"it points to, or another {flag}.")
    outer = enclosing_output(path)
    if outer is not None:
        raise ValueError(f"{flag} {path} is inside the tbnn {outer[1]} output {outer[0]}; tbnn never writes into "
                         f"another output: choose a folder outside it.")
    if not path.exists():
        return False
    if not path.is_dir():
        raise ValueError(f"{flag} {path} exists and is not a directory.")
    with os_errors(path, "read"):
        if not visible_entries(path):
            return False
        found = output_owner(path)
        if found is not None and found != kind:
            raise ValueError(f"{flag} {path} holds a tbnn {found} output, not a {kind}; choose another {flag}.")
        entry = foreign_entry(path, kind)
    if entry is not None:
        raise ValueError(f"{flag} {path} holds {entry}, which tbnn did not write"
                         + (" (or which changed since)" if found is not None else "")
                         + f"; nothing was replaced: move it away or choose another {flag}.")
    if not overwrite:
        raise ValueError(f"{flag} {path} already holds a {kind} output; choose another {flag}, or pass "
                         f"{w} to replace it once the new one is complete.")
    return True

_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP if hasattr(errno, "ENOTSUP") else errno.EINVAL):
            return False
        raise OSError(err, os.strerror(err), str(b))
    return True


def _keep(staging: Path, target: Path, flag: str, why: str) -> None:
    """Move a complete staged output to a named path beside ``target`` and refuse in one sentence."""
    kept = target.with_name(f"{target.name}.tbnn-new-{uuid.uuid4().hex[:6]}")
    with os_errors(kept):
        os.rename(staging, kept)
    raise ValueError(f"{flag} {target} changed while tbnn wrote it ({why}); nothing there was touched, and the "
                     f"new output is kept at {kept}.")


def commit_dir(staging: Path, target: Path, kind: str, replace: bool, flag: str = "--out") -> None:
    """Move the complete ``staging`` folder onto ``target`` without ever deleting anything that
    is not tbnn's own: a new target must still be empty (else the staged output is kept at a
    named path and refused); an earlier output is swapped out atomically
    (``renameat2(RENAME_EXCHANGE)`` where available) and removed only if it is still all tbnn's."""
    if not replace:
        if target.is_dir():
            extra = visible_entries(target)
            if extra:
                _keep(staging, target, flag, f"{extra[0].name} appeared in it")
            for p in target.iterdir():  # only tbnn's lock file and temporary names are left
                if p.name.startswith(LOCK_NAME) and p.is_file():
                    p.unlink()
        file_op("rename", target)
        try:
            os.rename(staging, target)  # onto an empty folder or nothing: atomic, refused if it filled up
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            _keep(staging, target, flag, "something appeared in it")
        fsync_dir(target.parent)
        return
    entry = foreign_entry(target, kind)
    if entry is not None:
        _keep(staging, target, flag, f"{entry} appeared in it")
    file_op("rename", target)
    if _exchange(staging, target):
        old = staging  # now holds the old output
    else:
        old = temp_name(target, "old")
        os.rename(target, old)
        os.rename(staging, target)
    fsync_dir(target.parent)
    entry = foreign_entry(old, kind)
    if entry is not None:  # appeared between the check and the swap: keep the old output whole
        kept = target.with_name(f"{target.name}.tbnn-old-{uuid.uuid4().hex[:6]}")
        os.rename(old, kept)
        raise ValueError(f"{flag} {target} now holds the new output; the old one held {entry}, which appeared "
                         f"while tbnn wrote, so it was not removed but moved to {kept}.")
    file_op("remove", old)
    shutil.rmtree(old)


def swap_in(staging: Path, target: Path, replace: bool, kind: str = "run") -> None:
    """Old spelling of :func:`commit_dir`."""
    commit_dir(staging, target, kind, replace)

def prepare_parent(path: str | os.PathLike) -> Path:
    """Make ``path``'s parent folder (through the fault hook) and clear dead writers' temporary files there."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        file_op("mkdir", parent)
        parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(parent)
    return parent


@contextlib.contextmanager
def stage_dir(path: str | os.PathLike, kind: str, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """The single owner of every output folder: checks the target, locks it, yields a private
    staging folder, seals what was written there and moves it onto ``path``.

    * Checked first (:func:`check_target`): nothing is written when the target is refused.
    * Locked (:class:`~tbnn.io.files.lock.FolderLock` on ``path``, made empty when new) for the
      whole command: a second tbnn writer of the same target is refused in one sentence.
    * The block writes into a tbnn-owned folder beside ``path`` (:func:`temp_name`); on an
      error it is removed and ``path`` is left as it was.
    * On success the files written are recorded in ``.tbnn-manifest.json``
      (:func:`~tbnn.io.files.manifest.write_manifest`) and the folder is moved in by
      :func:`commit_dir`, which never deletes what tbnn did not write.
    * A ``path`` inside a folder this process is staging (the demo's ``run``, ``sim``, ...)
      is written in place, as part of that output, with its own manifest.

    ``kind`` is a registered kind (:data:`~tbnn.io.files.manifest.KINDS`); the block must
    write that kind's marker file. Operating-system errors become one sentence naming ``path``.

    >>> import tempfile, pathlib
    >>> from tbnn.io.files import write_json
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sim"
    >>> from tbnn.io.files import write_sealed_json
    >>> with stage_dir(out, "simulation") as tmp:
    ...     _ = write_sealed_json(tmp / "simulation.json", {"accuracy": 1.0})
    >>> sorted(p.name for p in out.iterdir())
    ['.tbnn-manifest.json', 'simulation.json']
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    path = Path(path)
    if _is_active(Path(os.path.abspath(path)).parent):
        yield from _stage_part(path, kind, flag)
        return
    check_target(path, kind, overwrite, flag)
    created = False
    with os_errors(path):
        prepare_parent(path)
        if not path.exists():  # a new target is made (empty) to hold the lock: a second writer is refused
            file_op("mkdir", path)
            with contextlib.suppress(FileExistsError):
                path.mkdir()
                created = True
    lock = FolderLock(path, flag=flag).acquire()
    staging: Path | None = None
    done = False
    try:
        replace = check_target(path, kind, overwrite, flag)  # again, under the lock
        with os_errors(path):
            clean_stale_temps(path.parent)
            staging = temp_name(path, "new")
            file_op("mkdir", staging)
            staging.mkdir()
        _ACTIVE.append(Path(os.path.abspath(staging)))
        try:
            yield staging
        finally:
            _ACTIVE.pop()
        marker = KINDS[kind][0]
        if not (staging / marker).exists():
            raise RuntimeError(f"a {kind} output must write {marker}")
        with os_errors(path):
            write_manifest(staging, kind)
            commit_dir(staging, path, kind, replace, flag)
        done = True
    finally:
        if staging is not None and not done:
            shutil.rmtree(staging, ignore_errors=True)  # private to this command (or already moved away)
        lock.release()
        if created and not done:
            _remove_if_empty(path)


def _stage_part(path: Path, kind: str, flag: str) -> Iterator[Path]:
    with os_errors(path):
        if path.is_symlink() or (path.exists() and (not path.is_dir() or visible_entries(path))):
            raise ValueError(f"{flag} {path} is already taken in the output being built.")
        path.mkdir(parents=True, exist_ok=True)
    yield path
    if not (path / KINDS[kind][0]).exists():
        raise RuntimeError(f"a {kind} output must write {KINDS[kind][0]}")
    with os_errors(path):
        write_manifest(path, kind)


def _remove_if_empty(path: Path) -> None:
    """Remove a folder this command made to hold its lock, if nothing but tbnn's bookkeeping is in it."""
    with contextlib.suppress(OSError):
        if not visible_entries(path):
            for p in path.iterdir():
                if p.is_file() and p.name.startswith(LOCK_NAME):
                    p.unlink()
            path.rmdir()


def _place_new(src: Path, dst: Path, flag: str, why_path: Path) -> None:
    """Move a staged file onto a name that must still be free (``link`` then ``unlink``: never replaces)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        _keep(src, dst, flag, f"{why_path.name} appeared")
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if dst.exists() or dst.is_symlink():
            _keep(src, dst, flag, f"{why_path.name} appeared")
        os.replace(src, dst)
        return
    src.unlink()


def _check_file_target(path: Path, extras: list[Path], overwrite: bool, flag: str) -> dict[str, Any] | None:
    """Refuse a figure target the policy forbids; return the tbnn record of the PNG it replaces."""
    w = _overwrite_name(flag)
    outer = enclosing_output(path)
    if _is_active(Path(os.path.abspath(path)).parent):
        outer = None
    if outer is not None:
        raise ValueError(f"{flag} {path} is inside the tbnn {outer[1]} output {outer[0]}; tbnn never writes into "
                         f"another output: choose a path outside it.")
    if path.is_symlink():
        raise ValueError(f"{flag} {path} is a symbolic link; tbnn never replaces a link: choose another {flag}.")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name.")
    record = None
    if path.exists():
        if not overwrite:
            raise ValueError(f"{flag} {path} already exists; choose another {flag}, or pass {w} to replace it.")
        record = png_record(path)
        if record is None:
            raise ValueError(f"{flag} {path} is not a figure tbnn wrote (or it changed since); nothing was "
                             f"replaced: move it away or choose another {flag}.")
    for extra in extras:
        if extra.is_symlink() or extra.exists():
            if not overwrite:
                raise ValueError(f"{flag}: {extra} already exists; choose another {flag}, or pass {w} to replace it.")
            digests = (record or {}).get("files", {})
            if extra.is_symlink() or not extra.is_file() or digests.get(extra.name) != file_sha256(extra):
                raise ValueError(f"{flag}: {extra} is not a file tbnn wrote with {path.name} (or it changed since); "
                                 f"nothing was replaced: move it away or choose another {flag}.")
    return record


@contextlib.contextmanager
def stage_file(path: str | os.PathLike, overwrite: bool = False, flag: str = "--out",
               formats: tuple[str, ...] = (), **info: Any) -> Iterator[Path]:
    """The single owner of a figure file: yields a temporary PNG path (vector copies are written
    beside it under the same name with the suffix of each of ``formats``).

    On success the PNG is sealed (:func:`~tbnn.io.files.manifest.seal_png`: its own digest,
    its copies' digests and ``info``) and the files are moved onto ``path`` and its copies.
    An existing file is replaced only with ``overwrite=True`` and only when it is a figure
    tbnn wrote and nobody changed (a copy must match the digest the PNG records). A new file
    is never put over one that appeared meanwhile (the staged file is kept at a named path).
    A link, a folder, a path inside another tbnn output: refused in one sentence.

    >>> import tempfile, pathlib, matplotlib
    >>> matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "raster.png"
    >>> with stage_file(p) as tmp:
    ...     plt.figure().savefig(tmp); plt.close("all")
    >>> with stage_file(p) as tmp:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ValueError: --out ... already exists; choose another --out, or pass --overwrite to replace it.
    """
    path = Path(path)
    extras = [path.with_suffix(f".{f}") for f in formats]
    _check_file_target(path, extras, overwrite, flag)
    with os_errors(path):
        prepare_parent(path)
    lock = FolderLock(path.parent, flag=flag, name=f"{LOCK_NAME}.{path.name}").acquire()
    tmp = temp_name(path)
    try:
        record = _check_file_target(path, extras, overwrite, flag)  # again, under the lock
        yield tmp
        with os_errors(path):
            copies = {e.name: file_sha256(tmp.with_suffix(e.suffix)) for e in extras}
            seal_png(tmp, copies, **info)
            for e in extras:
                src = tmp.with_suffix(e.suffix)
                file_op("rename", e)
                os.replace(src, e) if record is not None and e.exists() else _place_new(src, e, flag, e)
            file_op("rename", path)
            if record is not None:
                if png_record(path) != record:
                    _keep(tmp, path, flag, f"{path.name} changed")
                os.replace(tmp, path)
            else:
                _place_new(tmp, path, flag, path)
            fsync_dir(path.parent)
    finally:
        for p in [tmp] + [tmp.with_suffix(e.suffix) for e in extras]:
            with contextlib.suppress(OSError):
                p.unlink()
        lock.release()


#: Old names of :func:`stage_dir` and :func:`stage_file`.
output_dir = stage_dir
output_file = stage_file
