"""The ``--threads`` option of the benchmark and simulation scripts: one definition, one check.

On a small shared machine a second OpenMP thread that gets descheduled stalls every op, so
the scripts default to one torch intra-op thread. :func:`add_threads_option` adds the option
to a parser, :func:`set_threads` checks the value (an integer >= 1) and applies it; a bad
value is a one-sentence parser error naming ``--threads`` (exit 2).

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_threads_option(p)
>>> p.parse_args([]).threads
1
"""

from __future__ import annotations

import argparse

__all__ = ["THREADS_HELP", "add_threads_option", "set_threads"]

THREADS_HELP = ("torch intra-op threads (default 1: on a small shared machine a second OpenMP thread "
                "that gets descheduled stalls every op)")


def add_threads_option(parser: argparse.ArgumentParser, default: int = 1, help: str = THREADS_HELP) -> None:
    """Add ``--threads N`` (an int, default ``default``) to ``parser``."""
    parser.add_argument("--threads", type=int, default=default, help=help)


def set_threads(parser: argparse.ArgumentParser, threads: int) -> int:
    """Check ``--threads`` (an integer >= 1; else ``parser.error``, exit 2) and set torch's intra-op threads.

    Returns the thread count set.

    Raises
    ------
    SystemExit
        ``--threads must be an integer >= 1; got <value>.`` (through ``parser.error``).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:  # argparse gave an int
        parser.error(f"--threads must be an integer >= 1; got {threads!r}.")
    import torch

    torch.set_num_threads(threads)
    return threads
