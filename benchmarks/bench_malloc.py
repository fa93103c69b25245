"""Page faults of the simulator in a fresh process, with glibc's malloc at its defaults and tuned.

PyTorch's CPU tensors come from ``malloc``; with glibc's defaults a megabyte-sized
temporary may be mapped afresh, and page-faulted as it is written, every time it is made,
depending on what the process did before. :func:`tbnn.runtime.machine.tune_allocator` (which the
``tbnn`` command applies) keeps freed memory for reuse. Each case runs in its own fresh
process, like a ``tbnn simulate`` command: the digits TBN of ``bench_sim`` (trained once,
or taken from ``--cache``), 5 warm-up passes of the test split, then 20 timed passes per
engine; minor page faults and CPU time per pass, cases interleaved over ``--processes``
rounds, medians reported.

    python benchmarks/bench_malloc.py --cache /tmp/bsim     # ~1 min with a trained cache
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sim import _batches, _cpu_model, _load, _train_runs  # noqa: E402

CASES = ("defaults", "tuned")
ENGINES = ("tbn_step", "tbn_folded", "float")


def _child(cache: str, case: str) -> None:
    import torch

    from tbnn.runtime.machine import tune_allocator

    torch.set_num_threads(1)
    if case == "tuned" and not tune_allocator():
        print(json.dumps({"error": "not glibc"}))
        return
    runs = {p.name: p for p in Path(cache).iterdir() if (p / "metrics.json").exists()}
    _, ds, engines = _load(runs, [])
    xs = _batches(ds.x_test, 256)
    out = {}
    with torch.no_grad():
        for k in ENGINES:
            fn = engines[k]
            for _ in range(5):
                for xb in xs:
                    fn(xb)
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
            for _ in range(20):
                for xb in xs:
                    fn(xb)
            out[k] = {"faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20,
                      "cpu_ms": (time.process_time() - t0) / 20 * 1e3}
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=str, default=None, help="trained runs of bench_sim (else trained here)")
    p.add_argument("--processes", type=int, default=3, help="fresh processes per case (default 3)")
    p.add_argument("--epochs", type=int, default=15, help="training epochs when no cache is given")
    p.add_argument("--quick", action="store_true", help="a tiny training run and one process per case (smoke test)")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        _child(*args._child)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        _train_runs(cache, args.quick, 1 if args.quick else args.epochs, [])
        res: dict[str, dict[str, list]] = {c: {k: [] for k in ENGINES} for c in CASES}
        for _ in range(1 if args.quick else args.processes):
            for case in CASES:
                r = subprocess.run([sys.executable, __file__, "--_child", str(cache), case], capture_output=True,
                                   text=True, check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
                d = json.loads(r.stdout.strip().splitlines()[-1])
                if "error" in d:
                    print(f"tuned case skipped: {d['error']}")
                    return {}
                for k in ENGINES:
                    res[case][k].append(d[k])
    print(f"CPU: {_cpu_model()}; digits MLP test split (450 samples), batch 256, 1 thread; "
          f"{1 if args.quick else args.processes} fresh process(es) per case")
    print("| engine | malloc | minor page faults per pass (median, min-max) | CPU ms per pass (median, min-max) |")
    print("|---|---|---|---|")
    summary = {}
    for k in ENGINES:
        for case in CASES:
            f = [r["faults"] for r in res[case][k]]
            t = [r["cpu_ms"] for r in res[case][k]]
            summary[f"{k} {case}"] = {"faults": statistics.median(f), "cpu_ms": statistics.median(t)}
            print(f"| {k} | {case} | {statistics.median(f):,.0f} ({min(f):,.0f}-{max(f):,.0f}) | "
                  f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f}) |")
    return summary


if __name__ == "__main__":
    main()
