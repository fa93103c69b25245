"""The process group as tbnn sees it: ranks, collective checks that fail on every rank alike,
sharding of data and batches, reductions and gathers of results."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from tbnn.core.deprecation import deprecated
from tbnn.io.userdata import TrainingData

__all__ = ["DEFAULT_TIMEOUT_S", "DistributedFailure", "launched", "is_distributed", "world_size", "rank", "local_rank", "is_main", "timeout_seconds", "device_for", "barrier", "broadcast_check", "check_all", "check_batch", "seed_epoch", "shard_range", "shard_batches", "shard_data", "all_sum", "all_max", "shard_items", "gather_arrays", "merge_ranks"]


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


@deprecated("tbnn.parallel.distributed.shard_data", "tbnn.parallel.distributed.shard_range (or shard_batches)")
def shard_data(data: TrainingData) -> tuple[TrainingData, bool]:
    """This rank's contiguous part of evaluation data, and whether it was split.

    Array data and a ``Dataset`` are split with :func:`shard_range` (sum the per-rank
    results with :func:`all_sum`); a ``DataLoader`` is kept whole on every rank (its own
    sampler decides). In one process: ``(data, False)``. Unused in tbnn: evaluation runs whole
    on every rank.
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
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=comm_device())
    dist.all_reduce(t)
    return t.tolist()


def comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_max(*values: float) -> list[float]:
    """Maximum of numbers over the ranks (float64); the numbers themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=comm_device())
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
    dev = comm_device()
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
