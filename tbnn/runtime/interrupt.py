"""Ctrl-C in the ``tbnn`` command: one line and exit status 130, at any moment, no traceback.

A ``KeyboardInterrupt`` raised inside an import (numpy, torch) can leave half-initialised
modules behind, and later code then fails with an unrelated error. The command line
therefore handles ``SIGINT`` itself from the first statement of its entry point: it prints
``tbnn COMMAND: interrupted`` and ends the process at once with status 130 (128 + SIGINT),
as a kill would. Nothing is lost by this: every file tbnn writes is written atomically, an
output is moved in only when complete, a run keeps its last committed checkpoint (resumed
with ``--resume``), and temporary files of a dead writer are removed by the next one.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["launched_as_cli", "exit_on_interrupt", "restore_interrupt"]

_PREVIOUS: list[Any] = []


def launched_as_cli(argv: list[str] | None = None) -> bool:
    """Whether this process is the ``tbnn`` command (console script, ``python -m tbnn``, ``torchrun -m tbnn``).

    >>> launched_as_cli(["python", "-m", "tbnn", "train"]), launched_as_cli(["/usr/bin/tbnn", "demo"])
    (True, True)
    >>> launched_as_cli(["python", "-m", "pytest"])
    False
    """
    lines = [list(argv)] if argv is not None else [list(getattr(sys, "orig_argv", [])), list(sys.argv)]
    for line in lines:
        if line and os.path.basename(line[0]) == "tbnn":
            return True
        if any(a == "-m" and b == "tbnn" for a, b in zip(line, line[1:])):
            return True
    return False


def _command() -> str:
    names = ("train", "simulate", "analyze", "raster", "demo")
    return next((a for a in sys.argv[1:] if a in names), "")


def _interrupted(signum: int, frame: Any) -> None:
    command = _command()
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stdout must not hide the line below
        pass
    os.write(2, f"tbnn{' ' + command if command else ''}: interrupted\n".encode())
    os._exit(130)


def exit_on_interrupt() -> None:
    """Handle ``SIGINT`` by one line on stderr and exit status 130 (see the module text).

    Only in the main thread (``signal`` allows no other); :func:`restore_interrupt` puts
    back the handler that was there before.
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        _PREVIOUS.append(signal.getsignal(signal.SIGINT))
        signal.signal(signal.SIGINT, _interrupted)


def restore_interrupt() -> None:
    """Put back the ``SIGINT`` handler :func:`exit_on_interrupt` replaced last."""
    if _PREVIOUS:
        signal.signal(signal.SIGINT, _PREVIOUS.pop())
