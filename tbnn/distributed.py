r"""Data-parallel training and simulation on :mod:`torch.distributed` (launched by ``torchrun``).

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) :func:`setup` joins the process
group from torchrun's variables (``gloo`` on the CPU, ``nccl`` on CUDA) with a short
collective timeout, so a rank that dies or hangs ends the job within about a minute with
one clear message instead of gloo's 30-minute default. Without torchrun every function here
is the identity of the one-process case: one rank, nothing to gather, nothing to wait for.

Training is synchronous data parallelism (:class:`~torch.nn.parallel.DistributedDataParallel`):
each of the :math:`N` ranks takes its contiguous :math:`B/N` part of every global batch of
``B`` samples (the same seeded, per-epoch reshuffled order on every rank), computes the mean
loss over its part, and DDP averages the gradients,

.. math::

    g = \frac{1}{N} \sum_{r=1}^{N} \frac{1}{B/N} \sum_{i \in \mathcal{B}_r} \nabla \ell_i
      = \frac{1}{B} \sum_{i \in \mathcal{B}} \nabla \ell_i ,

the gradient of one process on the whole batch. BatchNorm layers are converted to
synchronised BatchNorm (statistics over the global batch; Ioffe & Szegedy 2015,
arXiv:1502.03167), so ``N`` ranks compute what one process computes up to the order of
floating-point sums (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704).

Simulation is split by whole batches (:func:`shard_items`): every batch, with its seed for
random input codes, is the one a single process would run, and :func:`merge_ranks` joins
the ranks' results in sample order (spikes, predictions and counts bit for bit).

Every sum over the ranks (gradients, BatchNorm statistics) goes through
:func:`sum_over_ranks`, by :func:`~torch.distributed.all_reduce` or by one all-to-all
exchange, whichever a probe at :func:`setup` finds faster on this machine.

Environment: ``TBNN_DIST_TIMEOUT`` (seconds, default 30) bounds every collective;
``TBNN_DIST_SUM`` (``allreduce`` or ``exchange``) overrides the probe.

>>> world_size(), rank(), is_main()  # outside torchrun: one process
(1, 0, True)
>>> shard_range(10)  # this process's part of 10 samples
(0, 10)
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os
import signal
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from .userdata import TrainingData

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedFailure",
    "SUM_METHODS",
    "SUM_PROBE",
    "SyncBatchNorm",
    "all_max",
    "all_sum",
    "barrier",
    "broadcast_check",
    "check_all",
    "check_batch",
    "convert_sync_batchnorm",
    "device_for",
    "failure_message",
    "gather_arrays",
    "is_distributed",
    "is_main",
    "launched",
    "local_rank",
    "merge_ranks",
    "rank",
    "revert_sync_batchnorm",
    "seed_epoch",
    "setup",
    "shard_batches",
    "shard_data",
    "shard_items",
    "shard_range",
    "requested_sum_method",
    "shutdown",
    "sum_method",
    "sum_over_ranks",
    "timeout_seconds",
    "world_size",
    "wrap",
]

#: Collective timeout (s) when ``TBNN_DIST_TIMEOUT`` is unset.
DEFAULT_TIMEOUT_S = 30.0


class DistributedFailure(RuntimeError):
    """Another process of the job died, hung or stopped it (raised instead of a gloo/NCCL error)."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """True when this process is one of several started by ``torchrun`` (``WORLD_SIZE > 1``)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_distributed() -> bool:
    """True when the process group is joined and holds more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes of the job (1 outside torchrun)."""
    return dist.get_world_size() if is_distributed() else max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's global rank (0 outside torchrun); known from the environment before :func:`setup`."""
    return dist.get_rank() if is_distributed() else _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``; 0 outside torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True on rank 0, the one process that prints, shows progress and writes files."""
    return rank() == 0


def timeout_seconds() -> float:
    """The collective timeout: ``TBNN_DIST_TIMEOUT`` seconds, else :data:`DEFAULT_TIMEOUT_S`.

    Raises
    ------
    ValueError
        ``TBNN_DIST_TIMEOUT`` is not a number > 0.
    """
    text = os.environ.get("TBNN_DIST_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"TBNN_DIST_TIMEOUT must be a number of seconds > 0; got {text!r}.")
    return value


def device_for(device: str | torch.device) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per process); others unchanged."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and launched():
        dev = torch.device("cuda", local_rank())
    return dev


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


def shutdown(wait: bool = False) -> None:
    """Leave the process group (idempotent); ``wait``: first meet the other ranks at a barrier.

    Call with ``wait=True`` at the end of a successful job (gloo can abort a process that
    leaves while a peer is still talking to it); after a failure, leave at once. A process
    that has left ignores torchrun's SIGTERM, so that it ends with its own exit status.
    """
    if _PREVIOUS_SIGTERM:
        _PREVIOUS_SIGTERM[:] = [signal.SIG_IGN]
    _restore_sigterm()
    if dist.is_available() and dist.is_initialized():
        try:
            if wait and not _FAILED:
                dist.barrier()
            gc.collect()  # DDP wrappers and pending work of the group go first (else gloo may abort)
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a peer may be gone already
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


def barrier() -> None:
    """Wait for every rank (bounded by the collective timeout); no-op in one process."""
    if is_distributed():
        dist.barrier()


def broadcast_check(check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``check(*args, **kwargs)`` on rank 0 only and give every rank its outcome.

    Used for checks of the file system (an output folder), which must be decided once,
    before any rank writes. A ``ValueError`` on rank 0 is raised on every rank (rank 0
    prints it); the return value must be a bool, int, float, str or ``None``.
    """
    if not is_distributed():
        return check(*args, **kwargs)
    box: list[Any] = [None]
    if is_main():
        try:
            box = [("ok", check(*args, **kwargs))]
        except ValueError as err:
            box = [("error", str(err))]
    # a two-element list of plain scalars (str / bool / number): nothing user-made is unpickled
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise ValueError(value)
    return value


def check_all(check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``check(*args, **kwargs)`` on every rank; if it raises ``ValueError`` on any, raise it on all.

    For checks of each rank's own data (e.g. labels beyond the model's classes in its part
    of a batch): rank 0 then prints the first rank's sentence instead of the other ranks
    waiting for the failed one until the collective timeout.
    """
    if not is_distributed():
        return check(*args, **kwargs)
    value, message = None, ""
    try:
        value = check(*args, **kwargs)
    except ValueError as err:
        message = str(err) or "invalid input"
    messages: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, message)  # plain strings
    first = next((m for m in messages if m), "")
    if first:
        raise ValueError(first)
    return value


def check_batch(batch: int) -> None:
    """Refuse a global ``batch`` that the ranks cannot split evenly.

    Raises
    ------
    ValueError
        ``batch`` is not a multiple of the number of processes.
    """
    n = world_size()
    if n > 1 and batch % n:
        raise ValueError(f"batch must be a multiple of the {n} processes of this torchrun job (it is the global "
                         f"batch, split evenly over them); got {batch}.")


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch's global generator from ``(seed, epoch, rank)`` (distributed runs only).

    Random draws inside the model (e.g. a rate code) then differ between ranks and do not
    depend on the history of the process, so a resumed run at the same world size
    repeats them exactly. No-op in one process (whose generator is saved in checkpoints).
    """
    if is_distributed():
        state = np.random.SeedSequence([int(seed), int(epoch), rank()]).generate_state(2, dtype=np.uint32)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))


def shard_range(n: int, size: int | None = None, index: int | None = None) -> tuple[int, int]:
    """This rank's contiguous part ``[start, stop)`` of ``n`` samples (part sizes differ by at most 1).

    ``size`` / ``index``: the number of parts and which one (default: world size, rank).
    Rank ``r`` of ``N`` takes ``[ceil(r n / N), ceil((r + 1) n / N))``; the parts of
    ranks ``0 .. N-1`` concatenated give ``0 .. n-1`` in order, and rank 0's part is never
    empty when ``n >= 1``.

    >>> [shard_range(10, 3, r) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    size = world_size() if size is None else int(size)
    index = rank() if index is None else int(index)
    return -(-index * n // size), -(-(index + 1) * n // size)  # ceilings: rank 0 holds a part whenever n >= 1


def shard_batches(data: TrainingData, batch: int,
                  generator: torch.Generator | None) -> Iterator[tuple[Tensor, Tensor, float]]:
    """This rank's part of every global mini-batch, with its loss weight.

    Yields ``(x, y, weight)``. In one process: ``data.batches(batch, generator)`` with
    weight 1. Distributed: every rank draws the same shuffled order (the same seeded
    ``generator``), splits each global batch of ``batch`` samples into ``N`` contiguous
    parts and keeps its own; ``weight = N n_r / B`` rescales a mean loss over its ``n_r``
    samples so that DDP's gradient average is the mean over the global batch ``B`` even
    when the last batch does not split evenly. A last batch smaller than ``N`` is dropped
    (every rank needs a sample). Array data are indexed per rank; a ``Dataset`` or a
    ``DataLoader`` is read batch by batch and sliced.
    """
    n_ranks = world_size()
    if n_ranks == 1:
        for xb, yb in data.batches(batch, generator):
            yield xb, yb, 1.0
        return
    me = rank()
    if data.tensors is not None:
        x, y = data.tensors
        order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
        for i in range(0, len(y), batch):
            part = order[i:i + batch]
            if len(part) < n_ranks:
                return
            lo, hi = shard_range(len(part), n_ranks, me)
            idx = part[lo:hi]
            yield x[idx], y[idx], n_ranks * len(idx) / len(part)
        return
    for xb, yb in data.batches(batch, generator):
        if len(yb) < n_ranks:
            return
        lo, hi = shard_range(len(yb), n_ranks, me)
        yield xb[lo:hi], yb[lo:hi], n_ranks * (hi - lo) / len(yb)


def shard_data(data: TrainingData) -> tuple[TrainingData, bool]:
    """This rank's contiguous part of evaluation data, and whether it was split.

    Array data and a ``Dataset`` are split with :func:`shard_range` (sum the per-rank
    results with :func:`all_sum`); a ``DataLoader`` is kept whole on every rank (its own
    sampler decides). In one process: ``(data, False)``.
    """
    if not is_distributed() or isinstance(data.source, DataLoader):
        return data, False
    lo, hi = shard_range(len(data))
    if data.tensors is not None:
        x, y = data.tensors
        return TrainingData(tensors=(x[lo:hi], y[lo:hi])), True
    return TrainingData(source=Subset(data.source, range(lo, hi))), True


def all_sum(*values: float) -> list[float]:
    """Sum numbers over the ranks (float64); the numbers themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_max(*values: float) -> list[float]:
    """Maximum of numbers over the ranks (float64); the numbers themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def shard_items(items: Sequence[Any]) -> Sequence[Any]:
    """This rank's contiguous block of ``items`` (:func:`shard_range`); all of them in one process.

    Sharding whole batches (``shard_items(range(0, n, batch))``) keeps every batch, and so
    every per-batch seed and sum, as it is in one process.

    >>> list(shard_items(range(0, 10, 4)))
    [0, 4, 8]
    """
    lo, hi = shard_range(len(items))
    return items[lo:hi]


def gather_arrays(arrays: dict[str, np.ndarray], dst: int | None = 0) -> dict[str, np.ndarray] | None:
    """Concatenate every rank's arrays along axis 0, in rank order, exactly (as bytes).

    Each rank passes the arrays of its own samples (any number of rows, zero included; a
    rank may omit an array it has no rows of). The arrays of one name must share dtype and
    trailing shape. ``dst``: the rank that receives the result (the others get ``None``),
    or ``None`` for every rank. With :func:`shard_range` / :func:`shard_items` parts the
    result is, bit for bit, the arrays of one process on all samples. In one process:
    the arrays themselves.

    >>> out = gather_arrays({"a": np.arange(3)})
    >>> out["a"].tolist()
    [0, 1, 2]
    """
    if not is_distributed():
        return dict(arrays)
    n_ranks, me = dist.get_world_size(), dist.get_rank()
    dev = _comm_device()
    local = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta: list[Any] = [None] * n_ranks  # (dtype, trailing shape, rows) per name: plain strings and ints
    dist.all_gather_object(meta, {k: (v.dtype.str, list(v.shape[1:]), int(v.shape[0]) if v.ndim else 1)
                                  for k, v in local.items()})
    receive = dst is None or me == dst
    out: dict[str, np.ndarray] | None = {} if receive else None
    for name in sorted(set().union(*[set(m) for m in meta])):
        known = [m[name] for m in meta if name in m]
        dtype, trailing = np.dtype(known[0][0]), tuple(known[0][1])
        if any(np.dtype(d) != dtype or tuple(t) != trailing for d, t, _ in known):
            raise ValueError(f"gather_arrays: array {name!r} differs in dtype or trailing shape between ranks.")
        a = local.get(name, np.zeros((0, *trailing), dtype=dtype)).reshape(-1, *trailing)
        nbytes = [m[name][2] * int(np.prod(trailing, dtype=np.int64)) * dtype.itemsize if name in m else 0
                  for m in meta]
        longest = max(max(nbytes), 1)
        padded = torch.zeros(longest, dtype=torch.uint8, device=dev)
        if a.nbytes:
            padded[:a.nbytes] = torch.from_numpy(a.reshape(-1).view(np.uint8).copy()).to(dev)
        parts = [torch.zeros(longest, dtype=torch.uint8, device=dev) for _ in range(n_ranks)]
        if dst is None:
            dist.all_gather(parts, padded)
        else:
            dist.gather(padded, parts if me == dst else None, dst=dst)
        if out is not None:
            chunks = [p[:nb].cpu().numpy().view(dtype).reshape(-1, *trailing) for p, nb in zip(parts, nbytes)]
            out[name] = np.concatenate(chunks, axis=0)
    return out


def merge_ranks(
    batches: dict[str, list[Any]],
    sums: dict[str, dict[str, Any]],
    firsts: dict[str, dict[str, Any]],
    maxima: Sequence[float] = (),
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[float]]:
    """Merge what each rank computed on its block of whole batches (:func:`shard_items`).

    * ``batches``: name -> this rank's per-batch arrays / tensors (rows = samples); every
      rank receives their concatenation over all ranks in sample order (:func:`gather_arrays`),
      bit for bit what one process computes batch after batch.
    * ``sums``: name -> {key: int, float or tensor}: summed over the ranks per key, in rank
      order (exact for counts: integer-valued floats below :math:`2^{53}`).
    * ``firsts``: name -> {key: value}: the first rank's value per key (facts that do not
      depend on the samples, e.g. layer sizes); keys keep their first-seen order.
    * ``maxima``: numbers, maximised over the ranks.

    In one process: the inputs (batches concatenated). Every rank must call it.
    """
    local = {k: np.concatenate([np.asarray(a.cpu() if isinstance(a, Tensor) else a) for a in v])
             for k, v in batches.items() if v}
    if not is_distributed():
        return local, sums, firsts, [float(v) for v in maxima]
    arrays = gather_arrays(local, dst=None)
    assert arrays is not None
    parts: list[Any] = [None] * dist.get_world_size()
    cpu = {"sums": {n: {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in d.items()} for n, d in sums.items()},
           "firsts": firsts}
    dist.all_gather_object(parts, cpu)  # the job's own numbers and tensors, between its processes
    merged_sums: dict[str, dict[str, Any]] = {n: {} for n in sums}
    merged_firsts: dict[str, dict[str, Any]] = {n: {} for n in firsts}
    for part in parts:
        for n, d in part["sums"].items():
            for k, v in d.items():
                merged_sums[n][k] = merged_sums[n][k] + v if k in merged_sums[n] else v
        for n, d in part["firsts"].items():
            for k, v in d.items():
                merged_firsts[n].setdefault(k, v)
    return arrays, merged_sums, merged_firsts, all_max(*maxima) if maxima else []


# --------------------------------------------------------------------------------------
# synchronised BatchNorm and DDP


def sum_over_ranks(t: Tensor) -> Tensor:
    r"""The element-wise sum of ``t`` over the ranks, the same bits on every rank (a new tensor).

    Two ways, chosen once per job by :func:`sum_method` (the faster on this machine, or
    ``TBNN_DIST_SUM``): ``"allreduce"`` (:func:`torch.distributed.all_reduce`) or
    ``"exchange"``: every rank sends ``t`` to every other with one
    :func:`~torch.distributed.all_to_all_single` and adds the :math:`N` copies in rank order.
    The exchange moves :math:`(N-1)` copies per rank instead of the ring's
    :math:`2(N-1)/N`, but is one round of messages; on small tensors and few ranks (gloo
    on loopback) it is the faster. In one process: a copy of ``t``.
    """
    if not is_distributed():
        return t.clone()
    if sum_method() == "allreduce":
        t = t.clone()
        dist.all_reduce(t)
        return t
    return _exchange(t.contiguous(), async_op=False)


def _exchange(t: Tensor, async_op: bool) -> Any:
    n = dist.get_world_size()
    flat = t.reshape(-1)
    out = torch.empty(n * flat.numel(), dtype=t.dtype, device=t.device)
    work = dist.all_to_all_single(out, flat.repeat(n), async_op=async_op)

    def total(_: Any = None) -> Tensor:
        return out.view(n, -1).sum(0).view(t.shape)

    return work.get_future().then(total) if async_op else total()


_SUM_METHOD: list[str] = []
SUM_METHODS = ("allreduce", "exchange")
#: the probe's mean milliseconds per sum of each method (rank 0's; empty until probed)
SUM_PROBE: dict[str, float] = {}


def sum_method() -> str:
    """How :func:`sum_over_ranks` sums: ``TBNN_DIST_SUM`` if set, else the faster of the two.

    The probe (once per job, about 50 ms) times 40 of each, interleaved, on a 4 KiB tensor
    and compares the means (a collective's slow tail costs a training step as much as its
    typical time); rank 0's timings decide, so that every rank takes the same path.

    Raises
    ------
    ValueError
        ``TBNN_DIST_SUM`` is neither ``allreduce`` nor ``exchange``.
    """
    if _SUM_METHOD:
        return _SUM_METHOD[0]
    text = requested_sum_method()
    if text is None:
        text = _probe_sum_method() if is_distributed() else "allreduce"
    _SUM_METHOD.append(text)
    return text


def requested_sum_method() -> str | None:
    """``TBNN_DIST_SUM`` (``allreduce`` or ``exchange``), or ``None`` when unset (then probed).

    Raises
    ------
    ValueError
        ``TBNN_DIST_SUM`` is set to anything else.
    """
    text = os.environ.get("TBNN_DIST_SUM")
    if text is not None and text not in SUM_METHODS:
        raise ValueError(f"TBNN_DIST_SUM must be one of {', '.join(SUM_METHODS)}; got {text!r}.")
    return text


def _probe_sum_method() -> str:
    import time

    t = torch.zeros(1024, device=_comm_device())
    seconds: list[list[float]] = [[], []]
    dist.barrier()
    for i in range(50):  # interleaved, so that a drift of the machine's load hits both alike
        for k, way in enumerate(SUM_METHODS):
            t0 = time.perf_counter()
            if way == "allreduce":
                dist.all_reduce(t)
            else:
                _exchange(t, async_op=False)
            if i >= 10:
                seconds[k].append(time.perf_counter() - t0)
    means = torch.tensor([float(np.mean(s)) for s in seconds], dtype=torch.float64)
    dist.broadcast(means, src=0)  # rank 0's timings decide for every rank
    SUM_PROBE.update({f"{way}_ms": 1e3 * float(m) for way, m in zip(SUM_METHODS, means)})
    return SUM_METHODS[int(means[1] < means[0])]


class _SumOverRanks(torch.autograd.Function):
    """Sum over the ranks whose backward sums the incoming gradient (the adjoint of the sum)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:  # type: ignore[override]
        return sum_over_ranks(t)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return sum_over_ranks(grad)


def _mean_hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP refuses string annotations here
    """DDP communication hook: the gradient bucket's mean over the ranks, by :func:`sum_over_ranks`'s path."""
    n = dist.get_world_size()
    buf = bucket.buffer()
    if sum_method() == "allreduce":
        return dist.all_reduce(buf.div_(n), async_op=True).get_future().then(lambda f: f.value()[0])
    return _exchange(buf, async_op=True).then(lambda f: f.value().div_(n))


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    r"""BatchNorm whose training statistics are those of the global batch over all ranks.

    torch's :class:`~torch.nn.SyncBatchNorm` runs on GPUs only; this one runs on any
    device (the CPU with gloo included). Per channel it all-reduces, in one collective and
    in float64, the count, :math:`\sum x` and :math:`\sum x^2`: mean
    :math:`\mu = \sum x / n` and biased variance :math:`\sigma^2 = \sum x^2 / n - \mu^2`
    (float64 keeps the cancellation far below float32's precision), normalises
    :math:`(x - \mu)/\sqrt{\sigma^2 + \epsilon}\,\gamma + \beta` and updates the running
    statistics with the unbiased variance as :class:`~torch.nn.BatchNorm1d` does. The
    reductions are differentiable (their backward all-reduces the gradient), so the
    gradients equal those of one process on the global batch. Outside training or a
    process group it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        local = [x.sum(dims, dtype=torch.float64), (x * x).sum(dims, dtype=torch.float64), count]
        sums = _SumOverRanks.apply(torch.cat(local))  # one collective per layer and pass
        c = x.shape[1]
        n = sums[-1].detach()
        mean = sums[:c] / n
        var = (sums[c:2 * c] / n - mean * mean).clamp_min(0.0)
        y = (x - mean.to(x.dtype).reshape(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var.detach() * (n / max(float(n) - 1.0, 1.0))
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        return y


def convert_sync_batchnorm(model: nn.Module, device: str | torch.device = "cpu") -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every BatchNorm inside ``model`` by a synchronised one, in place.

    On CUDA torch's :class:`~torch.nn.SyncBatchNorm`, elsewhere :class:`SyncBatchNorm`;
    the new layers share the old ones' parameters and buffers (updated in place). Returns
    the replacements for :func:`revert_sync_batchnorm`. No-op in one process.
    """
    if not is_distributed():
        return []
    cuda = torch.device(device).type == "cuda"
    done: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.modules.batchnorm._BatchNorm) or isinstance(
                    child, (nn.SyncBatchNorm, SyncBatchNorm)):
                continue
            cls = nn.SyncBatchNorm if cuda else SyncBatchNorm
            new = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            parent.add_module(name, new)
            done.append((parent, name, child))
    return done


def revert_sync_batchnorm(replaced: Sequence[tuple[nn.Module, str, nn.Module]]) -> None:
    """Put back the BatchNorm layers :func:`convert_sync_batchnorm` replaced (their state is current)."""
    for parent, name, child in replaced:
        new = getattr(parent, name)
        child.train(new.training)
        parent.add_module(name, child)


def wrap(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` inside :class:`~torch.nn.parallel.DistributedDataParallel` (itself in one process).

    DDP broadcasts rank 0's parameters and buffers at construction, so every rank starts
    from the same weights; its backward averages the gradients over the ranks. Buffers
    are broadcast again before every forward pass only where some are not those of a
    synchronised BatchNorm (whose running statistics stay equal on every rank).
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    dev = torch.device(device)
    ids = [dev] if dev.type == "cuda" else None
    # buffers of synchronised BatchNorm are equal on every rank already; others are broadcast from rank 0
    synced = (SyncBatchNorm, nn.SyncBatchNorm)
    other = any(True for m in model.modules() if not isinstance(m, synced) for _ in m.buffers(recurse=False))
    import inspect

    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # torch >= 2.13
    sync = {"forward_sync_buffers" if newer else "broadcast_buffers": other}
    net = DistributedDataParallel(model, device_ids=ids, **sync)
    if dev.type != "cuda":
        net.register_comm_hook(None, _mean_hook)
    return net
