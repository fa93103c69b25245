"""Output folders and files: the policy for a target (new, its own, or refused) and the staging
and swap that put a complete output in place."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tbnn.io.files.atomic import (
    LOCK_NAME,
    OUTPUT_MARKERS,
    clean_stale_temps,
    file_op,
    fsync_dir,
    is_temp_name,
    os_errors,
    temp_name,
)
from tbnn.io.files.jsonfile import read_json

__all__ = ["visible_entries", "output_kind", "enclosing_run", "swap_in", "prepare_parent", "output_dir", "output_file"]


# ------------------------------------------------------------------------ output policy


def visible_entries(folder: str | os.PathLike) -> list[Path]:
    """Entries of ``folder`` other than tbnn's lock file and tbnn temporary names."""
    folder = Path(folder)
    return [p for p in folder.iterdir() if p.name != LOCK_NAME and not is_temp_name(p.name)]


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


def _check_target(path: Path, kind: str, overwrite: bool, flag: str) -> bool:
    """Refuse a target the policy forbids; return whether it holds an output to replace."""
    run = enclosing_run(path)
    if kind != "run" and run is not None:
        raise ValueError(f"{flag} {path} is inside the run directory {run}; tbnn never writes into a "
                         f"run directory, choose a folder outside it.")
    if run is not None and run != Path(os.path.abspath(path)):
        raise ValueError(f"{flag} {path} is inside the run directory {run}; choose a folder outside it.")
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{flag} {path} is a dangling symbolic link; choose another {flag}.")
    if not path.exists():
        return False
    if not path.is_dir():
        raise ValueError(f"{flag} {path} exists and is not a directory.")
    with os_errors(path, "read"):
        entries = visible_entries(path)
    if not entries:
        return False
    found = output_kind(path)
    if found is None:
        raise ValueError(f"{flag} {path} is not empty and holds files tbnn did not write; choose an empty "
                         f"or new directory (tbnn never replaces them, even with --overwrite).")
    if found != kind:
        raise ValueError(f"{flag} {path} holds a tbnn {found} output, not a {kind}; choose another {flag}.")
    if not overwrite:
        raise ValueError(f"{flag} {path} already holds a {kind} output; choose another {flag}, or pass "
                         f"--overwrite to replace it once the new one is complete.")
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


def swap_in(staging: Path, target: Path, replace: bool) -> None:
    """Move the complete ``staging`` folder onto ``target``; with ``replace`` the old ``target`` is
    swapped out atomically (``renameat2(RENAME_EXCHANGE)`` where available) and then removed."""
    if not replace:
        if target.is_dir() and not target.is_symlink():
            # an empty folder (or one holding only tbnn's lock / temporary names) is replaced
            for p in target.iterdir():
                file_op("remove", p)
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        file_op("rename", target)
        os.replace(staging, target) if not target.is_dir() else os.rename(staging, target)
        fsync_dir(target.parent)
        return
    file_op("rename", target)
    if _exchange(staging, target):
        fsync_dir(target.parent)
        old = staging  # now holds the old output
    else:
        old = temp_name(target, "old")
        os.rename(target, old)
        os.rename(staging, target)
        fsync_dir(target.parent)
    file_op("remove", old)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


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
def output_dir(path: str | os.PathLike, kind: str, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """The output policy of a command that writes a folder; yields the folder to write into.

    The output is built in a tbnn-owned folder beside ``path`` (:func:`temp_name`) and moved
    onto ``path`` only when the block ends without an error; on an error it is removed and
    ``path`` is left as it was. ``path`` may be new or empty; a folder already holding a
    ``kind`` output is replaced only with ``overwrite=True`` (atomically where the system
    allows, so the old output stays whole until the new one is complete, and no file of the
    old output survives into the new). Refused in one sentence: a folder holding anything
    tbnn did not write or another kind of output, a file, a dangling link, any folder inside
    a run directory. ``kind`` is a key of :data:`OUTPUT_MARKERS`; the block must write that
    kind's marker file. Operating-system errors become one sentence naming ``path``.

    >>> import tempfile, pathlib
    >>> from tbnn.io.files import write_json
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sim"
    >>> with output_dir(out, "simulation") as tmp:
    ...     _ = write_json(tmp / "simulation.json", {"accuracy": 1.0})
    >>> sorted(p.name for p in out.iterdir())
    ['simulation.json']
    """
    if kind not in OUTPUT_MARKERS:
        raise ValueError(f"kind must be one of {', '.join(OUTPUT_MARKERS)}; got {kind!r}.")
    path = Path(path)
    replace = _check_target(path, kind, overwrite, flag)
    with os_errors(path):
        prepare_parent(path)
        staging = temp_name(path, "new")
        file_op("mkdir", staging)
        staging.mkdir()
    try:
        yield staging
        if not (staging / OUTPUT_MARKERS[kind]).exists():
            raise RuntimeError(f"a {kind} output must write {OUTPUT_MARKERS[kind]}")
        with os_errors(path):
            swap_in(staging, path, replace)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise


@contextlib.contextmanager
def output_file(path: str | os.PathLike, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """The output policy for a single file (a figure): yields a temporary path to write.

    An existing file is replaced only with ``overwrite=True`` and only when the new one is
    complete (atomic rename); a folder, a dangling link or a path inside a run directory is
    refused in one sentence.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "raster.png"
    >>> with output_file(p) as tmp:
    ...     _ = tmp.write_bytes(b"png")
    >>> with output_file(p) as tmp:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ValueError: --out ... already exists; choose another --out, or pass --overwrite to replace it.
    """
    path = Path(path)
    run = enclosing_run(path.parent)
    if run is not None:
        raise ValueError(f"{flag} {path} is inside the run directory {run}; tbnn never writes into a run "
                         f"directory, choose a path outside it.")
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{flag} {path} is a dangling symbolic link; choose another {flag}.")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} already exists; choose another {flag}, or pass --overwrite to replace it.")
    with os_errors(path):
        if not path.parent.is_dir():
            file_op("mkdir", path.parent)
            path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent)
    tmp = temp_name(path)
    try:
        yield tmp
        with os_errors(path):
            file_op("rename", path)
            os.replace(tmp, path)
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
