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
import time

import torch
import torch.nn.functional as F

from tbnn.quant import fake_quantize


def time_fwd_bwd(fns: dict, x: torch.Tensor, grad: torch.Tensor, min_time: float, warmup: int = 3) -> dict:
    """Milliseconds of ``fn(x).backward(grad)`` for each ``fn`` of ``fns``: the best of repeats.

    The candidates run round-robin for at least ``min_time`` seconds, so that a busy machine
    slows all of them alike; the minimum is the least disturbed estimate of each.
    """
    for fn in fns.values():
        for _ in range(warmup):
            x.grad = None
            fn(x).backward(grad)
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times[next(iter(fns))]) < 5:
        for k, fn in fns.items():
            x.grad = None
            t0 = time.perf_counter()
            fn(x).backward(grad)
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v) for k, v in times.items()}


def run(shapes, bits_list, block: int, min_time: float) -> list[dict]:
    rows = []
    for shape in shapes:
        torch.manual_seed(0)
        x = torch.randn(*shape, requires_grad=True)
        grad = torch.randn(*shape)
        fns = {"layernorm": lambda t: F.layer_norm(t, t.shape[-1:])}
        for bits in bits_list:
            for method in ("dat", "ste"):
                fns[f"{method}{bits}"] = (
                    lambda t, m=method, b=bits: fake_quantize(t, bits=b, method=m, block=block))
        ms = time_fwd_bwd(fns, x, grad, min_time)
        for bits in bits_list:
            rows.append(dict(shape="x".join(map(str, shape)), bits=bits, layernorm=ms["layernorm"],
                             dat=ms[f"dat{bits}"], ste=ms[f"ste{bits}"]))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tiny shape, short timing (smoke test)")
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a small shared machine a second OpenMP thread "
                        "that gets descheduled stalls every op; 0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        shapes, bits_list, min_time = [(8, 256)], [1], 0.02
    else:
        shapes, bits_list, min_time = [(256, 1024), (4096, 1024)], [1, 4], 3.0
    rows = run(shapes, bits_list, args.block, min_time)
    print(f"fake_quantize forward+backward, block {args.block}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (best of repeats, ms)")
    head = f"{'shape':>10} {'bits':>4} {'layernorm':>10} {'dat':>9} {'ste':>9} {'dat/LN':>7} {'ste/LN':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['shape']:>10} {r['bits']:>4} {r['layernorm']:>10.3f} {r['dat']:>9.3f} {r['ste']:>9.3f} "
              f"{r['dat'] / r['layernorm']:>7.2f} {r['ste'] / r['layernorm']:>7.2f}")


if __name__ == "__main__":
    main()
