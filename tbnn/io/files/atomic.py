"""Atomic writes: a temporary name beside the target, ``fsync``, one rename; temporary names that
only tbnn uses, cleaned when their writer died; ``OSError`` as one sentence naming the path."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["FAULT_HOOK", "MAX_JSON_BYTES", "OUTPUT_MARKERS", "file_op", "os_error_sentence", "os_errors", "temp_name", "is_temp_name", "clean_stale_temps", "fsync_dir", "atomic_write"]


FAULT_HOOK: Callable[[str, Path], None] | None = None

#: A JSON file larger than this is refused before it is read (tbnn's own are kilobytes).
MAX_JSON_BYTES = 64 * 1024 * 1024

#: The file that marks a folder as the output of each kind of command.
OUTPUT_MARKERS: dict[str, str] = {
    "run": "config.json",
    "simulation": "simulation.json",
    "analysis": "analysis.json",
    "demo": "demo.json",
}

LOCK_NAME = ".tbnn.lock"
_TEMP_RE = re.compile(r"^\.tbnn-(?P<pid>\d+)-(?P<tag>[0-9a-f]{12})\.(?P<what>tmp|new|old)\.(?P<name>.+)$")


def file_op(op: str, path: str | os.PathLike) -> None:
    """Announce a file operation to :data:`FAULT_HOOK` (no-op when it is ``None``)."""
    if FAULT_HOOK is not None:
        FAULT_HOOK(op, Path(path))


def os_error_sentence(err: OSError, path: str | os.PathLike, action: str = "write") -> str:
    """One sentence for an ``OSError`` met while working on ``path``."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    if err.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif err.errno in (errno.EROFS,):
        reason = "the file system is read-only"
    elif err.errno == errno.ENAMETOOLONG:
        reason = "the file name is too long"
    return f"cannot {action} {path}: {reason}."


@contextlib.contextmanager
def os_errors(path: str | os.PathLike, action: str = "write") -> Iterator[None]:
    """Turn any ``OSError`` raised inside the block into one ``ValueError`` naming ``path``.

    >>> with os_errors("/nonexistent/dir/x", "read"):
    ...     open("/nonexistent/dir/x").close()
    Traceback (most recent call last):
    ValueError: cannot read /nonexistent/dir/x: No such file or directory.
    """
    try:
        yield
    except OSError as err:
        where = err.filename if getattr(err, "filename", None) else path
        raise ValueError(os_error_sentence(err, where, action)) from None


def temp_name(path: str | os.PathLike, what: str = "tmp") -> Path:
    """A unique tbnn-owned temporary name beside ``path``: ``.tbnn-PID-TAG.WHAT.NAME``.

    The process id in the name lets a later writer tell a dead writer's leftovers (removed
    by :func:`clean_stale_temps`) from a live one's; a user's own files never match it.
    """
    path = Path(path)
    return path.with_name(f".tbnn-{os.getpid()}-{uuid.uuid4().hex[:12]}.{what}.{path.name}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a tbnn temporary name (see :func:`temp_name`)."""
    return _TEMP_RE.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike, all_of_them: bool = False) -> list[Path]:
    """Remove tbnn temporary files and folders in ``folder`` left by writers that died.

    ``all_of_them=True`` (used under a :class:`FolderLock`, when no other tbnn writer can
    be at work there) removes every tbnn temporary name except this process's own.
    Returns what was removed. A user's files are never touched.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if m is None:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or (not all_of_them and _pid_alive(pid)):
            continue
        try:
            file_op("remove", p)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def fsync_dir(folder: str | os.PathLike) -> None:
    """``fsync`` a folder so that renames inside it survive a power cut."""
    file_op("fsync_dir", folder)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write a file atomically: ``write(fh)`` fills a unique temporary file in the same
    folder, which is flushed, fsync-ed, given the usual permissions (0666 minus the umask)
    and renamed over ``path``; the folder is then fsync-ed. On any error the temporary file
    is removed, ``path`` is left untouched and an ``OSError`` becomes one ``ValueError``
    naming ``path``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = atomic_write(p, lambda fh: fh.write(b"hi"))
    >>> p.read_bytes()
    b'hi'
    """
    path = Path(path)
    tmp = temp_name(path)
    with os_errors(path):
        if not path.parent.is_dir():
            file_op("mkdir", path.parent)
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            file_op("open", tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                file_op("write", tmp)
                write(fh)
                fh.flush()
                file_op("fsync", tmp)
                os.fsync(fh.fileno())
            file_op("rename", path)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)
    return path
