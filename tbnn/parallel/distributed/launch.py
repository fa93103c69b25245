"""Joining and leaving the process group that ``torchrun`` set up (``setup``, ``shutdown``)."""

from __future__ import annotations

import atexit
import datetime
import gc
import signal
from typing import Any

import torch
import torch.distributed as dist

from tbnn.parallel.distributed.group import (
    DistributedFailure,
    device_for,
    is_distributed,
    launched,
    rank,
    timeout_seconds,
)
from tbnn.parallel.distributed.sync import requested_sum_method, sum_method

__all__ = ["failure_message", "ignore_sigterm", "setup", "shutdown"]


_PREVIOUS_SIGTERM: list[Any] = []
_FAILED: list[bool] = []  # a peer failure was seen: leave without waiting for the others


def _on_sigterm(signum: int, frame: Any) -> None:
    _restore_sigterm()  # once: a second signal (e.g. while exiting) ends the process quietly
    _FAILED.append(True)
    raise DistributedFailure("stopped by torchrun because another process of the job failed")


def _restore_sigterm() -> None:
    while _PREVIOUS_SIGTERM:
        try:
            signal.signal(signal.SIGTERM, _PREVIOUS_SIGTERM.pop())
        except ValueError:  # not the main thread
            pass


def failure_message(err: BaseException) -> str | None:
    """One sentence for an error caused by another rank (death, hang, SIGTERM), else ``None``."""
    if isinstance(err, DistributedFailure):
        _FAILED.append(True)
        return f"rank {rank()}: {err}"
    dist_error = getattr(dist, "DistError", ())
    text = str(err).strip()
    markers = ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out",
               "Broken pipe", "NCCL", "Gloo", "gloo")
    if not (is_distributed() or launched()):
        return None
    if not ((dist_error and isinstance(err, dist_error))
            or (isinstance(err, RuntimeError) and any(m in text for m in markers))):
        return None
    _FAILED.append(True)
    reason = text.splitlines()[0] if text else type(err).__name__
    if reason.startswith("[") and "] " in reason:  # drop gloo's source location
        reason = reason.split("] ", 1)[1]
    reason = reason.split(". ", 1)[0].rstrip(".")
    return f"rank {rank()}: another process of the job died or hung ({reason})"


def setup(device: str | torch.device = "cpu", timeout: float | None = None) -> bool:
    """Join torchrun's process group once (no-op outside torchrun or when already joined).

    Backend ``nccl`` for a CUDA ``device`` (which also becomes this process's current
    GPU), else ``gloo``. Every later collective waits at most ``timeout`` seconds (default
    :func:`timeout_seconds`). Returns whether the job is distributed.

    Raises
    ------
    DistributedFailure
        The other processes did not join within the timeout.
    """
    if not launched():
        return False
    if dist.is_initialized():
        return is_distributed()
    dev = device_for(device)
    seconds = timeout_seconds() if timeout is None else float(timeout)
    requested_sum_method()  # a bad TBNN_DIST_SUM is refused before joining
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, TimeoutError) as err:
        raise DistributedFailure(f"could not join the torchrun job within {seconds:g} s ({err})") from None
    atexit.register(lambda: shutdown(wait=not _FAILED))
    sum_method()  # probed once, now, on every rank together
    try:  # torchrun stops the survivors of a failed rank with SIGTERM: end with one message
        _PREVIOUS_SIGTERM.append(signal.signal(signal.SIGTERM, _on_sigterm))
    except ValueError:  # not the main thread
        pass
    return is_distributed()


def ignore_sigterm() -> None:
    """From now on this process ignores torchrun's SIGTERM (idempotent).

    Called as soon as a process knows it is ending (a failure it reports, or leaving the
    group), so that the signal torchrun sends the survivors of a failed rank cannot raise
    again while the first failure is being reported.
    """
    if _PREVIOUS_SIGTERM:
        _PREVIOUS_SIGTERM[:] = [signal.SIG_IGN]
    _restore_sigterm()


def shutdown(wait: bool = False) -> None:
    """Leave the process group (idempotent); ``wait``: first meet the other ranks at a barrier.

    Call with ``wait=True`` at the end of a successful job (gloo can abort a process that
    leaves while a peer is still talking to it); after a failure, leave at once. A process
    that has left ignores torchrun's SIGTERM, so that it ends with its own exit status.
    """
    ignore_sigterm()
    if dist.is_available() and dist.is_initialized():
        try:
            if wait and not _FAILED:
                dist.barrier()
            gc.collect()  # DDP wrappers and pending work of the group go first (else gloo may abort)
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a peer may be gone already
            pass
