"""One writer per folder: :class:`FolderLock` (``fcntl.flock`` on a lock file inside it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from tbnn.io.files.atomic import LOCK_NAME, os_errors

__all__ = ["FolderLock"]


# -------------------------------------------------------------------------------- lock


class FolderLock:
    """Exclusive writer lock on a folder (``fcntl.flock`` on ``FOLDER/.tbnn.lock``).

    The lock is held by an open file descriptor, so it disappears with the process however
    it ends (a ``kill -9`` included); a second writer gets one ``ValueError`` sentence.
    Used as a context manager; ``flag`` names the option in the message (``--out``); ``name``
    is the lock file's name (a figure is locked by ``.tbnn.lock.NAME`` in its folder).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with FolderLock(d):
    ...     FolderLock(d).acquire()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --out ... is being written by another tbnn process; wait for it to finish or choose another --out.
    """

    def __init__(self, folder: str | os.PathLike, flag: str = "--out", name: str = LOCK_NAME) -> None:
        self.folder = Path(folder)
        self.flag = flag
        self.name = name
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        path = self.folder / self.name
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
        """Release the lock and remove the lock file (a later writer makes a new one); a lock file
        that is no longer the one this lock holds (moved away with an old output) is left alone."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.folder / self.name).st_ino == os.fstat(self._fd).st_ino:
                    os.unlink(self.folder / self.name)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
