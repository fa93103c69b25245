"""Is the engine's speed repeatable? ``tbnn simulate`` in fresh processes, quiet and beside busy ones.

Trains one mnist1d TBN MLP run (``tbnn train --dataset mnist1d --model tbn``; or takes it
from ``--run``), then runs ``tbnn simulate RUN --split train`` (4,000 samples) in
``--processes`` fresh processes one after another, as a user would, and reads each
``simulation.json``: the engine's throughput (``engine_samples_per_second``), its CPU time per
sample, the arithmetic the engine chose (``engine.low_precision``), the engine each layer ran
and the thread counts. Then the same with ``--busy`` processes running ``while 1: pass``
beside it.

Each phase runs under every ``--settings`` entry: ``default`` (the command as a user runs it:
one thread), ``threads=N`` (``OMP_NUM_THREADS=N``: OpenMP threads spin a while before they
sleep, libgomp's default) and ``threads=N,passive`` (also ``OMP_WAIT_POLICY=PASSIVE``: they
sleep at once).

Around each process the host is gauged (``bench_packed.popcount_micro``, the AND + popcount
microbenchmark, in this process while the simulate process is not running): on a shared virtual
machine the core's speed moves between phases with nothing of ours running, and the engine's
throughput with it. A run's host counts as quiet when the mean of its two gauges is within 10 %
of the best such mean of the whole benchmark (``bench_packed_runs.quiet_host``, the rule of its
series of simulate tables).

Prints, per setting and phase: the throughput's minimum, median and maximum, the spread
(maximum / minimum), the same spread over the quiet-host runs, the gauges' range, the set of
arithmetic choices and engines, and the busy phase's median as a fraction of the quiet one.
The CPU line and the load average come first. No result is asserted.

    python benchmarks/bench_repeat.py [--processes 7] [--busy 2] [--settings default threads=2 threads=2,passive] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tbnn.runtime.machine import describe_cpu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_packed import popcount_micro  # noqa: E402
from bench_packed_runs import QUIET, quiet_host  # noqa: E402


def _env(setting: str = "default") -> dict:
    """The environment of a ``tbnn`` process under ``setting`` (see the module)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
    for part in setting.split(","):
        if part.startswith("threads="):
            env["OMP_NUM_THREADS"] = part.split("=", 1)[1]
        elif part == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def _setting(text: str) -> str:
    """``--settings`` entry: ``default``, ``threads=N`` or ``threads=N,passive``."""
    parts = text.split(",")
    ok = text == "default" or (parts[0].startswith("threads=") and parts[0][8:].isdigit() and int(parts[0][8:]) >= 1
                               and parts[1:] in ([], ["passive"]))
    if not ok:
        raise argparse.ArgumentTypeError(f"must be default, threads=N or threads=N,passive; got {text!r}")
    return text


def _tbnn(args: list[str], setting: str = "default") -> None:
    """Run ``tbnn args``; its stderr is shown only if it fails."""
    res = subprocess.run([sys.executable, "-m", "tbnn", *args], env=_env(setting), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    if res.returncode:
        raise RuntimeError(f"tbnn {' '.join(args)} failed (exit {res.returncode}):\n{res.stderr}")


def gauge() -> float:
    """The host's AND + popcount throughput now, G bit-ops/s (NaN without a compiled kernel)."""
    return popcount_micro(torch.Generator().manual_seed(0), 2**31, 3)


def _one(run: Path, out: Path, setting: str) -> dict:
    before = gauge()
    _tbnn(["simulate", str(run), "--split", "train", "--out", str(out), "--quiet"], setting)
    after = gauge()
    s = json.loads((out / "simulation.json").read_text())
    return {"samples_per_second": s["engine_samples_per_second"], "gauge": [before, after], "cpu_seconds_per_sample": s["engine_cpu_seconds_per_sample"],
            "arithmetic": s["engine"]["low_precision"], "engines": sorted(set(s["engine"]["layers"].values())),
            "threads": s["threads"]["intra_op"], "samples": s["samples"]}


def _phase(run: Path, tmp: Path, n: int, busy: int, setting: str, tag: str) -> list[dict]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)
        out = []
        for i in range(n):
            out.append(_one(run, tmp / f"{tag}-{i}", setting))
            print(f"  {tag} {i + 1}/{n}: {out[-1]['samples_per_second']:,.0f} samples/s, host gauge "
                  f"{out[-1]['gauge'][0]:,.0f} / {out[-1]['gauge'][1]:,.0f}", flush=True)
        return out
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def quiet_spread(runs: list[dict], best: float) -> tuple[float, int]:
    """The spread (maximum / minimum throughput) of the runs whose host was quiet
    (:func:`bench_packed_runs.quiet_host` of the mean of their gauges against ``best``), and how
    many they are (NaN, 0 when none is)."""
    sps = [r["samples_per_second"] for r in runs if quiet_host(statistics.mean(r["gauge"]), best)]
    return (max(sps) / min(sps) if sps else math.nan), len(sps)


def _summary(runs: list[dict]) -> dict:
    sps = [r["samples_per_second"] for r in runs]
    return {"min": min(sps), "median": statistics.median(sps), "max": max(sps), "spread": max(sps) / min(sps),
            "gauge": [min(min(r["gauge"]) for r in runs), max(max(r["gauge"]) for r in runs)],
            "arithmetic": sorted({r["arithmetic"] for r in runs}),
            "engines": sorted({e for r in runs for e in r["engines"]}), "threads": sorted({r["threads"] for r in runs}),
            "cpu_ms_per_sample_median": 1e3 * statistics.median(r["cpu_seconds_per_sample"] for r in runs),
            "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=7, help="fresh simulate processes per phase (default 7)")
    p.add_argument("--busy", type=int, default=2, help="busy processes beside the busy phase (default 2)")
    p.add_argument("--settings", type=_setting, nargs="+", default=["default", "threads=2", "threads=2,passive"],
                   help="environments to run: default, threads=N, threads=N,passive (default: all three with N = 2)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs of the run (default 20)")
    p.add_argument("--run", type=Path, default=None, help="a trained mnist1d run folder (default: train one)")
    p.add_argument("--out", type=Path, default=None, help="folder for bench_repeat.json and .md (default: print only)")
    args = p.parse_args(argv)
    for flag, v in (("--processes", args.processes), ("--epochs", args.epochs)):
        if v < 1:
            p.error(f"{flag} must be >= 1; got {v}.")
    if args.busy < 0:
        p.error(f"--busy must be >= 0; got {args.busy}.")
    head = f"{describe_cpu()}; load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    print(head, flush=True)
    result: dict = {"cpu": head, "processes": args.processes, "busy": args.busy, "phases": {}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = args.run
        if run is None:
            run = tmp / "run"
            _tbnn(["train", "--dataset", "mnist1d", "--model", "tbn", "--epochs", str(args.epochs),
                   "--out", str(run), "--quiet"])
        for setting in args.settings:
            for busy in sorted({0, args.busy}):
                tag = f"{setting} | {busy}"
                print(tag, flush=True)
                result["phases"][tag] = _summary(_phase(run, tmp, args.processes, busy, setting,
                                                        f"{setting.replace(',', '-').replace('=', '')}-{busy}"))
    best = max(statistics.mean(r["gauge"]) for s in result["phases"].values() for r in s["runs"])
    result["best_gauge"] = best
    lines = ["| setting | busy processes | samples/s min / median / max | spread (max / min) | "
             f"spread where the host was quiet (mean gauge within {QUIET:.0%} of the best, {best:,.0f}; runs) | "
             "host gauge min / max (G bit-ops/s) | busy median / quiet median | arithmetic | engines | "
             "CPU ms per sample (median) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for tag, s in result["phases"].items():
        setting, busy = tag.split(" | ")
        quiet = result["phases"][f"{setting} | 0"]["median"]
        s["quiet_spread"], n_quiet = quiet_spread(s["runs"], best)
        quiet_cell = f"{s['quiet_spread']:.2f}x ({n_quiet})" if n_quiet else "none (0)"
        lines.append(f"| {setting} (intra-op {', '.join(map(str, s['threads']))}) | {busy} | "
                     f"{s['min']:,.0f} / {s['median']:,.0f} / {s['max']:,.0f} | {s['spread']:.2f}x | "
                     f"{quiet_cell} | {s['gauge'][0]:,.0f} / {s['gauge'][1]:,.0f} | "
                     f"{s['median'] / quiet:.2f} | {', '.join(s['arithmetic'])} | {'; '.join(s['engines'])} | "
                     f"{s['cpu_ms_per_sample_median']:.3f} |")
    text = "\n".join([f"# bench_repeat: {args.processes} fresh `tbnn simulate --split train` per row", "", head, "",
                      *lines])
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_repeat.json").write_text(json.dumps(result, indent=1))
        (args.out / "bench_repeat.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
