"""Peak memory of ``tbnn simulate`` on a large split, with spike recording on, limited and off.

The mnist1d CNN (``tbnn train --dataset mnist1d --model tbn --arch cnn``, 1 epoch: the
network's size, not its accuracy, sets the memory) is simulated on its 4,000-sample
training split in step mode, each case in its own subprocess: peak-RSS growth (VmHWM,
reset after the model and data are loaded) while :func:`tbnn.sim.simulate_run` runs with
every spike recorded, with the first 100 samples recorded, and with no layer recorded.
Counts (spikes, synaptic operations) cover every sample in each case, and are printed
to show it.

    python benchmarks/bench_memory.py            # ~1-2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sim import _cpu_model, _reset_hwm, _vm_kib  # noqa: E402

CASES = {"record all": {}, "record 100 samples": {"record_samples": 100}, "record nothing": {"record_layers": []}}


def _child(run: str, case: str) -> None:
    import torch

    from tbnn.sim.simulator import simulate_run

    torch.set_num_threads(1)
    simulate_run(run, None, split="train", limit=8, progress=False)  # imports, lazy init, dataset cache
    base = _vm_kib("VmRSS")
    exact = _reset_hwm()
    s = simulate_run(run, None, split="train", progress=False, **CASES[case])
    peak = _vm_kib("VmHWM") if exact else _vm_kib("VmRSS")
    print(json.dumps({"delta_mib": (peak - base) / 1024, "rss_mib": base / 1024, "exact_watermark": exact,
                      "samples": s["samples"], "recorded": s["recorded"]["samples"],
                      "spikes_per_sample": s["spikes_per_sample"],
                      "synaptic_ops_per_sample": s["synaptic_ops_per_sample"]}))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    from tbnn.runtime.machine import describe_allocator, tune_allocator

    tuned = tune_allocator()  # as the tbnn command does
    if args._child:
        _child(*args._child)
        return {}
    from tbnn.train.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        run = str(Path(tmp) / "cnn")
        train("mnist1d", "tbn", run, epochs=1, arch="cnn", progress=False)
        rows = {}
        for case in CASES:
            out = subprocess.run([sys.executable, __file__, "--_child", run, case], capture_output=True, text=True,
                                 check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
            rows[case] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"CPU: {_cpu_model()}; mnist1d CNN, train split, step mode, 1 thread; {describe_allocator(tuned)}")
    print("| case | samples | recorded | peak RSS growth MiB | spikes/sample | syn. ops/sample |")
    print("|---|---|---|---|---|---|")
    for case, r in rows.items():
        print(f"| {case} | {r['samples']} | {r['recorded']} | {r['delta_mib']:.1f} | "
              f"{r['spikes_per_sample']:.1f} | {r['synaptic_ops_per_sample']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
