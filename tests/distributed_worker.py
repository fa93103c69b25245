"""Worker for tests/test_distributed.py and benchmarks/bench_distributed.py, run alone or under torchrun.

``python distributed_worker.py steps OUT.json BATCH``: times 60 training steps (the first 10
not counted) of the mnist1d TBN CNN at global batch ``BATCH`` with the same machinery, and
how many sums over the ranks each step makes and how long they wait (rank 0 writes).

``python distributed_worker.py grad OUT.npz [model]``: one training step of a BatchNorm
network on a fixed global batch with the machinery of :func:`tbnn.fit` (process group,
synchronised BatchNorm, DDP, per-rank batch parts); rank 0 writes the gradients, the loss
and the BatchNorm running statistics to ``OUT.npz``. One process computes the reference.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from tbnn.parallel import distributed as ddp
from tbnn.nn.models import ModelConfig, build_model
from tbnn.io.userdata import as_training_data


def grad_step(out: str, model: str = "tbn") -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(model=model, arch="cnn", in_features=40, n_classes=10, layers=2, channels=8, timesteps=4)
    net = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 40, generator=g), torch.randint(0, 10, (64,), generator=g)
    ddp.setup("cpu")
    ddp.check_batch(32)
    synced = ddp.convert_sync_batchnorm(net, "cpu")
    wrapped = ddp.wrap(net, "cpu")
    net.train()
    gen = torch.Generator().manual_seed(0)
    xb, yb, weight = next(iter(ddp.shard_batches(as_training_data((x, y)), 32, gen)))
    loss = F.cross_entropy(wrapped(xb), yb)
    (loss * weight).backward()
    ddp.revert_sync_batchnorm(synced)
    del wrapped  # before the process group goes
    (total,) = ddp.all_sum(float(loss.detach()) * len(yb))
    if ddp.is_main():
        arrays = {f"grad/{k}": p.grad.numpy() for k, p in net.named_parameters() if p.grad is not None}
        arrays.update({f"buf/{k}": b.numpy() for k, b in net.named_buffers()})
        arrays["loss"] = np.array(total / 32)
        arrays["batch_part"] = np.array(len(yb))
        arrays["sum_method"] = np.array(ddp.sum_method() if ddp.is_distributed() else "")
        np.savez(out, **arrays)
    ddp.shutdown(wait=True)


def train_run(out: str, interrupt: str = "", resume: str = "") -> None:
    """``tbnn.train`` of a small TBN; ``interrupt="E,B"`` stops every rank at epoch E, batch B."""
    from tbnn.train.trainer import train

    cut = tuple(int(v) for v in interrupt.split(",")) if interrupt else None
    try:
        train("digits", "tbn", out, epochs=4, batch=32, n_train=240, n_test=80, hidden=32, seed=3,
              progress=False, resume=bool(resume), _interrupt_at=cut)
    except KeyboardInterrupt:
        pass
    ddp.shutdown(wait=True)


def time_steps(out: str, batch: str) -> None:
    import json
    import time

    from tbnn.io.datasets import load_dataset

    ddp.setup("cpu")
    waits: list[float] = []
    inner = ddp.sum_over_ranks

    def counted(t: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        res = inner(t)
        waits.append(time.perf_counter() - t0)
        return res

    ddp.sum_over_ranks = counted  # the BatchNorm sums (forward and backward); DDP's own is asynchronous
    torch.manual_seed(0)
    ds = load_dataset("mnist1d")
    cfg = ModelConfig(model="tbn", arch="cnn", in_features=ds.x_train.shape[1], n_classes=10)
    net = build_model(cfg)
    ddp.convert_sync_batchnorm(net, "cpu")
    wrapped = ddp.wrap(net, "cpu")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    data = as_training_data((ds.x_train, ds.y_train))
    gen = torch.Generator().manual_seed(0)
    seconds: list[float] = []
    phases: list[tuple[float, float, float]] = []
    while len(seconds) < 60:
        for xb, yb, weight in ddp.shard_batches(data, int(batch), gen):
            t0 = time.perf_counter()
            loss = F.cross_entropy(wrapped(xb), yb) * weight
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            seconds.append(time.perf_counter() - t0)
            phases.append((t1 - t0, t2 - t1, seconds[-1] - (t2 - t0)))
            if len(seconds) == 10:
                waits.clear()
            if len(seconds) == 60:
                break
    if ddp.is_main():
        steps = seconds[10:]
        json.dump({"step_seconds": float(np.median(steps)), "sums_per_step": len(waits) / len(steps),
                   "sum_seconds": float(np.median(waits)) if waits else 0.0,
                   "sum_seconds_mean": float(np.mean(waits)) if waits else 0.0,
                   "forward_backward_update": np.median(np.array(phases[10:]), axis=0).tolist(),
                   "sum_method": ddp.sum_method() if ddp.is_distributed() else None,
                   "sum_probe_ms": dict(ddp.SUM_PROBE)}, open(out, "w"))
    del wrapped
    ddp.shutdown(wait=True)


if __name__ == "__main__":
    if sys.argv[1] == "grad":
        grad_step(sys.argv[2], *sys.argv[3:])
    elif sys.argv[1] == "steps":
        time_steps(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "train":
        train_run(sys.argv[2], *sys.argv[3:])
    else:
        raise SystemExit(f"unknown job {sys.argv[1]!r}")
