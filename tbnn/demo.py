"""``tbnn demo``: the whole workflow on a small temporal binary network, in about a minute.

Trains a TBN on scikit-learn's bundled 8x8 digits (MLP 64-256-256-10, 1-bit weights,
binary spikes over T = 4 steps, DAT), simulates it as binary events, analyses its firing
against biological statistics and draws a raster and the network-vs-biology panel.
"""

from __future__ import annotations

import time
from pathlib import Path

from tbnn.io.files import read_json, stage_dir, write_sealed_json

__all__ = ["run_demo"]


def run_demo(out: str | Path = "tbnn-demo", epochs: int = 20, seed: int = 0, progress: bool = True,
             overwrite: bool = False, _flag: str = "out") -> dict:
    """Run train -> simulate -> analyze -> raster into ``out``; returns the simulation summary.

    ``out`` must be new or empty; an earlier demo there is replaced only with
    ``overwrite=True`` and only when everything in it is tbnn's own, unchanged. Everything is
    built in a tbnn-owned temporary folder beside ``out`` by the single owner of outputs
    (:func:`tbnn.io.files.stage_dir`, once for the whole demo: the run, simulation, analysis
    and raster inside are parts of it) and moved onto ``out`` when complete, so an
    interrupted demo leaves ``out`` as it was (and never touches a user's files).
    """
    from tbnn.analysis import analyze_run, raster_run
    from tbnn.sim.simulator import simulate_run
    from tbnn.train.trainer import train

    out = Path(out)
    t0 = time.perf_counter()
    with stage_dir(out, "demo", overwrite=overwrite, flag=_flag) as staging:
        run, sim, ana = staging / "run", staging / "sim", staging / "analysis"
        metrics = train("digits", "tbn", run, epochs=epochs, seed=seed, progress=progress, timesteps=4)
        summary = simulate_run(run, sim, schedule="step", progress=progress)
        analyze_run(sim, ana)
        raster_run(sim, staging / "raster.png", samples="0:8")
        write_sealed_json(staging / "demo.json", {"kind": "tbnn-demo", "epochs": epochs, "seed": seed})
    run, sim, ana = out / "run", out / "sim", out / "analysis"
    analysis = read_json(ana / "analysis.json", "analysis")
    seconds = time.perf_counter() - t0
    print()
    print(f"tbnn demo finished in {seconds:.0f} s")
    print(f"  trained   TBN (64-256-256-10, 1-bit weights, T=4 binary spikes, DAT): "
          f"test accuracy {metrics['test_accuracy']:.3f}")
    print(f"  simulated {summary['samples']} test digits as spikes: accuracy {summary['accuracy']:.3f}, "
          f"agreement with the trained model {summary['forward_agreement']:.3f}")
    print(f"            {summary['spikes_per_sample']:.0f} spikes and {summary['synaptic_ops_per_sample']:.0f} "
          f"synaptic operations per inference; weights {summary['weight_storage_bits'] / 8 / 1024:.1f} KiB")
    for line in _verdicts(analysis):
        print(f"  {line}")
    print(f"  files: {run}/ (config.json, model.safetensors, metrics.json)")
    print(f"         {sim}/ (simulation.json, spikes.npz)")
    print(f"         {ana}/report.md (+ figures), {out}/raster.png")
    print("  next:  tbnn raster " f"{sim} --layer hidden1 --sample 3 --out raster3.png")
    print("         tbnn train --dataset mnist1d --model tbn --arch cnn --epochs 60 --lr 3e-3 --out runs/mnist1d-cnn  # the README results recipe")
    print(f"         tbnn analyze {sim} --dt-ms 5 --out analysis-5ms")
    return summary


def _verdicts(analysis: dict) -> list[str]:
    """One line per layer: a few measures with their verdict against biology, if present."""
    lines = []
    layers = analysis.get("layers", {})
    items = layers.items() if isinstance(layers, dict) else ((d.get("name"), d) for d in layers)
    for name, d in items:
        parts = []
        for key, m in (d.get("measures", d) or {}).items():
            if isinstance(m, dict) and m.get("verdict") and isinstance(m.get("value"), (int, float)):
                parts.append(f"{key} {m['value']:.3g} ({m['verdict']})")
        if parts:
            lines.append(f"{name}: " + ", ".join(parts[:4]))
    return lines
