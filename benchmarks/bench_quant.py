"""Benchmark: forward + backward time of ``fake_quantize`` (DAT, STE) against LayerNorm.

Prints one table: for each shape, milliseconds per forward+backward of
``tbnn.quant.fake_quantize`` with the denoising affine transform (``dat``), with the
straight-through baseline (``ste``), and of ``torch.nn.functional.layer_norm`` over the
last axis of the same tensor, with the ratios to LayerNorm. Target (issue): DAT within
about 2x of LayerNorm.

    python benchmarks/bench_quant.py            # [256, 1024] and [4096, 1024], block 128
    python benchmarks/bench_quant.py --quick    # one tiny shape (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tbnn.quant import fake_quantize


def time_fwd_bwd(fn, x: torch.Tensor, grad: torch.Tensor, min_time: float, warmup: int = 3) -> float:
    """Median milliseconds of ``fn(x).backward(grad)`` over repeats lasting ``min_time`` s."""
    for _ in range(warmup):
        x.grad = None
        fn(x).backward(grad)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        x.grad = None
        t0 = time.perf_counter()
        fn(x).backward(grad)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run(shapes, bits_list, block: int, min_time: float) -> list[dict]:
    rows = []
    for shape in shapes:
        torch.manual_seed(0)
        x = torch.randn(*shape, requires_grad=True)
        grad = torch.randn(*shape)
        ln = time_fwd_bwd(lambda t: F.layer_norm(t, t.shape[-1:]), x, grad, min_time)
        for bits in bits_list:
            row = dict(shape="x".join(map(str, shape)), bits=bits, layernorm=ln)
            for method in ("dat", "ste"):
                row[method] = time_fwd_bwd(
                    lambda t, m=method: fake_quantize(t, bits=bits, method=m, block=block),
                    x, grad, min_time)
            rows.append(row)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tiny shape, short timing (smoke test)")
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        shapes, bits_list, min_time = [(8, 256)], [1], 0.02
    else:
        shapes, bits_list, min_time = [(256, 1024), (4096, 1024)], [1, 4], 1.0
    rows = run(shapes, bits_list, args.block, min_time)
    print(f"fake_quantize forward+backward, block {args.block}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (median ms)")
    head = f"{'shape':>10} {'bits':>4} {'layernorm':>10} {'dat':>9} {'ste':>9} {'dat/LN':>7} {'ste/LN':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['shape']:>10} {r['bits']:>4} {r['layernorm']:>10.3f} {r['dat']:>9.3f} {r['ste']:>9.3f} "
              f"{r['dat'] / r['layernorm']:>7.2f} {r['ste'] / r['layernorm']:>7.2f}")


if __name__ == "__main__":
    main()
