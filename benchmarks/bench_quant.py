"""Benchmark: forward + backward time of ``fake_quantize`` (DAT, STE) against LayerNorm.

Prints the CPU (model, AVX2 / AVX-512 / BF16 / AMX) and one table: for each shape,
milliseconds per forward+backward of ``torch.nn.functional.layer_norm`` over the whole
last axis (``LN``) and over the same 128-element blocks the quantizer uses (``LN128``,
the anchor of the issue's target), of ``tbnn.core.quant.fake_quantize`` with the denoising
affine transform (``dat``, default path) and with the straight-through baseline (``ste``),
with the ratios; ``--compile`` adds the ``torch.compile`` path (``dat-c``, opt-in,
``TBNN_COMPILE=1``) and prints its one-off compilation time. All candidates run
round-robin in the same process (a busy machine slows all alike); each figure is the best
of the repeats. Target (issue): ``dat / LN128 <= 2``.

    python benchmarks/bench_quant.py             # [256, 1024] and [4096, 1024], block 128
    python benchmarks/bench_quant.py --compile   # with the torch.compile path
    python benchmarks/bench_quant.py --cpu-time  # thread CPU time (robust on a loaded machine)
    python benchmarks/bench_quant.py --quick     # one tiny shape (smoke test)
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from tbnn.runtime.machine import describe_allocator, describe_cpu, tune_allocator
from tbnn.runtime.threads import add_threads_option, set_threads
from tbnn.core.quant import fake_quantize


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(fns: dict, x: torch.Tensor, grad: torch.Tensor, min_time: float, warmup: int = 3,
                 clock=time.perf_counter) -> dict:
    """Milliseconds of ``fn(x).backward(grad)`` for each ``fn`` of ``fns``: the best of repeats.

    The candidates run round-robin for at least ``min_time`` seconds, so that a busy machine
    slows all of them alike; the minimum is the least disturbed estimate of each. ``clock``:
    wall time (default) or e.g. :func:`time.thread_time` (CPU time of this thread, which a
    descheduling on a shared machine does not inflate).
    """
    dev = x.device
    for fn in fns.values():
        for _ in range(warmup):
            x.grad = None
            fn(x).backward(grad)
    _sync(dev)
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times[next(iter(fns))]) < 5:
        for k, fn in fns.items():
            x.grad = None
            t0 = clock()
            fn(x).backward(grad)
            _sync(dev)
            times[k].append(clock() - t0)
    return {k: 1e3 * min(v) for k, v in times.items()}


def run(shapes, bits_list, block: int, min_time: float, compile: bool = False,
        device: str = "cpu", clock=time.perf_counter) -> tuple[list[dict], dict]:
    """Rows of the table, and the compilation seconds of each ``dat-c`` candidate."""
    rows, compile_s = [], {}
    dev = torch.device(device)
    for shape in shapes:
        torch.manual_seed(0)
        x = torch.randn(*shape, device=dev, requires_grad=True)
        grad = torch.randn(*shape, device=dev)
        fns = {"LN": lambda t: F.layer_norm(t, t.shape[-1:]),
               # LayerNorm over the quantizer's blocks: normalise each 128-element block
               "LN128": lambda t: F.layer_norm(t.reshape(*t.shape[:-1], -1, block), (block,)).reshape(t.shape)}
        for bits in bits_list:
            for method in ("dat", "ste"):
                fns[f"{method}{bits}"] = (
                    lambda t, m=method, b=bits: fake_quantize(t, bits=b, method=m, block=block, compile=False))
            if compile:
                fn = (lambda t, b=bits: fake_quantize(t, bits=b, method="dat", block=block, compile=True))
                t0 = time.perf_counter()
                fn(x).backward(grad)  # the one-off compilation, outside the timing
                _sync(dev)
                compile_s[f"{'x'.join(map(str, shape))} {bits}"] = time.perf_counter() - t0
                fns[f"datc{bits}"] = fn
        ms = time_fwd_bwd(fns, x, grad, min_time, clock=clock)
        for bits in bits_list:
            rows.append({"shape": "x".join(map(str, shape)), "bits": bits, "ln": ms["LN"], "ln128": ms["LN128"],
                         "dat": ms[f"dat{bits}"], "ste": ms[f"ste{bits}"], "datc": ms.get(f"datc{bits}")})
    return rows, compile_s


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tiny shape, short timing (smoke test)")
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--compile", action="store_true",
                   help="add the torch.compile path (dat-c; compiles once per shape, ~15-60 s each)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the thread's CPU time instead of the wall clock (on a shared, loaded "
                        "machine a descheduled run inflates the wall time only; CPU device, 1 thread)")
    add_threads_option(p)
    args = p.parse_args(argv)
    set_threads(p, args.threads)
    tuned = tune_allocator()  # as the tbnn command does; for every candidate alike
    if args.quick:
        shapes, bits_list, min_time = [(8, 256)], [1], 0.02
    else:
        shapes, bits_list, min_time = [(256, 1024), (4096, 1024)], [1, 4], 3.0
    clock = time.thread_time if args.cpu_time else time.perf_counter
    rows, compile_s = run(shapes, bits_list, args.block, min_time, args.compile, args.device, clock)
    print(describe_cpu())
    print(describe_allocator(tuned) + ", every candidate alike")
    print(f"fake_quantize forward+backward, block {args.block}, torch {torch.__version__}, "
          f"device {args.device}, {torch.get_num_threads()} threads; ms of "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}, best of interleaved repeats")
    cols = ["shape", "bits", "LN", "LN128", "dat", "ste", "dat/LN128", "dat/LN", "ste/LN128"]
    if args.compile:
        cols += ["dat-c", "dat-c/LN128"]
    table = []
    for r in rows:
        line = [r["shape"], str(r["bits"]), f"{r['ln']:.3f}", f"{r['ln128']:.3f}", f"{r['dat']:.3f}",
                f"{r['ste']:.3f}", f"{r['dat'] / r['ln128']:.2f}", f"{r['dat'] / r['ln']:.2f}",
                f"{r['ste'] / r['ln128']:.2f}"]
        if args.compile:
            line += [f"{r['datc']:.3f}", f"{r['datc'] / r['ln128']:.2f}"]
        table.append(line)
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(v.rjust(w) for v, w in zip(t, widths)))
    one_bit = [r for r in rows if r["bits"] == 1]
    print("DAT vs LayerNorm (1 bit, target dat/LN128 <= 2): "
          + "; ".join(f"{r['shape']} {r['dat'] / r['ln128']:.2f}x "
                      f"({'met' if r['dat'] <= 2 * r['ln128'] else 'missed'})" for r in one_bit))
    for key, sec in compile_s.items():
        print(f"torch.compile, shape {key.split()[0]} bits {key.split()[1]}: {sec:.1f} s to compile (once)")


if __name__ == "__main__":
    main()
