"""The ``--threads`` option of the ``tbnn`` command and of the scripts: one definition, one check, one policy.

On a small shared machine a second OpenMP thread that gets descheduled stalls every op, so
the scripts default to one torch intra-op thread. :func:`add_threads_option` adds the option
to a parser, :func:`set_threads` checks the value (an integer >= 1) and applies it; a bad
value is a one-sentence parser error naming ``--threads`` (exit 2).

The ``tbnn`` command's policy (:func:`apply_thread_policy`): ``--threads N`` if given, else
``OMP_NUM_THREADS`` if the user set it, else **one** intra-op thread, for every command that
runs torch (``train``, ``simulate``, ``demo``). :func:`thread_policy` says which applied, for
``simulation.json``; a Python program keeps whatever threads it set itself.

Why one (AMD EPYC, 2 cores; ``python benchmarks/bench_repeat.py``, two runs, and ``tbnn
train`` timed by hand, 2026-12-02): tbnn's models are small and its batches short, so a
second thread gains little on a quiet machine (mnist1d MLP, 10 epochs: 2.5 s against 2.7 s
with one; the CNN, 3 epochs: 1.2-1.4 s against 1.5 s; ``tbnn simulate`` of the 4,000 training samples: 66,203 and 91,859 samples/s
against 106,343 and 97,397 with one, medians of 7 processes), and when two other processes
compete for the cores, OpenMP threads that spin while they wait stall every operation
(simulate: 712-51,241 samples/s with two threads, 33,306-103,714 with one). Passive waiting
(``OMP_WAIT_POLICY=PASSIVE``) tames the busy case but makes two threads 3x slower on a quiet
machine (35,423 samples/s). ``--threads N`` is for larger models on machines with free cores.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_threads_option(p)
>>> p.parse_args([]).threads
1
"""

from __future__ import annotations

import argparse

__all__ = ["THREADS_HELP", "add_threads_option", "apply_thread_policy", "reset_thread_policy", "set_threads",
           "thread_policy"]

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


_POLICY: dict[str, str] = {}


def apply_thread_policy(threads: int | None, default: int | None) -> str:
    """Set torch's intra-op threads by the ``tbnn`` command's policy; returns where the count came from.

    ``threads``: the ``--threads`` value (``None``: not given; else an integer >= 1, checked
    by the parser); ``default``: the command's default (``None``: torch's own). An
    ``OMP_NUM_THREADS`` that is not an integer >= 1 is ignored, as torch ignores it.

    >>> apply_thread_policy(None, None) in ("torch default", "OMP_NUM_THREADS")
    True
    """
    import os

    import torch

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if threads is not None:
        source = "--threads"
    elif env.isdigit() and int(env) >= 1:
        threads, source = int(env), "OMP_NUM_THREADS"
    elif default is not None:
        threads, source = default, f"the command's default ({default})"
    else:
        source = "torch default"
    if threads is not None:
        torch.set_num_threads(threads)
    _POLICY["source"] = source
    return source


def thread_policy() -> str:
    """Where this process's torch thread count came from: what :func:`apply_thread_policy` chose,
    or ``"the caller's (Python API)"`` when the ``tbnn`` command did not set it.

    >>> isinstance(thread_policy(), str)
    True
    """
    return _POLICY.get("source", "the caller's (Python API)")


def reset_thread_policy() -> None:
    """Forget the choice of :func:`apply_thread_policy`: :func:`thread_policy` then says the
    caller's again (for a program or a test that runs the ``tbnn`` command in-process and then
    sets torch's threads itself).

    >>> reset_thread_policy(); thread_policy()
    "the caller's (Python API)"
    """
    _POLICY.clear()
