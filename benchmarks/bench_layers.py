"""Benchmark: one spiking layer, forward + backward, tbnn against snnTorch, SpikingJelly and a floor.

Each candidate maps a spike train of ``T`` steps, ``batch`` samples and ``F`` features
through an ``F -> F`` linear layer and a spiking neuron, then back-propagates a random
cotangent to the weights and the input:

* ``floor``: the time-folded float layer, ``relu(nn.Linear(x))`` on ``[T*B, F]`` (the cost of
  one dense matmul over every step: what any per-step simulator must at least pay);
* ``tbnn``: ``TBLinear`` (1-bit DAT weights, default ``fused`` mode) + ``TemporalBinary``
  (DAT read-out) on a :class:`tbnn.core.coding.SpikeCode` input, read out at the end; the binary
  code up to ``T = 24`` (a ``T``-step binary neuron carries ``2^T`` levels, float32 codes),
  the sigma-delta (rate) code beyond;
* ``tbnn-folded``: the same in ``folded`` mode (one matmul on ``[T*B, F]``);
* ``snntorch``: ``nn.Linear`` + ``snntorch.Leaky`` looped over ``T`` (the usual snnTorch way);
* ``spikingjelly``: ``layer.Linear`` + multi-step ``neuron.LIFNode``, if
  SpikingJelly is installed.

Times are the best of round-robin repeats (other processes slow all candidates alike).
A second table times whole training epochs (``tbnn.train.train``, the default recipe: batch
64, AdamW) of the TBN against the float network of the same shape, on the digits MLP and
the mnist1d CNN: seconds per epoch (training only, the best epoch after the first of each
run, runs interleaved) and their ratio. Target (issue): TBN epoch <= 1.5x the float one.
The CPU (model, AVX2 / AVX-512 / BF16 / AMX) is printed first.
Peak memory (MB) is the peak of the tensor memory allocated during one step after a warm-up
step (``torch.profiler`` memory events): activations, temporaries and fresh gradients. Targets (issue): tbnn within 1.3x of the floor and faster than
snnTorch at every T.

    python benchmarks/bench_layers.py             # F in 1024, 256; T in 4, 16, 64; batch 16
    python benchmarks/bench_layers.py --quick     # one tiny size (smoke test)
    python benchmarks/bench_layers.py --no-memory # skip the per-process memory measurement
    python benchmarks/bench_layers.py --no-epochs # skip the training-epoch table
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from tbnn.runtime.threads import add_threads_option, set_threads

CANDIDATES = ("floor", "tbnn", "tbnn-folded", "snntorch", "spikingjelly")


def spikingjelly_available() -> bool:
    try:
        import spikingjelly.activation_based  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
    return True


def tbnn_scheme(timesteps: int) -> str:
    """The binary code (T bits) up to T = 24, the sigma-delta (rate) code beyond."""
    return "binary" if timesteps <= 24 else "sigma_delta"


def make_step(name: str, features: int, timesteps: int, batch: int, seed: int = 0):
    """A closure running one forward + backward of candidate ``name``."""
    torch.manual_seed(seed)
    T, B, F = timesteps, batch, features
    if name == "floor":
        fc = nn.Linear(F, F)
        x = torch.rand(T * B, F).round().requires_grad_(True)
        r = torch.randn(T * B, F)

        def step():
            (torch.relu(fc(x)) * r).sum().backward()

    elif name in ("tbnn", "tbnn-folded"):
        from dataclasses import replace

        from tbnn.core.coding import encode
        from tbnn.nn.layers import TBLinear
        from tbnn.nn.neurons import TemporalBinary

        lin = TBLinear(F, F, evaluation="folded" if name == "tbnn-folded" else "fused")
        scheme = tbnn_scheme(T)
        neuron = TemporalBinary(T, scheme=scheme)
        with torch.no_grad():
            code = encode(torch.randn(B, F), T, scheme, grid="minmax")
        # the input spike train with leaf tensors, so that its gradient is computed as well
        code = replace(code, q=code.q.clone().requires_grad_(True),
                       gain=code.gain.clone().requires_grad_(True),
                       offset=code.offset.clone().requires_grad_(True))
        r = torch.randn(B, F)

        def step():
            (neuron(lin(code)).decode() * r).sum().backward()

    elif name == "snntorch":
        import snntorch as snn

        fc = nn.Linear(F, F)
        lif = snn.Leaky(beta=0.9)
        x = torch.rand(T, B, F).round().requires_grad_(True)
        r = torch.randn(T, B, F)

        def step():
            mem = lif.init_leaky()
            out = []
            for t in range(T):
                spk, mem = lif(fc(x[t]), mem)
                out.append(spk)
            (torch.stack(out) * r).sum().backward()

    elif name == "spikingjelly":
        from spikingjelly.activation_based import functional, layer, neuron

        fc = layer.Linear(F, F, step_mode="m")
        lif = neuron.LIFNode(step_mode="m")
        x = torch.rand(T, B, F).round().requires_grad_(True)
        r = torch.randn(T, B, F)

        def step():
            functional.reset_net(lif)
            (lif(fc(x)) * r).sum().backward()

    else:
        raise ValueError(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}.")
    return step


def time_steps(steps: dict, min_time: float, warmup: int = 2) -> dict:
    """Best-of-repeats milliseconds per step, candidates interleaved round-robin."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in steps}
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or min(len(v) for v in times.values()) < 3:
        for k, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v) for k, v in times.items()}


def peak_mb(name: str, features: int, timesteps: int, batch: int) -> float:
    """Peak tensor memory (MiB) allocated during one step of ``name``, after a warm-up step.

    Read from ``torch.profiler`` with ``profile_memory=True``: the allocator reports every
    allocation and free with its running total; the peak of that total over the step is the
    memory the step needs beyond the model, its input and its gradient buffers.
    """
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    step = make_step(name, features, timesteps, batch)
    step()  # gradient buffers and caches exist from here on
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    mem = sorted((e for e in events if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0),
                 key=lambda e: e["ts"])
    if not mem:
        return 0.0
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return max(0, max(e["args"]["Total Allocated"] for e in mem) - start) / 2**20


EPOCH_CASES = (("digits", "mlp"), ("mnist1d", "cnn"))


def epoch_seconds(dataset: str, arch: str, epochs: int, rounds: int, n_train: int | None = None) -> dict:
    """Best training seconds per epoch of the ``tbn`` and ``float`` models (interleaved runs).

    Each run trains ``epochs`` epochs from scratch; its first epoch (warm-up) is dropped
    unless it is the only one.
    """
    from tbnn.train.trainer import train

    best = {"tbn": float("inf"), "float": float("inf")}
    for _ in range(rounds):
        for model in ("tbn", "float"):
            m = train(dataset, model, None, epochs=epochs, progress=False, arch=arch, n_train=n_train,
                      n_test=64 if n_train else None)
            secs = [h["seconds"] for h in m["history"]]
            best[model] = min(best[model], *(secs[1:] or secs))
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tiny size, short timing (smoke test)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    p.add_argument("--no-epochs", action="store_true", help="skip the training-epoch table")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training run (default 3)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved training runs per model (default 2)")
    add_threads_option(p)
    args = p.parse_args(argv)
    set_threads(p, args.threads)
    if args.quick:
        sizes, steps_list, batch, min_time, memory = [64], [4], 4, 0.05, not args.no_memory
    else:
        sizes, steps_list, batch, min_time, memory = [1024, 256], [4, 16, 64], 16, 2.0, not args.no_memory
    from tbnn.runtime.machine import describe_allocator, describe_cpu, tune_allocator

    print(describe_cpu())
    print(describe_allocator(tune_allocator()) + ", every model alike")
    have_sj = spikingjelly_available()
    names = [n for n in CANDIDATES if n != "spikingjelly" or have_sj]
    print(f"one F->F layer + spiking neuron, forward+backward, batch {batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; ms = best of repeats; x = ratio to the floor")
    if not have_sj:
        print("spikingjelly: not installed")
    cols = ["F", "T", "tbnn code"] + [f"{n} ms (x)" for n in names]
    if memory:
        cols += [f"{n} MB" for n in names]
    rows = []
    for features in sizes:
        for T in steps_list:
            ms = time_steps({n: make_step(n, features, T, batch) for n in names}, min_time)
            row = [str(features), str(T), tbnn_scheme(T)]
            row += [f"{ms[n]:.2f} ({ms[n] / ms['floor']:.2f})" for n in names]
            if memory:
                for n in names:
                    row.append(f"{peak_mb(n, features, T, batch):.2f}")
            rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    if not args.no_epochs:
        cases = [("digits", "mlp")] if args.quick else list(EPOCH_CASES)
        epochs, rounds = (2, 1) if args.quick else (args.epochs, args.rounds)
        n_train = 128 if args.quick else None
        print(f"\ntraining epoch, TBN against the float network (batch 64, AdamW; best epoch of {rounds} "
              f"interleaved runs of {epochs} epochs{', 128 training samples' if n_train else ''}; s)")
        ecols = ["dataset", "arch", "tbn s", "float s", "tbn/float"]
        erows = []
        for dataset, arch in cases:
            sec = epoch_seconds(dataset, arch, epochs, rounds, n_train)
            erows.append([dataset, arch, f"{sec['tbn']:.3f}", f"{sec['float']:.3f}",
                          f"{sec['tbn'] / sec['float']:.2f}"])
        ew = [max(len(c), *(len(r[i]) for r in erows)) for i, c in enumerate(ecols)]
        print("  ".join(c.rjust(w) for c, w in zip(ecols, ew)))
        print("  ".join("-" * w for w in ew))
        for r in erows:
            print("  ".join(v.rjust(w) for v, w in zip(r, ew)))
        print("training epoch target (tbn/float <= 1.5): " + "; ".join(
            f"{r[0]} {r[1]} {r[4]}x ({'met' if float(r[4]) <= 1.5 else 'missed'})" for r in erows))


if __name__ == "__main__":
    main()
