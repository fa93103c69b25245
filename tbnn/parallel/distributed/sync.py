"""Gradients and BatchNorm statistics summed over ranks: ``sum_over_ranks`` (its method chosen
once per job), ``SyncBatchNorm`` and ``wrap`` (DistributedDataParallel with a mean hook)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from tbnn.parallel.distributed.group import comm_device, is_distributed

__all__ = ["sum_over_ranks", "SUM_METHODS", "SUM_PROBE", "sum_method", "requested_sum_method", "SyncBatchNorm", "convert_sync_batchnorm", "revert_sync_batchnorm", "wrap"]


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

    t = torch.zeros(1024, device=comm_device())
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
