"""Safe file output: atomic writes, one writer per folder, and one policy for output folders.

* :func:`atomic_write` writes a file under a unique tbnn-owned temporary name in the
  destination's folder, ``fsync``-s it and ``os.replace``-s it onto the final name (atomic on
  POSIX), then ``fsync``-s the folder: a kill at any instant leaves the old file or the new
  one, never a mixture.
* :class:`FolderLock` (``fcntl.flock`` on a lock file) lets one process write a folder; a
  second writer is refused in one sentence.
* :func:`output_dir` is the output policy of every command that writes a folder: a
  non-empty folder that is not this command's own output is refused; ``overwrite=True``
  builds the new output in a tbnn-owned folder beside the old one and swaps it in only when
  it is complete (the old output stays whole until then); a run directory is never written
  into. :func:`output_file` is the same for a single file.
* Every operating-system error (full disk, read-only mount, dangling link, name too long)
  becomes one ``ValueError`` sentence naming the path (:func:`os_errors`).

Every file operation first calls :data:`FAULT_HOOK` (when set) with the operation's name and
path; the tests use it to kill a writer at every step or to inject a full disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FAULT_HOOK",
    "prepare_parent",
    "canonical_json",
    "json_digest",
    "seal_json",
    "read_sealed_json",
    "write_sealed_json",
    "MAX_JSON_BYTES",
    "OUTPUT_MARKERS",
    "FolderLock",
    "atomic_write",
    "write_json",
    "json_safe",
    "read_json",
    "fsync_dir",
    "file_op",
    "os_errors",
    "os_error_sentence",
    "swap_in",
    "temp_name",
    "visible_entries",
    "is_temp_name",
    "clean_stale_temps",
    "output_kind",
    "enclosing_run",
    "file_sha256",
    "output_dir",
    "output_file",
]

#: Called as ``FAULT_HOOK(op, path)`` before every write, fsync, rename, mkdir and removal
#: (``op`` in ``"open"``, ``"write"``, ``"fsync"``, ``"rename"``, ``"fsync_dir"``, ``"mkdir"``,
#: ``"remove"``); ``None`` in normal use. Tests set it to raise ``OSError(ENOSPC)`` or to
#: ``os._exit`` a writer half-way.
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


def json_safe(o: Any) -> Any:
    """``o`` with NaN and infinite floats as ``None`` and keys as strings (what :func:`write_json` stores)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (NaN and infinities are written as ``null``)."""
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False)
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


# -------------------------------------------------------------------------------- lock


class FolderLock:
    """Exclusive writer lock on a folder (``fcntl.flock`` on ``FOLDER/.tbnn.lock``).

    The lock is held by an open file descriptor, so it disappears with the process however
    it ends (a ``kill -9`` included); a second writer gets one ``ValueError`` sentence.
    Used as a context manager; ``flag`` names the option in the message (``--out``).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with FolderLock(d):
    ...     FolderLock(d).acquire()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --out ... is being written by another tbnn process; wait for it to finish or choose another --out.
    """

    def __init__(self, folder: str | os.PathLike, flag: str = "--out") -> None:
        self.folder = Path(folder)
        self.flag = flag
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        path = self.folder / LOCK_NAME
        while True:
            with os_errors(path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ValueError(
                    f"{self.flag} {self.folder} is being written by another tbnn process; "
                    f"wait for it to finish or choose another {self.flag}."
                ) from None
            try:  # the holder before us may have removed the file it locked: lock the live one
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock and remove the lock file (a later writer makes a new one)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.folder / LOCK_NAME)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
    body = json_safe({k: v for k, v in obj.items() if k != "sha256"})
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
