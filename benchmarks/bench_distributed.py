"""Data-parallel benchmark: ``torchrun`` with 2 ranks against 1 process (gloo, CPU).

Measured in one run and printed with the CPU's name (speed is measured, never asserted):

* **training speed-up**: training seconds per epoch (rank 0's wall time from the first
  batch to the end of the epoch's last step and the epoch's loss sum; start-up, data
  loading and the per-epoch evaluation excluded) of ``tbnn train --dataset mnist1d --model
  tbn --arch cnn --batch 128`` (the global batch), 1 process x 1 thread against
  ``torchrun --nproc-per-node 2`` x 1 thread each. Per job the median over its epochs after
  the first; the jobs alternate 1, 2, 1, 2, ... ``--repeats`` times, and the speed-up of
  each pair is reported (median, min, max);
* **gradient equivalence**: one step of a TBN CNN with BatchNorm, 2 ranks x 16 samples
  against 1 process x 32 (``tests/distributed_worker.py grad``): the relative error
  ``||g_2 - g_1|| / ||g_1||`` over all parameters;
* **where a step's time goes** (``tests/distributed_worker.py steps``): the median step of
  the same CNN at global batch 128 in 1 process; of two independent 1-process jobs at
  batch 64 run at once (the compute alone of 2 ranks: the speed-up's ceiling); and of 2
  ranks, with the number of sums over the ranks a step waits for (synchronised BatchNorm,
  forward and backward) and their median and mean wait;
* **simulation** (``--sim``): engine time and wall time of ``tbnn simulate`` on the mnist1d
  test split, 1 process against 2 ranks (no target).

    python benchmarks/bench_distributed.py                 # ~3-5 min on 2 idle cores
    python benchmarks/bench_distributed.py --quick         # digits, seconds; prints only

Every job runs with ``OMP_NUM_THREADS=1`` on loopback (127.0.0.1). On a machine shared with
other work the figures are noisy: rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown CPU"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def _launch(n: int) -> list[str]:
    if n == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
            "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]


def _job(cmd: list[str], timeout: float = 1800) -> None:
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"job failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-3000:]}")


def train_epoch_seconds(n: int, out: Path, dataset: str, epochs: int, extra: list[str]) -> float:
    """Median training seconds per epoch (epochs after the first) of one ``tbnn train`` job."""
    _job([*_launch(n), "-m", "tbnn", "train", "--dataset", dataset, "--model", "tbn", "--batch", "128",
          "--epochs", str(epochs), "--out", str(out), "--quiet", *extra])
    hist = json.loads((out / "metrics.json").read_text())["history"]
    secs = [h["seconds"] for h in hist]
    return statistics.median(secs[1:] if len(secs) > 1 else secs)


def _steps(cmd: list[str], out: Path) -> dict[str, Any]:
    _job([*cmd, str(WORKER), "steps", str(out), "128" if "--nproc-per-node" in cmd else out.stem.split("_")[-1]])
    return json.loads(out.read_text())


def step_breakdown(tmp: Path) -> dict[str, Any]:
    """Median step times: 1 process, the compute alone of 2 ranks, and 2 ranks with their waits."""
    one = _steps(_launch(1), tmp / "steps_128.json")
    procs = [subprocess.Popen([*_launch(1), str(WORKER), "steps", str(tmp / f"half{i}_64.json"), "64"],
                              env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise SystemExit(f"job failed: {p.stderr.read()[-3000:] if p.stderr else ''}")
    half = max(json.loads((tmp / f"half{i}_64.json").read_text())["step_seconds"] for i in range(2))
    two = _steps(_launch(2), tmp / "steps2.json")
    res = {"one_rank": one["step_seconds"], "compute_alone_two": half, "two_ranks": two["step_seconds"],
           "sums_per_step": two["sums_per_step"], "sum_median": two["sum_seconds"],
           "sum_mean": two["sum_seconds_mean"], "sum_method": two["sum_method"],
           "sum_probe_ms": two.get("sum_probe_ms", {})}
    print(f"\nwhere a step goes (mnist1d TBN CNN, global batch 128, median of 50 steps):")
    print(f"  1 process                             {1e3 * res['one_rank']:6.2f} ms")
    print(f"  2 processes at batch 64, no exchange  {1e3 * half:6.2f} ms  (compute alone: ceiling "
          f"{res['one_rank'] / half:.2f}x)")
    print(f"  2 ranks (sums by {res['sum_method']})          {1e3 * res['two_ranks']:6.2f} ms  "
          f"({res['one_rank'] / res['two_ranks']:.2f}x); {res['sums_per_step']:.0f} sums over the ranks per step, "
          f"waiting {1e3 * res['sum_median']:.2f} ms median, {1e3 * res['sum_mean']:.2f} ms mean")
    if res["sum_probe_ms"]:
        print("  start-up probe, mean ms per sum of 4 KiB: " + ", ".join(
            f"{k.removesuffix('_ms')} {v:.2f}" for k, v in res["sum_probe_ms"].items()))
    return res


def gradient_error(tmp: Path) -> float:
    _job([*_launch(1), str(WORKER), "grad", str(tmp / "g1.npz")])
    _job([*_launch(2), str(WORKER), "grad", str(tmp / "g2.npz")])
    a, b = np.load(tmp / "g1.npz"), np.load(tmp / "g2.npz")
    keys = sorted(k for k in a.files if k.startswith("grad/"))
    g1 = np.concatenate([a[k].ravel() for k in keys]).astype(np.float64)
    g2 = np.concatenate([b[k].ravel() for k in keys]).astype(np.float64)
    return float(np.linalg.norm(g2 - g1) / np.linalg.norm(g1))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits MLP, 2 epochs, 1 repeat (a smoke run)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per training job (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="pairs of 1- and 2-rank jobs (default 3)")
    ap.add_argument("--sim", action="store_true", help="also time tbnn simulate (1 process vs 2 ranks)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        dataset, extra, epochs, repeats = "digits", ["--n-train", "512", "--hidden", "64"], 2, 1
    else:
        dataset, extra, epochs, repeats = "mnist1d", ["--arch", "cnn"], args.epochs, args.repeats
    cpu = cpu_name()
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; 1 thread per process (OMP_NUM_THREADS=1), gloo on 127.0.0.1")
    result: dict[str, Any] = {"cpu": cpu, "dataset": dataset, "global_batch": 128, "epochs": epochs}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        one, two = [], []
        for r in range(repeats):
            one.append(train_epoch_seconds(1, tmp / f"one{r}", dataset, epochs, extra))
            two.append(train_epoch_seconds(2, tmp / f"two{r}", dataset, epochs, extra))
        ups = [a / b for a, b in zip(one, two)]
        result.update(seconds_per_epoch_1=one, seconds_per_epoch_2=two, speedups=ups)
        what = "mnist1d TBN CNN" if not args.quick else "digits TBN MLP (quick)"
        print(f"\ntraining, {what}, global batch 128: seconds per epoch (median of epochs 2..{epochs}), "
              f"{repeats} repeat(s)")
        print(f"{'repeat':>6} {'1 rank s':>9} {'2 ranks s':>10} {'speed-up':>9}")
        for r, (a, b, u) in enumerate(zip(one, two, ups)):
            print(f"{r + 1:>6} {a:9.3f} {b:10.3f} {u:8.2f}x")
        print(f"speed-up 2 ranks / 1 rank: median {statistics.median(ups):.2f}x (min {min(ups):.2f}x, "
              f"max {max(ups):.2f}x; target >= 1.5x)")
        if not args.quick:
            result["step_breakdown"] = step_breakdown(tmp)
        err = gradient_error(tmp)
        result["gradient_relative_error"] = err
        print(f"\ngradient equivalence (TBN CNN with BatchNorm, one step): 2 ranks x 16 vs 1 x 32 samples: "
              f"||g2 - g1|| / ||g1|| = {err:.2e} (target <= 1e-5)")
        if args.sim:
            result["simulation"] = simulation_speedup(tmp, dataset, extra, args.quick)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


def simulation_speedup(tmp: Path, dataset: str, extra: list[str], quick: bool) -> dict[str, Any]:
    """Engine time and wall time of ``tbnn simulate`` on the test split: 1 process against 2 ranks."""
    import time

    run = tmp / "one0"
    out: dict[str, Any] = {}
    for n in (1, 2):
        sim = tmp / f"sim{n}"
        t0 = time.perf_counter()
        _job([*_launch(n), "-m", "tbnn", "simulate", str(run), "--out", str(sim), "--quiet"])
        wall = time.perf_counter() - t0
        summary = json.loads((sim / "simulation.json").read_text())
        # engine time: the slowest rank's (the job's); wall: the whole command, start-up included
        out[str(n)] = {"wall_seconds": wall, "engine_seconds": summary["engine_seconds"]}
    e1, e2 = out["1"]["engine_seconds"], out["2"]["engine_seconds"]
    print(f"\nsimulation of the {dataset} test split (step mode): wall {out['1']['wall_seconds']:.1f} s -> "
          f"{out['2']['wall_seconds']:.1f} s ({out['1']['wall_seconds'] / out['2']['wall_seconds']:.2f}x, "
          f"start-up included)" + (f"; engine {e1:.2f} s -> {e2:.2f} s ({e1 / e2:.2f}x)" if e1 and e2 else ""))
    return out


if __name__ == "__main__":
    main()
