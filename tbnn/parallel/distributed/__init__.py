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

from tbnn.parallel.distributed.group import (
    DEFAULT_TIMEOUT_S,
    DistributedFailure,
    all_max,
    all_sum,
    barrier,
    broadcast_check,
    check_all,
    check_batch,
    device_for,
    gather_arrays,
    is_distributed,
    is_main,
    launched,
    local_rank,
    merge_ranks,
    rank,
    seed_epoch,
    shard_batches,
    shard_data,
    shard_items,
    shard_range,
    timeout_seconds,
    world_size,
)
from tbnn.parallel.distributed.launch import failure_message, ignore_sigterm, setup, shutdown
from tbnn.parallel.distributed.sync import (
    SUM_METHODS,
    SUM_PROBE,
    SyncBatchNorm,
    convert_sync_batchnorm,
    requested_sum_method,
    revert_sync_batchnorm,
    sum_method,
    sum_over_ranks,
    wrap,
)

__all__ = ["DEFAULT_TIMEOUT_S", "DistributedFailure", "SUM_METHODS", "SUM_PROBE", "SyncBatchNorm", "all_max", "all_sum", "barrier", "broadcast_check", "check_all", "check_batch", "convert_sync_batchnorm", "device_for", "failure_message", "gather_arrays", "ignore_sigterm", "is_distributed", "is_main", "launched", "local_rank", "merge_ranks", "rank", "revert_sync_batchnorm", "seed_epoch", "setup", "shard_batches", "shard_data", "shard_items", "shard_range", "requested_sum_method", "shutdown", "sum_method", "sum_over_ranks", "timeout_seconds", "world_size", "wrap"]
