r"""Where the 1-bit gap comes from: an ablation of the mnist1d TBN MLP, one component at a time.

Starting from the all-1-bit temporal binary MLP of ``results_table.py`` (mnist1d, 40-256-256-10,
DAT with ``lam = 0.01``, blocks of 128, binary code over ``T = 4`` steps, the same recipe), each
setting raises **one** component to 8 bits and keeps the rest at 1 bit:

* ``first8``   the first layer's weights (40 -> 256, the layer that reads the encoded input);
* ``hidden8``  the hidden layer's weights (256 -> 256);
* ``readout8`` the read-out's weights (256 -> 10);
* ``act8``     the activations: ``T = 8`` binary steps (8-bit codes) for the input encoder and
  both hidden layers, instead of 4.

Two combinations frame them: ``first_readout8`` (first and last layer at 8 bits, the usual
practice for binary networks) and ``all8`` (every weight at 8 bits and ``T = 8``); the ends are
the all-1-bit network and the float MLP (ReLU, same widths and recipe). Each setting's share of
the gap to float is measured per seed (the same seed gives the same data split and
initialisation) and averaged over seeds:

.. math::

    s_k = \frac{a_k - a_{1\,\mathrm{bit}}}{a_{\mathrm{float}} - a_{1\,\mathrm{bit}}}

with ``a`` the test accuracy averaged over the last 5 epochs. The cost of each setting is
counted twice: weight storage in bits (:func:`tbnn.nn.models.weight_storage_bits`) and synaptic
operations per inference from the exact binary-event simulation (:func:`tbnn.simulate`, every
input spike times the synapses it reaches), also weighted by the weight width of the synapses
(ops x bits, a proxy for the accumulator work of a wider weight). Writes ``bit_gap.json``,
``bit_gap.md`` and ``bit_gap.png`` into ``--out``; the JSON is rewritten after every run
(labelled partial until the grid is complete) and ``--resume`` keeps its finished runs.

    python simulations/bit_gap.py             # full grid, 8 settings x 3 seeds (about 12 CPU minutes, one thread)
    python simulations/bit_gap.py --quick     # seconds, for the tests
    python simulations/bit_gap.py --resume    # continue an interrupted grid
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import results_table  # noqa: E402  (the recipe and model settings of the results table)

from tbnn.core.validate import json_ready  # noqa: E402

DATASET = "mnist1d"
RECIPE: dict[str, Any] = dict(results_table.RECIPE)
#: The all-1-bit network of the results table, block 128 (``first_layer_bits`` None = ``weight_bits``).
BASE: dict[str, Any] = dict(results_table.MODEL, arch="mlp", timesteps=4, block=128)
SEEDS = (0, 1, 2)
HIGH = 8  # the bit width a component is raised to

#: (key, label, model kind, changes from BASE). Order: ends, single components, combinations.
SETTINGS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("base", "all 1-bit (T = 4)", "tbn", {}),
    ("first8", "first-layer weights 8-bit", "tbn", {"first_layer_bits": HIGH}),
    ("hidden8", "hidden weights 8-bit", "tbn", {"weight_bits": HIGH, "first_layer_bits": 1}),
    ("readout8", "read-out weights 8-bit", "tbn", {"readout_bits": HIGH}),
    ("act8", "activations 8-bit (T = 8)", "tbn", {"timesteps": HIGH}),
    ("first_readout8", "first + read-out 8-bit", "tbn", {"first_layer_bits": HIGH, "readout_bits": HIGH}),
    ("all8", "all weights 8-bit, T = 8", "tbn", {"weight_bits": HIGH, "readout_bits": HIGH, "timesteps": HIGH}),
    ("float", "float MLP (ReLU)", "float", {}),
]
SINGLE = ("first8", "hidden8", "readout8", "act8")
QUICK = dict(epochs=2, n_train=256, n_test=128, sim_samples=64)
#: Test samples simulated as binary events for the synaptic-operation counts.
SIM_SAMPLES = 1000


def model_kwargs(key: str) -> tuple[str, dict[str, Any]]:
    """Model kind and :class:`~tbnn.nn.models.ModelConfig` fields of a setting."""
    _, _, kind, change = next(s for s in SETTINGS if s[0] == key)
    return kind, dict(BASE, **change)


def layer_bits(net) -> list[float | None]:
    """Weight width of each synaptic layer in order (first, hidden..., read-out); None = float."""
    return [m.weight_bits for m in [*net.layers, net.readout]]


def code_bits(bits: float | None) -> float:
    """Bits per stored weight code: ``log2(3)`` for ternary, 32 for float."""
    if bits is None:
        return 32.0
    return math.log2(3) if bits == 1.5 else float(bits)


def layer_storage(net) -> list[int]:
    """Weight storage bits of each synaptic layer (codes, per-channel scales, bias).

    Each layer is counted inside a container: ``weight_storage_bits`` of a bare layer does not
    recognise its quantized weight (it looks for ``'.weight'``) and counts it at 32 bits.
    """
    from torch import nn

    from tbnn.nn.models import weight_storage_bits

    return [weight_storage_bits(nn.ModuleDict({"layer": m}))["total"] for m in [*net.layers, net.readout]]


def setting_storage(key: str, in_features: int = 40, n_classes: int = 10) -> list[int] | None:
    """Per-layer storage bits of a setting's network (mnist1d: 40 inputs, 10 classes); None for float.

    Storage depends on the shapes and widths only, so an untrained network gives it.
    """
    from tbnn.nn.models import ModelConfig, build_model

    kind, kw = model_kwargs(key)
    if kind == "float":
        return None
    return layer_storage(build_model(ModelConfig(model=kind, in_features=in_features, n_classes=n_classes, **kw)))


def first_layer_storage_delta(in_features: int, hidden: int, low: float = 1, high: float = HIGH) -> int:
    """Closed form of the storage a wider first layer costs: ``(b_high - b_low) * in * hidden`` bits.

    The per-channel gain and offset (2 x 32 bits per output) and the bias do not depend on the
    width, so only the codes change.

    >>> first_layer_storage_delta(40, 256)
    71680
    """
    return math.ceil(code_bits(high) * in_features * hidden) - math.ceil(code_bits(low) * in_features * hidden)


def op_costs(sim_summary: dict, bits: list[float | None]) -> dict[str, Any]:
    """Synaptic operations per sample by emitting layer, and the same weighted by weight width.

    The simulator credits the operations of a layer's spikes to the layer that emits them
    (``input`` feeds the first layer, ``hidden1`` the next, ..., the last hidden layer the
    read-out), so layer ``i``'s operations use the weights of synaptic layer ``i``.

    >>> s = {"samples": 2, "layers": [{"name": "input", "synaptic_ops": 10.0},
    ...                               {"name": "hidden1", "synaptic_ops": 4.0}]}
    >>> op_costs(s, [8, 1])["bit_ops_per_sample"]
    42.0
    """
    n = sim_summary["samples"]
    per = {L["name"]: L["synaptic_ops"] / n for L in sim_summary["layers"]}
    bit_ops = sum(v * code_bits(b) for v, b in zip(per.values(), bits))
    return {"synaptic_ops_per_layer": per, "synaptic_ops_per_sample": sum(per.values()),
            "bit_ops_per_sample": bit_ops}


def run_one(key: str, seed: int, recipe: dict, n_train: int | None, n_test: int | None,
            sim_samples: int) -> dict[str, Any]:
    """Train one setting with one seed; accuracy, storage and (spiking models) synaptic operations."""
    import torch

    from tbnn.io.datasets import load_dataset
    from tbnn.sim.simulator import simulate
    from tbnn.train.trainer import train

    kind, kw = model_kwargs(key)
    common.seed_everything(seed)
    try:
        m = train(DATASET, kind, seed=seed, progress=False, n_train=n_train, n_test=n_test, **recipe, **kw)
    except FloatingPointError as e:  # diverged: keep the run, say so
        return {"key": key, "seed": seed, "diverged": str(e), "tail_accuracy": None}
    net = m.pop("net")
    out = {"key": key, "seed": seed, "tail_accuracy": results_table.tail_mean(m["history"]),
           "test_accuracy": m["test_accuracy"], "train_accuracy": m["train_accuracy"],
           "seconds_per_epoch": m["seconds_per_epoch"], "weight_storage_bits": m["weight_storage_bits"],
           "weight_storage": m["weight_storage"], "layer_bits": layer_bits(net) if kind != "float" else None,
           "history": [{k: h[k] for k in ("epoch", "loss", "train_accuracy", "test_accuracy")} for h in m["history"]]}
    if kind != "float":
        ds = load_dataset(DATASET, seed=seed, n_train=n_train, n_test=n_test)
        x, y = ds.x_test[:sim_samples], ds.y_test[:sim_samples]
        with torch.no_grad():
            res = simulate(net, x, y, schedule="folded", record_samples=1)
        out.update(op_costs(res.summary, layer_bits(net)))
        out["forward_agreement"] = res.summary["forward_agreement"]
        out["simulated_samples"] = res.summary["samples"]
    return out


def gap_shares(runs: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per setting: accuracy gain over all-1-bit and share of the float gap, paired by seed.

    >>> r = lambda *a: [{"seed": i, "tail_accuracy": v} for i, v in enumerate(a)]
    >>> s = gap_shares({"base": r(0.6, 0.6), "float": r(0.7, 0.8), "x": r(0.65, 0.7)})
    >>> [round(v, 6) for v in s["x"]["share"]], round(s["x"]["share_mean"], 6)
    ([0.5, 0.5], 0.5)
    """
    def by_seed(k):
        return {r["seed"]: r["tail_accuracy"] for r in runs.get(k, []) if r.get("tail_accuracy") is not None}

    base, flt = by_seed("base"), by_seed("float")
    out = {}
    for k in runs:
        acc = by_seed(k)
        seeds = sorted(set(acc) & set(base) & set(flt))
        gain = [acc[s] - base[s] for s in seeds]
        share = [(acc[s] - base[s]) / (flt[s] - base[s]) if flt[s] != base[s] else None for s in seeds]
        gm, gs = common.mean_std(gain)
        sm, ss = common.mean_std(share)
        out[k] = {"seeds": seeds, "gain": gain, "share": share, "gain_mean": gm, "gain_std": gs,
                  "share_mean": sm, "share_std": ss}
    return out


def summarise(runs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """One row per setting (in :data:`SETTINGS` order) with mean ± std and costs."""
    shares = gap_shares(runs)
    rows = []
    for key, label, kind, change in SETTINGS:
        rr = [r for r in runs.get(key, [])]
        if not rr:
            continue
        ok = [r for r in rr if r.get("tail_accuracy") is not None]
        am, as_ = common.mean_std(r["tail_accuracy"] for r in ok)
        first = ok[0] if ok else {}
        rows.append({
            "key": key, "label": label, "model": kind, "change": change, "seeds": [r["seed"] for r in rr],
            "diverged": sum(1 for r in rr if r.get("diverged")),
            "tail_accuracy": [r.get("tail_accuracy") for r in rr], "accuracy_mean": am, "accuracy_std": as_,
            "train_accuracy_mean": common.mean_std(r["train_accuracy"] for r in ok)[0],
            "seconds_per_epoch": common.mean_std(r["seconds_per_epoch"] for r in ok)[0],
            "weight_storage_bits": first.get("weight_storage_bits"), "layer_bits": first.get("layer_bits"),
            "layer_storage_bits": setting_storage(key),
            "synaptic_ops_per_sample": common.mean_std(r.get("synaptic_ops_per_sample") for r in ok)[0],
            "bit_ops_per_sample": common.mean_std(r.get("bit_ops_per_sample") for r in ok)[0],
            "forward_agreement": min((r["forward_agreement"] for r in ok if "forward_agreement" in r), default=None),
            **{k: shares[key][k] for k in ("gain", "share", "gain_mean", "gain_std", "share_mean", "share_std")},
        })
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def verdict(rows: list[dict]) -> list[str]:
    """Sentences on the single components: which closes half of the gap, if any."""
    single = [r for r in rows if r["key"] in SINGLE and math.isfinite(r["share_mean"])]
    if not single:
        return ["No single-component setting has finished yet."]
    best = max(single, key=lambda r: r["share_mean"])
    out = []
    half = [r for r in single if r["share_mean"] >= 0.5]
    if not half:
        out.append(f"No single component closes half of the gap to float: the largest share is "
                   f"{best['label']}, {100 * best['share_mean']:.0f} ± {100 * best['share_std']:.0f} %.")
    else:
        for r in half:
            sure = r["share_mean"] - r["share_std"] >= 0.5
            out.append(f"{r['label']} closes {100 * r['share_mean']:.0f} ± {100 * r['share_std']:.0f} % of the gap "
                       + ("(half or more beyond the seed spread)." if sure else "(half or more, within the seed spread)."))
    total = sum(r["share_mean"] for r in single)
    out.append(f"The {len(single)} single-component shares sum to {100 * total:.0f} %.")
    by = {r["key"]: r for r in rows}
    fr = by.get("first_readout8")
    if fr is not None and math.isfinite(fr["share_mean"]):
        text = (f"First and read-out layers at 8 bits together close {100 * fr['share_mean']:.0f} ± "
                f"{100 * fr['share_std']:.0f} % " + ("(most of the gap)" if fr["share_mean"] >= 0.5 else "(less than half)"))
        parts = [by[k] for k in ("first8", "readout8") if k in by and math.isfinite(by[k]["share_mean"])]
        if len(parts) == 2:
            both = sum(r["share_mean"] for r in parts)
            spread = fr["share_std"] + sum(r["share_std"] for r in parts)
            how = ("about the sum" if abs(fr["share_mean"] - both) <= spread else
                   "more than the sum" if fr["share_mean"] > both else "less than the sum")
            text += f", {how} of their single shares ({100 * both:.0f} %, seed spreads added: ± {100 * spread:.0f})"
        out.append(text + ".")
    return out


def table(rows: list[dict]) -> str:
    head = ["setting", "bits (first / hidden / read-out), T", "test acc %", "gain (points)",
            "share of gap to float %", "weight storage (bits)", "synaptic ops / sample", "ops x bits / sample", "seeds"]
    body = []
    for r in rows:
        kind, kw = model_kwargs(r["key"])
        if kind == "float":
            bits = "32 / 32 / 32, -"
        else:
            b = r["layer_bits"] or []
            bits = " / ".join(str(x) for x in b) + f", T = {kw['timesteps']}"
        base = r["key"] == "base"
        body.append([r["label"], bits, common.fmt_pm(r["tail_accuracy"], 100, 2)
                     + (f" ({r['diverged']} diverged)" if r["diverged"] else ""),
                     "0 (reference)" if base else f"{_fmt(100 * r['gain_mean'], '+.2f')} ± {_fmt(100 * r['gain_std'], '.2f')}",
                     "0 (reference)" if base else f"{_fmt(100 * r['share_mean'], '.0f')} ± {_fmt(100 * r['share_std'], '.0f')}",
                     f"{r['weight_storage_bits']:,}" if r["weight_storage_bits"] is not None else "n/a",
                     _fmt(r["synaptic_ops_per_sample"], ",.0f") if kind != "float" else "(dense)",
                     _fmt(r["bit_ops_per_sample"], ",.0f") if kind != "float" else "(dense)",
                     len(r["seeds"])])
    return common.format_table(head, body, align="llrrrrrrr")


def figure(rows: list[dict], out: Path, partial: str = "") -> None:
    """Left: test accuracy per setting (seeds as dots, mean ± std), the all-1-bit and float
    means as lines. Right: each setting's share of the gap to float (mean ± std over seeds)."""
    from tbnn.viz.style import new_figure

    common.pyplot()
    fig, (a1, a2) = new_figure(10.0, 4.2, nrows=1, ncols=2)
    labels = [r["label"] for r in rows]
    y = list(range(len(rows)))[::-1]
    for yi, r in zip(y, rows):
        c = "0.35" if r["key"] in ("base", "float") else ("C0" if r["key"] in SINGLE else "C1")
        accs = [100 * v for v in r["tail_accuracy"] if v is not None]
        a1.scatter(accs, [yi] * len(accs), s=10, color=c, alpha=0.5, linewidths=0, zorder=2)
        if math.isfinite(r["accuracy_mean"]):
            a1.errorbar([100 * r["accuracy_mean"]], [yi], xerr=[100 * r["accuracy_std"]], fmt="o", color=c,
                        ms=5, capsize=2, zorder=3)
        if r["key"] not in ("base", "float") and math.isfinite(r["share_mean"]):
            a2.barh([yi], [100 * r["share_mean"]], color=c, alpha=0.7, height=0.6)
            a2.errorbar([100 * r["share_mean"]], [yi], xerr=[100 * r["share_std"]], fmt="none", ecolor="k",
                        capsize=2, elinewidth=0.9)
            for s in r["share"]:
                if s is not None:
                    a2.scatter([100 * s], [yi], s=9, color="k", zorder=3, linewidths=0)
    for key, ls in (("base", ":"), ("float", "--")):
        r = next((r for r in rows if r["key"] == key), None)
        if r is not None and math.isfinite(r["accuracy_mean"]):
            a1.axvline(100 * r["accuracy_mean"], color="0.5", ls=ls, lw=0.8)
    for a in (a1, a2):
        a.set_yticks(y, labels if a is a1 else [""] * len(y))
        a.set_ylim(-0.6, len(rows) - 0.4)
        a.grid(axis="x", alpha=0.3, lw=0.5)
    a1.set_xlabel("test accuracy (%), mean of the last 5 epochs\n(dots: seeds; marker, bar: mean ± std; "
                  "dotted: all 1-bit, dashed: float)")
    a1.set_title("mnist1d MLP 40-256-256-10")
    a1.set_ylabel("setting (the rest at 1 bit, T = 4)")
    a2.set_ylabel("setting (rows as on the left)")
    a2.axvline(50, color="0.5", ls=":", lw=0.8)
    a2.axvline(100, color="0.5", ls="--", lw=0.8)
    a2.axvline(0, color="k", lw=0.6)
    a2.set_xlabel("share of the gap to float closed (%)\n(bar: mean; line: ± std; dots: seeds; "
                  "dotted: half, dashed: all)")
    a2.set_title("one component at 8 bits (blue), combined (orange)" + partial)
    common.save_figure(fig, out, "bit_gap.png")


def _cpu() -> str:
    from tbnn.runtime.machine import describe_cpu

    return describe_cpu().removeprefix("CPU: ")


def write(args, runs: dict[str, list[dict]], settings: dict, total: int) -> dict:
    """Write the JSON, Markdown and figure of the runs so far (labelled partial if incomplete)."""
    rows = summarise(runs)
    done = sum(len(v) for v in runs.values())
    partial = "" if done >= total else f" (partial: {done} of {total} runs)"
    tab = table(rows)
    lines = [f"# Where the 1-bit gap comes from (mnist1d MLP){partial}", "",
             f"Recipe (every setting): {settings['recipe']}; base model: {settings['base']}; dataset {DATASET}; "
             f"seeds {settings['seeds']}" + (f"; n_train={settings['n_train']}, n_test={settings['n_test']}"
                                             if settings["n_train"] else "") + ".",
             "Test accuracy in % (mean ± population std over seeds) of the mean of the last 5 epochs. Gain and "
             "share are paired by seed: share = (acc - acc_1bit) / (acc_float - acc_1bit) per seed, then mean ± "
             "std. Weight storage: codes at their width plus two 32-bit scalars per output channel, 32 bits per "
             "float parameter. Synaptic operations per sample: from the binary-event simulation of "
             f"{settings['sim_samples']} test samples (each spike times the synapses it reaches); ops x bits "
             "weights each operation by the width of its weight (a proxy for the accumulator work).", "",
             f"Machine: {_cpu()}; one thread per process.", "", tab, "", "## Verdict", ""]
    lines += [f"- {s}" for s in verdict(rows)]
    lines += ["", "Made by `python simulations/bit_gap.py" + (" --quick" if args.quick else "") + "` (or in two "
              "processes, `--out A` and `--reverse --out B`, combined by `--merge A --merge B`); this file by "
              f"`{common.run_info(args)['command']}`.", ""]
    md = "\n".join(lines)
    result = {"settings": settings, "complete": not partial, "runs_done": done, "runs_total": total,
              "rows": rows, "runs": runs, "verdict": verdict(rows), "table_markdown": tab,
              "info": common.run_info(args)}
    common.write_json(args.out, "bit_gap.json", result)
    common.write_text(args.out, "bit_gap.md", md)
    if rows:
        figure(rows, args.out, partial)
    return result


def main(argv: list[str] | None = None) -> dict:
    p = common.make_parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=None, help=f"number of seeds (0, 1, ...); default {len(SEEDS)}")
    p.add_argument("--only", default=None,
                   help="comma-separated setting keys to run (default: all): " + ", ".join(s[0] for s in SETTINGS))
    p.add_argument("--reverse", action="store_true",
                   help="run the grid's jobs in reverse order (a second process on another --out meets the first "
                        "half way; combine them with --merge)")
    p.add_argument("--merge", type=Path, action="append", default=[], metavar="DIR",
                   help="fold the finished runs of DIR/bit_gap.json (same settings) into --out and rewrite the "
                        "table and figure; repeatable; trains nothing")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished runs of --out/bit_gap.json and run the missing ones (of its settings "
                        "and of --only)")
    args = common.parse_args(p, argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be an integer >= 1; got {args.seeds}.")
    keys = [s[0] for s in SETTINGS]
    if args.only:
        bad = sorted(set(args.only.split(",")) - set(keys))
        if bad:
            p.error(f"--only names unknown settings {bad}; choose from {', '.join(keys)}.")
        keys = [k for k in keys if k in args.only.split(",")]
    if args.replot:
        result = common.read_result(args.out, "bit_gap.json")
        figure(result["rows"], args.out, "" if result["complete"] else
               f" (partial: {result['runs_done']} of {result['runs_total']} runs)")
        return result
    recipe = dict(RECIPE)
    seeds = list(range(args.seeds or len(SEEDS)))
    n_train = n_test = None
    sim_samples = SIM_SAMPLES
    if args.quick:
        recipe["epochs"] = QUICK["epochs"]
        n_train, n_test, sim_samples = QUICK["n_train"], QUICK["n_test"], QUICK["sim_samples"]
        seeds = seeds[:1] if args.seeds is None else seeds
    settings = {"recipe": recipe, "base": BASE, "seeds": seeds, "n_train": n_train, "n_test": n_test,
                "sim_samples": sim_samples, "keys": keys, "high_bits": HIGH}
    runs: dict[str, list[dict]] = {}

    def same(old: dict) -> bool:
        return ({k: v for k, v in old["settings"].items() if k != "keys"}
                == {k: v for k, v in json_ready(settings).items() if k != "keys"})

    if args.merge:
        args.resume = (args.out / "bit_gap.json").is_file()
        for d in args.merge:
            other = common.read_result(d, "bit_gap.json")
            if not same(other):
                p.error(f"--merge: {d}/bit_gap.json has other settings than this call; merge grids of the same "
                        "settings (and --quick, --seeds).")
            for k, rr in other["runs"].items():
                for r in rr:
                    r.pop("layer_storage_bits", None)  # an earlier version's per-layer count (it was wrong)
                    have = runs.setdefault(k, [])
                    if r["seed"] in seeds and not any(h["seed"] == r["seed"] for h in have):
                        have.append(r)
    if args.resume:
        old = common.read_result(args.out, "bit_gap.json")
        if not same(old):
            p.error("--resume: the saved grid in --out has other settings; run without --resume or use another --out.")
        for k, rr in runs.items():  # merged runs the saved grid lacks
            old["runs"].setdefault(k, []).extend(r for r in rr if not any(h["seed"] == r["seed"]
                                                                          for h in old["runs"][k]))
        keys = [k for k in (s[0] for s in SETTINGS) if k in keys or k in old["runs"]]  # continue and extend
        runs = {k: [r for r in old["runs"].get(k, []) if r["seed"] in seeds] for k in keys}
        runs = {k: v for k, v in runs.items() if v}
        settings["keys"] = keys
    # seed-major: a grid stopped early still has every setting paired with the same seeds
    jobs = [(k, s) for s in seeds for k in keys if not any(r["seed"] == s for r in runs.get(k, []))]
    if args.reverse:
        jobs.reverse()
    if args.merge:
        keys = [k for k in (s[0] for s in SETTINGS) if k in runs]
        settings["keys"] = keys
        jobs = []
    total = len(keys) * len(seeds)
    for k, s in common.progress(jobs, args.progress, "bit gap"):
        if not args.progress and not args.quick:
            print(f"  {k} seed {s}", flush=True)
        runs.setdefault(k, []).append(run_one(k, s, recipe, n_train, n_test, sim_samples))
        runs = {k2: runs[k2] for k2 in keys if k2 in runs}  # settings order
        write(args, runs, settings, total)
    result = write(args, runs, settings, total)
    print(result["table_markdown"])
    return result


if __name__ == "__main__":
    main()
