"""TBN vs snnTorch LIF on digits: accuracy, training cost, spikes, synaptic ops and throughput.

The temporal binary network (1-bit weights, ``T = 4`` binary time steps, DAT) against
tbnn's ``lif`` baseline (snnTorch ``Leaky`` neurons, surrogate gradient, rate-coded input,
float weights) at ``T`` in (4, 8, 16, 25), the same MLP (64-256-256-10), the same training
loop and recipe. Every trained run is simulated as spikes with :func:`tbnn.sim.simulate`
(the TBN by the step engine, the LIF runs by their per-step loop), which gives the
accuracy of the spiking inference, spikes and synaptic operations per inference and the
throughput (samples/s, the simulator's own timer).

The TBN is run twice: with the default per-sample read-out (``readout="sample"``: a gain and
an offset per block of 128 neurons and per sample, computed from the analog current, cross
each layer beside the spikes) and trained spikes-only (``readout="running"``: gains and
offsets fixed at inference, with the running hidden grid, so that, as in the LIF networks,
nothing but spikes crosses a layer); the table counts the analog values each sends per inference.

Outputs in ``--out`` (default ``figures/``): ``tbn_vs_lif.json``, ``tbn_vs_lif.md`` and
``tbn_vs_lif.png`` (accuracy vs synaptic ops per inference and vs training seconds per epoch).

    python simulations/tbn_vs_lif.py [--quick] [--out DIR] [--epochs E] [--seeds 0 1]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

LIF_T = (4, 8, 16, 25)


def run_one(spec: dict[str, Any], seed: int, args, workdir: Path) -> dict[str, Any]:
    from tbnn.sim.simulator import simulate
    from tbnn.train.trainer import train

    tag = f"{spec['name']}_s{seed}"
    run_dir = workdir / tag
    kw = dict(timesteps=spec["T"])
    if spec["model"] == "tbn":
        kw.update(weight_bits=1, readout=spec["readout"], hidden_grid=spec.get("hidden_grid", "rectify"))
    m = train("digits", spec["model"], run_dir, epochs=args.epochs, seed=seed, progress=False,
              n_train=args.n_train, n_test=args.n_test, hidden=args.hidden, layers=2, **kw)
    sims = {}
    for mode in spec["modes"]:
        sims[mode] = simulate(run_dir, schedule=mode, progress=False, seed=seed)
    s = sims[spec["modes"][0]]
    return {
        "name": spec["name"], "model": spec["model"], "readout": spec.get("readout"), "T": spec["T"], "seed": seed,
        "test_accuracy": m["test_accuracy"], "sim_accuracy": s["accuracy"],
        "forward_agreement": s["forward_agreement"], "seconds_per_epoch": m["seconds_per_epoch"],
        "train_seconds": m["train_seconds"], "spikes": s["spikes_per_sample"],
        "synaptic_ops": s["synaptic_ops_per_sample"], "analog_values": s["analog_values_per_sample"],
        "samples_per_second": {k: v["samples_per_second"] for k, v in sims.items()},
        "weight_storage_bits": m["weight_storage_bits"],
        "layer_rates": {L["name"]: L["rate_per_step"] for L in s["layers"]},
    }


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys(r["name"] for r in rows):
        rs = [r for r in rows if r["name"] == name]
        agg: dict[str, Any] = {"name": name, "model": rs[0]["model"], "readout": rs[0].get("readout"),
                               "T": rs[0]["T"], "seeds": len(rs)}
        for k in ("test_accuracy", "sim_accuracy", "forward_agreement", "seconds_per_epoch", "spikes",
                  "synaptic_ops", "analog_values", "weight_storage_bits"):
            if any(k not in r for r in rs):  # saved before the column existed
                continue
            agg[k], agg[k + "_std"] = common.mean_std(r[k] for r in rs)
        agg["samples_per_second"] = {m: common.mean_std(r["samples_per_second"][m] for r in rs)[0]
                                     for m in rs[0]["samples_per_second"]}
        agg["layer_rates"] = {L: common.mean_std(r["layer_rates"][L] for r in rs)[0] for L in rs[0]["layer_rates"]}
        out.append(agg)
    return out


#: How the table and the figure name each network's read-out.
READOUT_LABELS = {"sample": "per-sample", "running": "spikes-only (trained)", None: "spikes only (LIF)"}


def _label(r: dict[str, Any]) -> str:
    """``TBN T=4``, ``TBN T=4 spikes-only`` or ``LIF T=8`` (results saved before the read-out
    column: the TBN's is per-sample)."""
    if r["model"] != "tbn":
        return f"LIF T={r['T']}"
    return f"TBN T={r['T']}" + (" spikes-only" if r.get("readout") == "running" else "")


def plot(agg: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Simulated accuracy (mean ± std over seeds) against synaptic ops and training time;
    colour = model (tbnn.viz.style), one label per point."""
    from tbnn.viz.style import model_color

    plt = common.pyplot()
    c_lif, c_tbn = model_color("lif"), model_color("tbn")
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.9), sharey=True)
    for ax, key, xl in ((axes[0], "synaptic_ops", "synaptic ops / inference (simulated)"),
                        (axes[1], "seconds_per_epoch", "training seconds / epoch")):
        lif = [r for r in agg if r["model"] == "lif"]
        tbn = [r for r in agg if r["model"] == "tbn"]
        ax.plot([r[key] for r in lif], [100 * r["sim_accuracy"] for r in lif], "-o", color=c_lif,
                ms=5, lw=1, label="snnTorch LIF (rate code, float weights)")
        for r in lif:
            ax.errorbar(r[key], 100 * r["sim_accuracy"], yerr=100 * r["sim_accuracy_std"], color=c_lif,
                        capsize=2, lw=0.8)
        for r in tbn:
            spk = r.get("readout") == "running"
            ax.errorbar(r[key], 100 * r["sim_accuracy"], yerr=100 * r["sim_accuracy_std"], fmt="s",
                        color=c_tbn, mfc="white" if spk else c_tbn, ms=7, capsize=2,
                        label="TBN (binary code, 1-bit weights), "
                        + ("trained spikes-only read-out" if spk else "per-sample read-out"))
        top = max((r["sim_accuracy"] for r in tbn), default=0.0)
        for r in agg:  # the TBN rows sit close together: the higher one labelled above, the other below
            above = r["model"] == "tbn" and r["sim_accuracy"] == top
            ax.annotate(_label(r), (r[key], 100 * r["sim_accuracy"]), fontsize=7,
                        xytext=(6, 5) if above else (6, -10), textcoords="offset points", color="0.25")
        ax.set_xscale("log")
        common.log_ticks(ax)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, which="major", lw=0.5)
    axes[0].set_ylabel("test accuracy (%), simulated\nmean ± std over seeds")
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=3, fontsize=7.5, frameon=False)  # below: no point hidden
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return common.save_figure(fig, path.parent, path.name)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 15; quick 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0)")
    p.add_argument("--hidden", type=int, default=256, help="hidden width")
    p.add_argument("--lif-t", type=int, nargs="+", default=list(LIF_T), help="LIF time steps")
    p.add_argument("--workdir", type=Path, default=None, help="keep the run directories here")
    args = common.parse_args(p, argv)
    if args.replot:
        result = common.read_result(args.out, "tbn_vs_lif.json")
        plot(result["results"], args.out / "tbn_vs_lif.png", _title(result, result["info"].get("quick")))
        return result
    if args.quick:
        args.epochs = args.epochs or 1
        args.n_train, args.n_test = 200, 100
    else:
        args.epochs = args.epochs or 15
        args.n_train = args.n_test = None
    seeds = args.seeds or [0]
    specs = [dict(name="tbn_T4", model="tbn", readout="sample", T=4, modes=("step", "folded")),
             dict(name="tbn_T4_spikes_only", model="tbn", readout="running", hidden_grid="running", T=4,
                  modes=("step", "folded"))]
    specs += [dict(name=f"lif_T{t}", model="lif", T=t, modes=("step",)) for t in args.lif_t]
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tbn_vs_lif_")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for spec, seed in common.progress([(s, e) for e in seeds for s in specs], args.progress, "tbn vs lif"):
            r = run_one(spec, seed, args, workdir)
            rows.append(r)
            print(f"{r['name']:18s} seed {seed}: acc {r['sim_accuracy']:.4f} (train-time {r['test_accuracy']:.4f}) "
                  f"{r['seconds_per_epoch']:.2f} s/epoch, spikes {r['spikes']:.0f}, synops {r['synaptic_ops']:.4g}, "
                  f"{r['samples_per_second']}", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    agg = aggregate(rows)
    tbn = next(r for r in agg if r["model"] == "tbn")
    headers = ["model", "read-out", "T", "accuracy % (simulated)", "agree", "s/epoch", "spikes/inf.",
               "analog values/inf.", "syn. ops/inf.", "syn. ops vs TBN", "samples/s (sim)", "weight bits"]
    table_rows = []
    for r in agg:
        accs = [x["sim_accuracy"] for x in rows if x["name"] == r["name"]]
        sps = " / ".join(f"{v:,.0f} {m}" for m, v in r["samples_per_second"].items())
        table_rows.append([r["model"].upper(), READOUT_LABELS[r["readout"]], r["T"], common.fmt_pm(accs, digits=2),
                           f"{r['forward_agreement']:.3f}", f"{r['seconds_per_epoch']:.2f}", f"{r['spikes']:.0f}",
                           f"{r['analog_values']:.0f}", f"{r['synaptic_ops']:.4g}",
                           f"{r['synaptic_ops'] / tbn['synaptic_ops']:.2f}x", sps, f"{r['weight_storage_bits']:.0f}"])
    table = common.format_table(headers, table_rows, align="llrrrrrrrrrr")
    lif = [r for r in agg if r["model"] == "lif"]
    within = [r for r in lif if r["sim_accuracy"] >= tbn["sim_accuracy"] - 0.005]
    m = within[0] if within else None
    match = (f"Smallest LIF T whose mean accuracy is within 0.5 points of the per-sample TBN's "
             f"({100 * tbn['sim_accuracy']:.2f} %): "
             + (f"T={m['T']} ({100 * m['sim_accuracy']:.2f} %), at {m['synaptic_ops'] / tbn['synaptic_ops']:.1f}x the "
                f"TBN's synaptic ops, {m['spikes'] / tbn['spikes']:.1f}x its spikes and "
                f"{m['seconds_per_epoch'] / tbn['seconds_per_epoch']:.1f}x its training time per epoch."
                if m else "none of the T tried."))
    print(match)
    desc = (f"digits, MLP 64-{args.hidden}-{args.hidden}-10, {args.epochs} epoch(s), seeds {seeds}"
            + (", quick subset" if args.quick else "") + f"; {common.run_info(args)['threads']} torch thread(s)")
    print(table)
    result = {"info": common.run_info(args), "description": desc,
              "epochs": args.epochs, "seeds": seeds, "results": agg, "runs": rows,
              "matched_lif_T": m["T"] if m else None, "matched_summary": match}
    common.write_json(args.out, "tbn_vs_lif.json", result)
    common.write_text(args.out, "tbn_vs_lif.md",
               f"# TBN vs snnTorch LIF on digits\n\n{desc}. Accuracy is the spiking simulation's "
               "(tbnn.sim.simulate; mean ± std over seeds); spikes and synaptic operations (spike x fan-out) "
               "per inference include the input layer; samples/s is the simulator's own timer "
               "(TBN: step / folded engines; LIF: snnTorch per-step loop). Read-out: the TBN per-sample "
               "read-out sends a gain and an offset per block of neurons and per sample beside the spikes "
               "(analog values/inf.); the trained spikes-only TBN (`tbnn train --readout running --hidden-grid running`) and the "
               "LIF networks send nothing but spikes.\n\n"
               f"{table}\n\n{match}\n\n![TBN vs LIF](tbn_vs_lif.png)\n")
    plot(agg, args.out / "tbn_vs_lif.png", _title(result, args.quick))
    return result


def _title(result: dict[str, Any], quick: bool) -> str:
    return ("TBN (T=4) vs snnTorch LIF on digits ("
            + ("quick" if quick else f"{result['epochs']} epochs, {len(result['seeds'])} seeds") + ")")


if __name__ == "__main__":
    main()
