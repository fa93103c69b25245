"""Precision x time: accuracy against the energy proxy over activation time steps and weight bits.

A temporal binary network on ``digits`` (MLP 64-256-256-10) for every activation length
``T`` in (1, 2, 4, 8) and weight precision in (1, 1.5 = ternary, 2, 4) bits, dense and 2:4
sparse (1-bit codes with 2:4 sparsity are the paper's sub-1-bit networks). Every layer,
the read-out included, uses the same weight precision. Each trained run is simulated as
binary events (:func:`tbnn.sim.simulate`, step mode) and scored by the energy proxy:

* ``synaptic_ops``: spikes x fan-out per inference counting every weight position (``tbnn.sim``'s ``dense_synaptic_ops_per_sample``);
* ``effective_synaptic_ops``: spikes x *nonzero* outgoing weights (a pruned or ternary-zero
  synapse does no work; affine 1/2/4-bit codes have no zero weights);
* ``bit_ops``: effective synaptic ops x bits per stored weight code (log2 3 for ternary).

Outputs in ``--out`` (default ``figures/``): ``precision_time.json``, ``precision_time.md``
and ``precision_time.png`` (accuracy vs synaptic ops, effective synaptic ops and bit-ops;
colour = ``T``, marker = weight bits, open = 2:4 sparse; each panel's efficiency frontier
drawn and its points labelled ``T/W``).

    python simulations/precision_time.py [--quick] [--out DIR] [--epochs E] [--seeds 0 1]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TIMESTEPS = (1, 2, 4, 8)
WEIGHT_BITS = (1, 1.5, 2, 4)
SPARSITIES = (None, "2:4")


def code_bits(bits: float) -> float:
    """Bits of one stored weight code (ternary: log2 3)."""
    return math.log2(3) if bits == 1.5 else float(bits)


def effective_ops(run_dir: Path, sim_dir: Path) -> tuple[float, list[float]]:
    """Spikes x nonzero outgoing weights per inference, and each layer's mean nonzero fan-out.

    The nonzero pattern is that of the dequantized weights ``layer.quantized_weight()``.
    """
    from tbnn.sim.simulator import load_run
    from tbnn.io.spikes import load_spikes

    model, _ = load_run(run_dir)
    rec = load_spikes(sim_dir / "spikes.npz")
    nxt = [*model.layers, model.readout]
    total, fan = 0.0, []
    with torch.no_grad():
        for name, layer in zip(model.layer_names, nxt):
            w = layer.quantized_weight().reshape(layer.weight.shape[0], -1)
            nz = (w != 0).sum(0).double().numpy()  # nonzero targets of each presynaptic neuron
            counts = rec.layers[name].sum(axis=(0, 1)).astype(np.float64)  # spikes per neuron
            total += float((counts * nz).sum())
            fan.append(float(nz.mean()))
    return total / rec.samples, fan


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal cost, higher or equal accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    best, keep = -1.0, []
    for i in order:
        if points[i][1] > best:
            keep.append(i)
            best = points[i][1]
    return keep


def run_one(cfg: dict[str, Any], seed: int, args, workdir: Path) -> dict[str, Any]:
    from tbnn.sim.simulator import simulate_run
    from tbnn.train.trainer import train

    tag = f"T{cfg['T']}_W{cfg['bits']}_{'24' if cfg['sparsity'] else 'dense'}_s{seed}"
    run_dir, sim_dir = workdir / tag, workdir / (tag + "_sim")
    m = train("digits", "tbn", run_dir, epochs=args.epochs, seed=seed, progress=False,
              n_train=args.n_train, n_test=args.n_test, hidden=args.hidden, layers=2,
              timesteps=cfg["T"], weight_bits=cfg["bits"], readout_bits=cfg["bits"],
              sparsity=cfg["sparsity"])
    s = simulate_run(run_dir, sim_dir, schedule="step", progress=False)
    eff, fan = effective_ops(run_dir, sim_dir)
    st = m["weight_storage"]
    n_w = sum(p.numel() for n_, p in m["net"].named_parameters() if n_.endswith("weight") and p.dim() == 2)
    return {
        "T": cfg["T"], "weight_bits": cfg["bits"], "sparsity": cfg["sparsity"] or "dense", "seed": seed,
        "test_accuracy": m["test_accuracy"], "sim_accuracy": s["accuracy"],
        "forward_agreement": s["forward_agreement"], "spikes": s["spikes_per_sample"],
        "synaptic_ops": s["dense_synaptic_ops_per_sample"], "effective_synaptic_ops": eff,
        "nonzero_fanout": fan, "code_bits": code_bits(cfg["bits"]),
        "bit_ops": eff * code_bits(cfg["bits"]),
        "weight_storage_bits": st["total"], "quantized_bits_per_weight": st["quantized"] / n_w,
        "seconds_per_epoch": m["seconds_per_epoch"],
    }


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and std of accuracy) over seeds for each configuration."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["T"], r["weight_bits"], r["sparsity"]), []).append(r)
    out = []
    for (T, b, sp), rs in groups.items():
        acc_m, acc_s = common.mean_std(r["sim_accuracy"] for r in rs)
        agg = {"T": T, "weight_bits": b, "sparsity": sp, "seeds": len(rs), "accuracy": acc_m, "accuracy_std": acc_s,
               "label": f"T{T}/W{b:g}" + ("s" if sp != "dense" else "")}
        for k in ("forward_agreement", "spikes", "synaptic_ops", "effective_synaptic_ops", "bit_ops",
                  "weight_storage_bits", "quantized_bits_per_weight", "seconds_per_epoch", "code_bits"):
            agg[k] = common.mean_std(r[k] for r in rs)[0]
        out.append(agg)
    return out


def plot(agg: list[dict[str, Any]], path_out: Path, title: str) -> Path:
    """Accuracy (mean ± std over seeds) against the three energy proxies.

    One meaning per marker property: colour = T, shape = weight bits, filled = dense,
    open = 2:4 sparse; the dashed line is each panel's efficiency frontier (its points are
    listed in ``precision_time.md``). Points are not labelled: colour, shape and fill
    identify each one without text that could overprint.
    """
    from matplotlib.lines import Line2D

    from tbnn.viz.style import new_figure

    common.pyplot()  # the house style for everything drawn below
    fig, axes = new_figure(12.5, 4.3, nrows=1, ncols=3, sharey=True)
    cmap = {1: "#009E73", 2: "#D55E00", 4: "#0072B2", 8: "#CC79A7"}
    marker = {1: "o", 1.5: "^", 2: "s", 4: "D"}
    panels = ((axes[0], "synaptic_ops", "synaptic ops / inference\n(spikes × fan-out, as tbnn.sim counts)"),
              (axes[1], "effective_synaptic_ops", "effective synaptic ops / inference\n(spikes × nonzero synapses)"),
              (axes[2], "bit_ops", "bit-ops / inference\n(spikes × nonzero synapses × code bits)"))
    for ax, key, xl in panels:
        idx = pareto([(r[key], r["accuracy"]) for r in agg])
        for r in agg:
            err = 100 * (r.get("accuracy_std") or 0.0)
            common.errorbar_points(ax, [r[key]], [100 * r["accuracy"]], [err], cmap.get(r["T"], "k"),
                                   marker=marker.get(r["weight_bits"], "o"), filled=r["sparsity"] == "dense",
                                   zorder=3)
        fx = [agg[i][key] for i in idx]
        fy = [100 * agg[i]["accuracy"] for i in idx]
        ax.step(fx, fy, where="post", color="0.4", lw=1, ls="--", zorder=2)
        ax.set_xscale("log")
        common.log_ticks(ax)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, which="major", lw=0.5)
    axes[0].set_ylabel("test accuracy (%), simulated\nmean ± std over seeds")
    lo = min(100 * (r["accuracy"] - (r.get("accuracy_std") or 0)) for r in agg)
    hi = max(100 * (r["accuracy"] + (r.get("accuracy_std") or 0)) for r in agg)
    axes[0].set_ylim(max(0, lo - 1.0), min(100.5, hi + 0.5))
    handles = [Line2D([], [], ls="", marker="o", color=c, label=f"T = {t}") for t, c in cmap.items()]
    handles += [Line2D([], [], ls="", marker=m, color="0.35",
                       label=f"W = {b:g} bit" + (" (ternary)" if b == 1.5 else "")) for b, m in marker.items()]
    handles += [Line2D([], [], ls="", marker="o", color="0.35", mfc="white", label="open = 2:4 sparse"),
                Line2D([], [], ls="--", color="0.4", label="efficiency frontier")]
    fig.legend(handles=handles, loc="outside right center", ncol=1)
    fig.suptitle(title)
    return common.save_figure(fig, path_out.parent, path_out.name)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 15; quick 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0)")
    p.add_argument("--hidden", type=int, default=256, help="hidden width")
    p.add_argument("--workdir", type=Path, default=None, help="keep the run directories here")
    args = common.parse_args(p, argv)
    if args.replot:
        result = common.read_result(args.out, "precision_time.json")
        plot(result["results"], args.out / "precision_time.png", _title(result, result["info"].get("quick")))
        return result
    if args.quick:
        args.epochs = args.epochs or 1
        args.n_train, args.n_test = 200, 100
        grid = [dict(T=T, bits=b, sparsity=sp) for T in (1, 4) for b in (1, 2) for sp in SPARSITIES]
    else:
        args.epochs = args.epochs or 15
        args.n_train = args.n_test = None
        grid = [dict(T=T, bits=b, sparsity=sp) for T in TIMESTEPS for b in WEIGHT_BITS for sp in SPARSITIES]
    seeds = args.seeds or [0]
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="precision_time_")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        jobs = [(c, s) for s in seeds for c in grid]
        for cfg, seed in common.progress(jobs, args.progress, "precision x time"):
            r = run_one(cfg, seed, args, workdir)
            rows.append(r)
            print(f"T={r['T']} W={r['weight_bits']:g} {r['sparsity']:5s} seed {seed}: acc {r['sim_accuracy']:.4f} "
                  f"agree {r['forward_agreement']:.3f} spikes {r['spikes']:.0f} synops {r['synaptic_ops']:.3g} "
                  f"eff {r['effective_synaptic_ops']:.3g} ({r['seconds_per_epoch']:.2f} s/epoch)", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    agg = aggregate(rows)
    front_ops = [agg[i]["label"] for i in pareto([(r["synaptic_ops"], r["accuracy"]) for r in agg])]
    front_bit = [agg[i]["label"] for i in pareto([(r["bit_ops"], r["accuracy"]) for r in agg])]
    for r in agg:
        r["on_frontier_synaptic_ops"] = r["label"] in front_ops
        r["on_frontier_bit_ops"] = r["label"] in front_bit
    headers = ["T", "W bits", "sparsity", "accuracy %", "agree", "spikes", "syn. ops", "eff. syn. ops",
               "bit-ops", "stored bits/weight", "s/epoch", "frontier"]
    table_rows = []
    for r in sorted(agg, key=lambda r: (r["T"], r["weight_bits"], r["sparsity"] != "dense")):
        accs = [x["sim_accuracy"] for x in rows if (x["T"], x["weight_bits"], x["sparsity"]) ==
                (r["T"], r["weight_bits"], r["sparsity"])]
        fr = ("ops" if r["on_frontier_synaptic_ops"] else "") + (" bit" if r["on_frontier_bit_ops"] else "")
        table_rows.append([r["T"], f"{r['weight_bits']:g}", r["sparsity"], common.fmt_pm(accs, digits=2),
                           f"{r['forward_agreement']:.3f}", f"{r['spikes']:.0f}", f"{r['synaptic_ops']:.4g}",
                           f"{r['effective_synaptic_ops']:.4g}", f"{r['bit_ops']:.4g}",
                           f"{r['quantized_bits_per_weight']:.3f}", f"{r['seconds_per_epoch']:.2f}", fr.strip() or "-"])
    table = common.format_table(headers, table_rows)
    desc = (f"digits, MLP 64-{args.hidden}-{args.hidden}-10, {args.epochs} epoch(s), seeds {seeds}"
            + (", quick subset" if args.quick else "") + "; accuracy from the step simulator (mean ± std over seeds)")
    print(table)
    print(f"frontier (synaptic ops): {', '.join(front_ops)}")
    print(f"frontier (bit-ops): {', '.join(front_bit)}")
    result = {"info": common.run_info(args), "description": desc, "epochs": args.epochs, "seeds": seeds,
              "hidden": args.hidden, "results": agg, "runs": rows,
              "frontier": {"synaptic_ops": front_ops, "bit_ops": front_bit},
              "energy_proxy": {"synaptic_ops": "spikes x fan-out (tbnn.sim)",
                               "effective_synaptic_ops": "spikes x nonzero outgoing weights",
                               "bit_ops": "effective_synaptic_ops x bits per weight code"}}
    common.write_json(args.out, "precision_time.json", result)
    common.write_text(args.out, "precision_time.md",
                      f"# Precision x time on digits\n\n{desc}.\n\n{table}\n\n"
                      f"Frontier by synaptic ops: {', '.join(front_ops)}.  \n"
                      f"Frontier by bit-ops: {', '.join(front_bit)}.\n\n"
                      "Labels: `T{steps}/W{bits}`, suffix `s` = 2:4 sparse. stored bits/weight: tbnn's "
                      "weight_storage_bits of the quantized weights incl. per-channel scales and 2:4 index bits.\n\n"
                      "![precision x time](precision_time.png)\n")
    plot(agg, args.out / "precision_time.png", _title(result, args.quick))
    return result


def _title(result: dict[str, Any], quick: bool) -> str:
    return ("TBN on digits: accuracy vs energy proxy ("
            + ("quick" if quick else f"{result['epochs']} epochs, {len(result['seeds'])} seeds") + ")")


if __name__ == "__main__":
    main()
