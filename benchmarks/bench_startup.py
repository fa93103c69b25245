"""Benchmark: how fast the command line starts, against a bare ``import torch``.

Trains a small digits run once (1 epoch, in a temporary folder; the dataset cache of
:mod:`tbnn.io.cache` is warmed by it), then times, interleaved and repeated, fresh
interpreters running

* ``python -c "import torch"`` (the floor every torch program pays),
* ``python -m tbnn --help``,
* ``python -m tbnn simulate RUN --out SIM`` on the digits test split (450 samples),

and prints the median wall time of each and of ``simulate`` minus ``import torch``
(target, issue: <= 1.5 s), with the heavy packages each command imported. The CPU is
printed first.

    python benchmarks/bench_startup.py            # 5 repeats
    python benchmarks/bench_startup.py --quick    # 1 repeat (smoke test)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tbnn.runtime.machine import describe_cpu

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "pandas", "snntorch", "elephant", "mnist1d")


def _env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def _timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=_env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _heavy_imports(args: list[str]) -> list[str]:
    """Heavy top-level packages imported by ``python args`` (from ``-X importtime``)."""
    res = subprocess.run([sys.executable, "-X", "importtime", *args], env=_env(), check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    return [m for m in HEAVY if m in names]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repeat (smoke test)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        run, sim = Path(tmp) / "run", Path(tmp) / "sim"
        subprocess.run([sys.executable, "-m", "tbnn", "train", "--dataset", "digits", "--model", "tbn",
                        "--epochs", "1", "--out", str(run), "--quiet"], env=_env(), check=True,
                       stdout=subprocess.DEVNULL)
        cmds = {
            "import torch": ["-c", "import torch"],
            "tbnn --help": ["-m", "tbnn", "--help"],
            "tbnn simulate": ["-m", "tbnn", "simulate", str(run), "--out", str(sim), "--quiet"],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(repeats):
            for k, c in cmds.items():
                if k == "tbnn simulate":
                    shutil.rmtree(sim, ignore_errors=True)
                times[k].append(_timed(c))
        heavy = {}
        for k, c in cmds.items():
            shutil.rmtree(sim, ignore_errors=True)
            heavy[k] = _heavy_imports(c)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(describe_cpu())
    print(f"command wall time, fresh interpreter, median of {repeats} interleaved repeats (s); "
          f"python {sys.version.split()[0]}")
    width = max(map(len, cmds))
    print(f"{'command':>{width}}  {'s':>6}  {'minus torch':>11}  heavy imports")
    for k in cmds:
        print(f"{k:>{width}}  {med[k]:6.2f}  {med[k] - med['import torch']:11.2f}  "
              f"{', '.join(heavy[k]) or '-'}")
    extra = med["tbnn simulate"] - med["import torch"]
    print(f"tbnn simulate (digits, 450 samples) minus import torch: {extra:.2f} s "
          f"(target <= 1.5 s: {'met' if extra <= 1.5 else 'missed'}); "
          f"tbnn --help imports torch: {'yes' if 'torch' in heavy['tbnn --help'] else 'no'}")


if __name__ == "__main__":
    main()
