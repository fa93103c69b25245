"""Sparse activity: accuracy against the fraction of hidden neurons active per step, by activity regularisation.

Trains the TBN MLP (T = 4, 1-bit weights, block 128, the results-table recipe: 60 epochs,
lr 3e-3, batch 64) on ``digits`` and ``mnist1d`` with the activity regulariser of
:mod:`tbnn.nn.regularize` (loss = cross-entropy + W (A - P)^2, A the fraction of hidden
neurons active per step, P = 0 here) for a sweep of weights ``W`` and three seeds, and
measures on the test split: accuracy, fraction of hidden neurons active per step (pooled
over the hidden layers, and per layer), the grid's floor (top neuron of every non-silent
block), spikes and synaptic operations per inference (input and hidden layers, each spike
costing one operation per postsynaptic target, counted by the event simulation
:func:`tbnn.simulate`).
The figure draws accuracy against each with the cortical band: < 1 % of neurons active at
once (Lennie 2003, Curr Biol 13:493) and at most ~15 % allowed by the energy budget
(Attwell & Laughlin 2001, J Cereb Blood Flow Metab 21:1133).

Two surrogate gradients are swept on digits (``grid``: the grid value with its block
maximum, the default; ``code``: the DAT code value); mnist1d uses ``grid``.

    python simulations/sparse_activity.py            # full sweep (about 15 min on 1 free core)
    python simulations/sparse_activity.py --quick    # seconds, for the tests
    python simulations/sparse_activity.py --replot   # redraw the figure from the JSON

Writes ``sparse_activity.json``, ``sparse_activity.md`` and ``sparse_activity.png`` into ``--out``.

``--control`` sweeps the rate controllers instead (``rate_target=P`` alone, one set of
defaults, no weight): ``lagrangian``, the default (homeostatic thresholds per layer,
:mod:`tbnn.nn.homeostasis`, and a leaky Lagrange multiplier per layer by dual ascent,
:mod:`tbnn.nn.multiplier`, both chasing a target annealed from the first step's activity to
``P`` over the first 30 % of training) and ``thresholds``, the first version (per-neuron
thresholds alone, step 0.05, ``P`` from the start), for each target ``P``, hidden grid
(``rectify``, ``running``) and input code (``--input-encodings``: ``binary``, the model's, and
e.g. ``latency``, at most one spike per input neuron), paired over seeds with the unregularised
network of the same seed, grid and input code, and adds per point the analog values sent
per inference (gains and offsets per block and sample) and the spikes-only accuracy (read-out
constants fitted on the training split, :func:`tbnn.nn.readout.spikes_only`). At the sparsest
target met (every hidden layer within ±20 %) it adds the biology panel: per hidden layer the
rate distribution of the active neurons against a fitted log-normal (Kolmogorov–Smirnov with a
bootstrap p-value that accounts for the fit, "not rejected" or "rejected"), silent neurons
counted, CV, Fano factor and correlations (:func:`tbnn.analysis.analyze_spikes`). It writes
``sparse_control.json``, ``.md`` and ``.png``; ``--resume`` keeps the runs of an interrupted
sweep of the same settings. ``--epochs`` and ``--seeds`` shorten it to what the machine allows:

    python simulations/sparse_activity.py --control --datasets digits --epochs 20 --seeds 0 --targets 0.05 0.01
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from tbnn.core.validate import json_ready  # noqa: E402

RECIPE: dict[str, Any] = dict(epochs=60, batch=64, lr=3e-3)
MODEL: dict[str, Any] = dict(model="tbn", hidden=256, layers=2, timesteps=4, weight_bits=1,
                             readout_bits=1, lam=0.01, block=128, encoding="binary")
SEEDS = (0, 1, 2)
#: (dataset, surrogate) -> weights W swept (P = 0)
SWEEP: dict[tuple[str, str], tuple[float, ...]] = {
    ("digits", "grid"): (0.0, 10.0, 30.0, 100.0, 200.0, 300.0, 1000.0, 3000.0, 10000.0),
    ("digits", "code"): (100.0, 300.0, 1000.0),
    ("mnist1d", "grid"): (0.0, 30.0, 300.0, 3000.0),
}
QUICK_SWEEP = {("digits", "grid"): (0.0, 100.0), ("digits", "code"): (100.0,),
               ("mnist1d", "grid"): (0.0, 100.0)}
QUICK = dict(epochs=2, n_train=256, n_test=128)
LENNIE, ATTWELL = 0.01, 0.15


def _measure(net, x, res=None) -> dict[str, Any]:
    """Activity, grid floor, spikes and synaptic operations on inputs x, from the event
    simulation of the network (:func:`tbnn.simulate`, exact engine; ``res``: one already run)."""
    import numpy as np

    import tbnn

    res = tbnn.simulate(net, x, schedule="folded") if res is None else res
    hidden = [k for k in res.spikes if k != "input"]
    S, T = res.spikes[hidden[0]].shape[:2]
    n_hidden = sum(res.spikes[k].shape[2] for k in hidden)
    pooled = sum(float(res.spikes[k].sum()) for k in hidden) / (S * T * n_hidden)
    floors = {}
    for k in hidden:  # top neuron of every non-silent block of MODEL["block"] fires in every step
        a = res.spikes[k]
        nb = -(-a.shape[2] // MODEL["block"])
        blocks = [a[:, :, j * MODEL["block"]:(j + 1) * MODEL["block"]].any(axis=(1, 2)) for j in range(nb)]
        floors[k] = float(np.sum(blocks, axis=0).mean() / a.shape[2])
    lay = {d["name"]: d for d in res.summary["layers"]}
    return {
        "fraction_active": pooled,
        "fraction_active_layers": {k: float(res.spikes[k].mean()) for k in hidden},
        "floor_layers": floors,
        "spikes_per_inference": res.summary["spikes_per_sample"],
        "hidden_spikes_per_inference": sum(lay[k]["spikes"] for k in hidden) / S,
        "synaptic_ops_per_inference": res.summary["synaptic_ops_per_sample"],
    }


def _dataset(dataset: str, seed: int, quick: bool, cache: dict):
    """The dataset of a seed (loaded once per sweep; the quick subset with ``quick``)."""
    from tbnn.io.datasets import load_dataset

    sub = QUICK if quick else {}
    if (dataset, seed) not in cache:
        cache[dataset, seed] = load_dataset(dataset, seed=seed, n_train=sub.get("n_train"), n_test=sub.get("n_test"))
    return cache[dataset, seed]


def _run(dataset: str, surrogate: str, W: float, seed: int, quick: bool, cache: dict) -> dict:

    import tbnn
    from tbnn.nn.models import build_model
    from tbnn.nn.regularize import ActivityRegularizer
    from tbnn.train.trainer import evaluate, model_config_for

    ds = _dataset(dataset, seed, quick, cache)
    common.seed_everything(seed)
    net = build_model(model_config_for(ds, **MODEL))
    reg = ActivityRegularizer(net, target=0.0, weight=W, surrogate=surrogate)
    epochs = QUICK["epochs"] if quick else RECIPE["epochs"]
    with common.Timer() as t:
        tbnn.fit(net, (ds.x_train, ds.y_train), epochs=epochs, lr=RECIPE["lr"], batch=RECIPE["batch"],
                 seed=seed, loss=reg, progress=False)
    acc, _ = evaluate(net, ds.x_test, ds.y_test)
    m = _measure(net, ds.x_test)
    reg.remove()
    return {"dataset": dataset, "surrogate": surrogate, "W": W, "P": 0.0, "seed": seed,
            "test_accuracy": acc, "seconds": t.seconds, **m}


def _points(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds, per (dataset, surrogate, W)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["surrogate"], r["W"]), []).append(r)
    out = []
    for (ds, sur, W), rs in groups.items():
        p = {"dataset": ds, "surrogate": sur, "W": W, "seeds": len(rs)}
        for k in ("test_accuracy", "fraction_active", "spikes_per_inference", "hidden_spikes_per_inference",
                  "synaptic_ops_per_inference"):
            p[k], p[k + "_std"] = common.mean_std(r[k] for r in rs)
        layers = rs[0]["fraction_active_layers"]
        p["fraction_active_layers"] = {k: common.mean_std(r["fraction_active_layers"][k] for r in rs)[0]
                                       for k in layers}
        p["floor_layers"] = {k: common.mean_std(r["floor_layers"][k] for r in rs)[0] for k in rs[0]["floor_layers"]}
        out.append(p)
    return out


def _verdicts(points: list[dict]) -> dict[str, Any]:
    """The issue's targets: <= 5 % active within 1 point of the unregularised mean; the lowest activity."""
    out: dict[str, Any] = {}
    for ds in sorted({p["dataset"] for p in points}):
        pts = [p for p in points if p["dataset"] == ds]
        base = next((p for p in pts if p["W"] == 0.0), None)
        entry: dict[str, Any] = {"unregularised": base}
        if base is not None:
            ok = [p for p in pts if p["fraction_active"] <= 0.05
                  and p["test_accuracy"] >= base["test_accuracy"] - 0.01]
            entry["at_most_5pct_within_1pt"] = sorted(ok, key=lambda p: -p["test_accuracy"])
            under5 = [p for p in pts if p["fraction_active"] <= 0.05]
            entry["best_at_most_5pct"] = max(under5, key=lambda p: p["test_accuracy"]) if under5 else None
        entry["lowest_activity"] = min(pts, key=lambda p: p["fraction_active"])
        under1 = [p for p in pts if p["fraction_active"] <= LENNIE]
        entry["best_at_most_1pct"] = max(under1, key=lambda p: p["test_accuracy"]) if under1 else None
        out[ds] = entry
    return out


def _markdown(res: dict) -> str:
    rows = []
    for p in res["points"]:
        lay = p["fraction_active_layers"]
        rows.append([p["dataset"], p["surrogate"], f"{p['W']:g}",
                     f"{100 * p['test_accuracy']:.1f} ± {100 * p['test_accuracy_std']:.1f}",
                     f"{100 * p['fraction_active']:.2f} ± {100 * p['fraction_active_std']:.2f}",
                     " / ".join(f"{100 * v:.2f}" for v in lay.values()),
                     " / ".join(f"{100 * v:.2f}" for v in p["floor_layers"].values()),
                     f"{p['spikes_per_inference']:.0f}", f"{p['synaptic_ops_per_inference']:.3g}"])
    table = common.format_table(
        ["dataset", "surrogate", "W", "test acc. %", "active/step %", "per layer %", "floor %",
         "spikes/inf.", "syn. ops/inf."], rows)
    lines = ["# Sparse activity: accuracy against the fraction of hidden neurons active per step", "",
             f"TBN MLP {MODEL['hidden']}x{MODEL['layers']}, T = {MODEL['timesteps']}, 1-bit weights, block "
             f"{MODEL['block']}; {res['settings']['epochs']} epochs, lr {RECIPE['lr']}, seeds "
             f"{res['settings']['seeds']}; loss = CE + W (A - P)^2, P = 0. Mean ± std over seeds "
             "(test split). Activity pooled over the hidden layers; per layer hidden1 / hidden2; floor: "
             "top neuron of each non-silent block (fires every step). Spikes and synaptic operations per "
             "inference include the input layer.", "", table, ""]
    for ds, v in res["verdicts"].items():
        base = v.get("unregularised")
        lines.append(f"**{ds}**: unregularised "
                     + (f"{100 * base['test_accuracy']:.1f} ± {100 * base['test_accuracy_std']:.1f} % at "
                        f"{100 * base['fraction_active']:.1f} % active" if base else "n/a") + ". ")
        ts = v.get("at_most_5pct_within_1pt") or []
        lines.append("<= 5 % active within 1 point: " + ("; ".join(
            f"W = {t['W']:g} ({t['surrogate']}): {100 * t['test_accuracy']:.1f} ± "
            f"{100 * t['test_accuracy_std']:.1f} % at {100 * t['fraction_active']:.2f} ± "
            f"{100 * t['fraction_active_std']:.2f} % active" for t in ts) + "." if ts
            else "not reached" + (
                f" (best at <= 5 %: W = {v['best_at_most_5pct']['W']:g}, "
                f"{100 * v['best_at_most_5pct']['test_accuracy']:.1f} % at "
                f"{100 * v['best_at_most_5pct']['fraction_active']:.2f} %)." if v.get("best_at_most_5pct")
                else ".")))
        lo = v["lowest_activity"]
        lines.append(f"Lowest activity: {100 * lo['fraction_active']:.2f} % (W = {lo['W']:g}, {lo['surrogate']}) "
                     f"at {100 * lo['test_accuracy']:.1f} %. <= 1 % active: " + (
                         f"{100 * v['best_at_most_1pct']['test_accuracy']:.1f} % at best." if v.get("best_at_most_1pct")
                         else "not reached."))
        lines.append("")
    return "\n".join(lines)


def _figure(res: dict, out: Path) -> None:
    plt = common.pyplot()
    datasets = [d for d in ("digits", "mnist1d") if any(p["dataset"] == d for p in res["points"])]
    cols = (("fraction_active", "hidden neurons active per step", True),
            ("spikes_per_inference", "spikes per inference", True),
            ("synaptic_ops_per_inference", "synaptic operations per inference", True))
    fig, axes = plt.subplots(len(datasets), 3, figsize=(12, 3.6 * len(datasets)), squeeze=False,
                             constrained_layout=True)
    style = {"grid": ("o-", "C0", "grid-value surrogate"), "code": ("s--", "C3", "code surrogate (DAT q)")}
    for row, ds in enumerate(datasets):
        pts = [p for p in res["points"] if p["dataset"] == ds]
        base = next((p for p in pts if p["W"] == 0.0), None)
        for col, (key, label, logx) in enumerate(cols):
            ax = axes[row][col]
            if key == "fraction_active":
                ax.axvspan(1e-4, LENNIE, color="tab:green", alpha=0.25, lw=0,
                           label="cortex: < 1 % (Lennie 2003)")
                ax.axvspan(LENNIE, ATTWELL, color="tab:green", alpha=0.1, lw=0,
                           label="energy budget: ≤ 15 % (Attwell & Laughlin 2001)")
                fl = [v for p in pts for v in p["floor_layers"].values()]
                if fl:
                    ax.axvline(1.0 / MODEL["block"], color="k", ls=":", lw=1,
                               label=f"grid floor 1/block (block {MODEL['block']})")
            for sur, (fmt, c, lab) in style.items():
                sp = sorted([p for p in pts if p["surrogate"] == sur or (p["W"] == 0 and sur == "grid")],
                            key=lambda p: p[key])
                if not sp or (sur == "code" and all(p["surrogate"] != "code" for p in sp)):
                    continue
                ax.errorbar([p[key] for p in sp], [100 * p["test_accuracy"] for p in sp],
                            xerr=[p[key + "_std"] for p in sp], yerr=[100 * p["test_accuracy_std"] for p in sp],
                            fmt=fmt, color=c, ms=4, lw=1, capsize=2, label=lab)
            if base is not None:
                ax.axhline(100 * (base["test_accuracy"] - 0.01), color="0.5", lw=0.8, ls="--",
                           label="unregularised - 1 point")
            # collapsed runs (far below the rest) would squash the frontier: list them instead
            accs = sorted(100 * p["test_accuracy"] for p in pts)
            lo = min(a for a in accs if a >= accs[-1] - 30) - 2
            off = [p for p in pts if 100 * p["test_accuracy"] < lo]
            if off:
                ax.set_ylim(lo, accs[-1] + 1.5)
                ax.text(0.03, 0.03, "off scale (collapsed):\n" + "\n".join(
                    f"{p['surrogate']} W={p['W']:g}: {100 * p['test_accuracy']:.0f} % at "
                    f"{(100 * p['fraction_active']) if key == 'fraction_active' else p[key]:.3g}"
                    f"{' %' if key == 'fraction_active' else ''}" for p in off),
                    transform=ax.transAxes, fontsize=6, color="C3", va="bottom", clip_on=True)
            if logx:
                ax.set_xscale("log")
                common.log_ticks(ax)
            if key == "fraction_active":
                xs = [p[key] for p in pts if p[key] > 0]
                ax.set_xlim(min(min(xs) / 2, 3e-3), max(0.5, max(xs) * 1.5))
                ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:g} %"))
            ax.set_xlabel(label)
            ax.set_ylabel(f"{ds} test accuracy (%)")
            ax.grid(alpha=0.3, which="both", lw=0.4)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=3)
    fig.suptitle("Activity regularisation, W swept (values in sparse_activity.md): accuracy against activity",
                 fontsize=10)
    common.save_figure(fig, out, "sparse_activity.png")


#: rate-controller sweep: dataset -> targets P (and None: the unregularised network of each seed)
CONTROL: dict[str, tuple[float | None, ...]] = {"digits": (None, 0.05, 0.02, 0.01), "mnist1d": (None, 0.05, 0.02, 0.01)}
CONTROL_GRIDS = ("rectify", "running")
#: rate controllers: name -> (adaptive thresholds, ActivityRegularizer keywords, label)
CONTROLLERS: dict[str, tuple[str, dict[str, float], str]] = {
    "lagrangian": ("layer", {}, "thresholds per layer + leaky Lagrange multiplier, target annealed over "
                                "the first 30 % of training (the default)"),
    "thresholds": ("neuron", {"step": 0.05, "multiplier_step": 0.0, "anneal": 0.0},
                   "thresholds alone (per neuron, η = 0.05, target P from the start)"),
}
QUICK_CONTROL = {"digits": (None, 0.05)}
#: the registered firing measures of the biology panel (tbnn.analysis.measures)
BIO_MEASURES = ("cv", "fano_trial", "correlation", "noise_correlation")


def _biology(spikes: dict, labels) -> dict[str, dict[str, Any]]:
    """Per hidden layer: how many neurons fired each spike count, the silent ones, the log-normal test of
    the active neurons' rates (Lilliefors, parametric bootstrap, counted rates spread over their
    quantum) and CV, Fano factor and correlations against their Bernoulli null and biological
    band: :func:`tbnn.analysis.analyze_spikes` at a nominal 1 ms per step (the statistics used
    here do not depend on it)."""
    import math

    import numpy as np

    from tbnn.analysis import analyze_spikes, spike_counts

    out = {}
    for k, a in spikes.items():
        r = analyze_spikes(a, dt_ms=1.0, labels=labels, seed=0, max_pair_neurons=a.shape[2])
        rd, m = r["rate_distribution"], r["measures"]
        counts, neurons = np.unique(spike_counts(a), return_counts=True)
        entry: dict[str, Any] = {
            "neurons": r["neurons"], "steps": r["samples"] * r["timesteps"],
            "count_histogram": {str(c): int(n) for c, n in zip(counts, neurons)},  # spikes -> neurons
            "n_silent": rd["n_silent"], "lognormal_mu": rd["lognormal_mu"] - math.log(1000.0),  # ln(spikes/step)
            "lognormal_sigma": rd["lognormal_sigma"], "lilliefors_pvalue": rd["lilliefors_pvalue"],
            "n_boot": rd["n_boot"], "lognormal_verdict": rd["verdict"]}
        for key in BIO_MEASURES:
            e = m[key]
            entry[key] = {"value": e["value"], "statistic": e["statistic"], "verdict": e["verdict"],
                          "null": e["null"]["analytic"]["value"] if e["null"]["analytic"] else None,
                          "band": [e["biology"]["low"], e["biology"]["high"], e["biology"]["citation"]]
                          if e["biology"] else None, "n": e["summary"]["n"]}
        out[k] = entry
    return out


def _run_control(dataset: str, grid: str, controller: str | None, P: float | None, seed: int, enc: str,
                 Q: float | None, epochs: int, quick: bool, cache: dict) -> dict:
    import tbnn
    from tbnn.nn.models import build_model
    from tbnn.nn.readout import spikes_only
    from tbnn.nn.regularize import ActivityRegularizer
    from tbnn.train.trainer import evaluate, model_config_for

    ds = _dataset(dataset, seed, quick, cache)
    common.seed_everything(seed)
    kind, kw, _ = CONTROLLERS[controller] if controller else (None, {}, "")
    net = build_model(model_config_for(ds, **MODEL, hidden_grid=grid, adaptive_threshold=kind,
                                       input_encoding=None if enc == MODEL["encoding"] else enc,
                                       input_headroom=None if Q is None else 1.0))
    reg = ActivityRegularizer(net, P, input_target=Q, **kw) if P is not None else None
    with common.Timer() as t:
        tbnn.fit(net, (ds.x_train, ds.y_train), epochs=epochs, lr=RECIPE["lr"], batch=RECIPE["batch"],
                 seed=seed, progress=False, loss=reg)
    state = {"multipliers": dict(reg.multipliers), "thresholds": reg.thresholds()} if reg is not None else {}
    if Q is not None:
        state["input_headroom"] = float(net.encoder.headroom)
    if reg is not None:
        reg.remove()
    acc, _ = evaluate(net, ds.x_test, ds.y_test)
    with spikes_only(net, ds.x_train):
        acc_so, _ = evaluate(net, ds.x_test, ds.y_test)
    res = tbnn.simulate(net, ds.x_test, schedule="folded")
    sim = res.summary
    m = _measure(net, ds.x_test, res)
    hidden = {k: v for k, v in res.spikes.items() if k != "input"}
    return {"dataset": dataset, "grid": grid, "controller": controller, "P": P, "seed": seed, "input_encoding": enc,
            "input_rate_target": Q, "test_accuracy": acc,
            "spikes_only_accuracy": acc_so, "seconds": t.seconds, **m, "rate_control": state,
            "analog_values_per_inference": sim["analog_values_per_sample"],
            "synaptic_ops_layers": {d["name"]: d["synaptic_ops"] / sim["samples"] for d in sim["layers"]},
            "analog_values_layers": {d["name"]: d["analog_values_per_sample"] for d in sim["layers"]},
            "engine_seconds": sim["engine_seconds"], "max_logit_difference": sim["max_logit_difference"],
            "biology": _biology(hidden, ds.y_test.numpy())}


def _control_points(runs: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (dataset, grid, controller, P), with accuracy differences paired by
    seed against the unregularised network (P = None) of the same dataset, grid and input code (an
    input rate target Q is part of the regularisation: its runs pair with the code's own baseline)."""
    base = {(r["dataset"], r["grid"], _code(r), r["seed"]): r for r in runs if r["P"] is None}
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["grid"], _enc(r), r.get("controller"), r["P"]), []).append(r)
    out = []
    for (ds, grid, enc, ctrl, P), rs in groups.items():
        p: dict[str, Any] = {"dataset": ds, "grid": grid, "input_encoding": _code(rs[0]),
                             "input_rate_target": rs[0].get("input_rate_target"), "controller": ctrl, "P": P,
                             "seeds": sorted(r["seed"] for r in rs)}
        for k in ("test_accuracy", "spikes_only_accuracy", "fraction_active", "synaptic_ops_per_inference",
                  "analog_values_per_inference", "engine_seconds"):
            p[k], p[k + "_std"] = common.mean_std(r[k] for r in rs)
        p["fraction_active_layers"] = {k: common.mean_std(r["fraction_active_layers"][k] for r in rs)[0]
                                       for k in rs[0]["fraction_active_layers"]}
        p["synaptic_ops_layers"] = {k: common.mean_std(r["synaptic_ops_layers"][k] for r in rs)[0]
                                    for k in rs[0]["synaptic_ops_layers"]}
        code = _code(rs[0])
        pairs = [(r, base[(ds, grid, code, r["seed"])]) for r in rs if (ds, grid, code, r["seed"]) in base]
        p["paired_seeds"] = len(pairs)
        p["accuracy_difference"], p["accuracy_difference_std"] = common.mean_std(
            r["test_accuracy"] - b["test_accuracy"] for r, b in pairs) if pairs else (None, None)
        p["spikes_only_difference"] = common.mean_std(
            r["spikes_only_accuracy"] - b["spikes_only_accuracy"] for r, b in pairs)[0] if pairs else None
        p["synaptic_ops_ratio"] = (common.mean_std(b["synaptic_ops_per_inference"] / r["synaptic_ops_per_inference"]
                                                   for r, b in pairs)[0] if pairs else None)
        if P:  # the achieved hidden fraction against the target: each layer within +-20 %?
            p["within_20pct"] = all(abs(v / P - 1) <= 0.2 for v in p["fraction_active_layers"].values())
        out.append(p)
    order = {c: i for i, c in enumerate(CONTROLLERS)}
    return sorted(out, key=lambda p: (p["dataset"], _enc(p), p["grid"],
                                      -(p["P"] if p["P"] is not None else 1), order.get(p["controller"], -1)))


def _code(r: dict) -> str:
    """A run's or point's input code (runs written before the option: the model's code)."""
    return r.get("input_encoding") or MODEL["encoding"]


def _enc(r: dict) -> str:
    """A run's or point's input: its code, and its input rate target Q where one was given."""
    Q = r.get("input_rate_target")
    return _code(r) + ("" if Q is None else f" Q {100 * Q:g} %")


def _sparsest(res: dict) -> dict[str, dict]:
    """Per dataset, the point of the biology panel: the smallest target met (every layer within
    ±20 %), the most accurate there; with its runs, and the unregularised runs of its grid."""
    out = {}
    for ds in sorted({p["dataset"] for p in res["points"]}):
        met = [p for p in res["points"] if p["dataset"] == ds and p.get("within_20pct")]
        if not met:
            continue
        pt = min(met, key=lambda p: (p["P"], -p["test_accuracy"]))
        pick = [r for r in res["runs"] if (r["dataset"], r["grid"], _enc(r), r.get("controller"), r["P"]) ==
                (ds, pt["grid"], _enc(pt), pt["controller"], pt["P"]) and "biology" in r]
        base = [r for r in res["runs"] if (r["dataset"], r["grid"], _code(r), r["P"]) ==
                (ds, pt["grid"], _code(pt), None) and "biology" in r]
        if pick:
            out[ds] = {"point": pt, "runs": pick, "baseline": base}
    return out


def _bio_rows(runs: list[dict], what: str) -> list[list[str]]:
    """One row per hidden layer: silent neurons, log-normal test per seed, the measures (mean over seeds)."""
    rows = []
    for layer in runs[0]["biology"]:
        bs = [r["biology"][layer] for r in runs]
        ok = sum(b["lognormal_verdict"].startswith("not rejected") for b in bs)
        cells = [what, layer, " / ".join(str(b["n_silent"]) for b in bs) + f" of {bs[0]['neurons']}",
                 f"{common.mean_std(b['lognormal_sigma'] for b in bs)[0]:.2f}",
                 " / ".join(f"{b['lilliefors_pvalue']:.3g}" for b in bs),
                 f"not rejected in {ok}, rejected in {len(bs) - ok} of {len(bs)} seeds"]
        for key in BIO_MEASURES:
            e0 = bs[0][key]
            v = common.mean_std(b[key]["value"] for b in bs)[0]
            null = common.mean_std(b[key]["null"] for b in bs)[0]
            band = e0["band"]
            cells.append(f"{v:.3g} (null {null:.3g}" + (f"; cortex {band[0]:g}–{band[1]:g}" if band else "") + ")")
        rows.append(cells)
    return rows


def _bio_markdown(res: dict) -> list[str]:
    lines = []
    for ds, sel in _sparsest(res).items():
        pt = sel["point"]
        lines += [f"## Biology at the sparsest point that meets its target: {ds}", "",
                  f"{CONTROLLERS[pt['controller']][2]}, {pt['grid']} grid, {_enc(pt)} input code, "
                  f"P = {100 * pt['P']:g} % "
                  f"({pt['test_accuracy'] * 100:.1f} % accuracy), seeds {pt['seeds']}; beside it the "
                  "unregularised network of the same grid and input code. Test split, every hidden neuron; rates per step "
                  "over the test split. Log-normal: Kolmogorov–Smirnov statistic of the log-rates of the "
                  "active neurons against the normal fitted to them, p-value by parametric bootstrap "
                  "(Lilliefors 1967; counted rates spread over their quantum); silent neurons excluded and "
                  "counted. CV of ISIs (median over neurons), Fano factor (trial view: counts over the T "
                  "steps of each sample across samples of one class; mean), pairwise correlation of "
                  "binned trains and spike-count noise correlation (mean over pairs); null: independent "
                  "Bernoulli neurons of the same rates (tbnn.analysis; bands and citations there).", ""]
        rows = _bio_rows(sel["runs"], f"P = {100 * pt['P']:g} %") + (
            _bio_rows(sel["baseline"], "unregularised") if sel["baseline"] else [])
        lines += [common.format_table(["network", "layer", "silent neurons (per seed)", "σ(ln rate)",
                                       "Lilliefors p (per seed)", "log-normal at 5 %", "CV", "Fano (trial)",
                                       "correlation", "noise correlation"], rows), ""]
    return lines


def _control_markdown(res: dict) -> str:
    def pct(v, d=1):
        return "n/a" if v is None else f"{100 * v:.{d}f}"

    rows = []
    for p in res["points"]:
        rows.append([p["dataset"], _enc(p), p["grid"], p.get("controller") or "–",
                     "none" if p["P"] is None else f"{100 * p['P']:g} %",
                     f"{pct(p['test_accuracy'])} ± {pct(p['test_accuracy_std'])}",
                     "–" if p["P"] is None else f"{pct(p['accuracy_difference'])} ± {pct(p['accuracy_difference_std'])}",
                     pct(p["spikes_only_accuracy"]),
                     " / ".join(pct(v, 2) for v in p["fraction_active_layers"].values()),
                     "–" if p.get("within_20pct") is None else ("yes" if p["within_20pct"] else "no"),
                     f"{p['synaptic_ops_per_inference']:.3g}",
                     " / ".join(f"{v:.2g}" for v in p["synaptic_ops_layers"].values()),
                     "–" if p["synaptic_ops_ratio"] is None or p["P"] is None else f"{p['synaptic_ops_ratio']:.2f}x",
                     f"{p['analog_values_per_inference']:.0f}", f"{1e3 * p['engine_seconds']:.1f}"])
    table = common.format_table(
        ["dataset", "input code", "hidden grid", "controller", "target P", "test acc. %", "paired diff. (points)",
         "spikes-only acc. %", "active/step % (hidden1 / hidden2)", "within ±20 %", "syn. ops/inf.",
         "syn. ops by layer (in / h1 / h2)", "ops below baseline", "analog values/inf.", "engine ms (test split)"],
        rows)
    s = res["settings"]
    ctrl = "; ".join(f"{k}: {CONTROLLERS[k][2]}" for k in s.get("controllers", CONTROLLERS))
    return "\n".join([
        "# Sparse activity by rate control", "",
        f"TBN MLP {MODEL['hidden']}x{MODEL['layers']}, T = {MODEL['timesteps']}, 1-bit weights, block "
        f"{MODEL['block']}; {s['epochs']} epochs, lr {RECIPE['lr']}, batch {RECIPE['batch']}, seeds {s['seeds']}; "
        f"rate_target=P, no weight to tune. Controllers: {ctrl} (tbnn.nn.homeostasis, tbnn.nn.multiplier). "
        "Mean ± std over seeds (test split); paired differences against the unregularised network of the "
        "same seed, grid and input code. Spikes-only: read-out constants fitted on the training split. Analog values: "
        "gains and offsets per block and sample sent beside the spikes (per-sample read-out). Engine ms: "
        "tbnn.simulate's engine_seconds over the test split (folded schedule; mean over seeds; the sweep's machine "
        "and load, see run_info).", "", table, "",
        *_bio_markdown(res)])


def _bio_panel(ax, run: dict, base: dict | None, layer: str, title: str) -> None:
    """Histogram of log10(rate per step) of the active neurons with the fitted normal; the
    unregularised network's rates as a band (5th to 95th percentile of its neurons) and its median."""
    import math

    import numpy as np

    def log_rates(bio: dict):
        h = {int(c): n for c, n in bio["count_histogram"].items() if int(c) > 0}
        return np.log10(np.repeat(np.array(list(h), dtype=float), list(h.values())) / bio["steps"])

    b = run["biology"][layer]
    lr = log_rates(b)
    lo, hi = lr.min() - 0.15, lr.max() + 0.15
    if base:
        lb = log_rates(base["biology"][layer])
        q5, q50, q95 = np.percentile(lb, [5, 50, 95])
        ax.axvspan(q5, q95, color="0.85", lw=0, label=f"unregularised: 5–95 % of its {len(lb)} active neurons")
        ax.axvline(q50, color="0.4", ls="--", lw=1, label="unregularised: median")
        lo, hi = min(lo, q5 - 0.1), max(hi, q95 + 0.1)
    ax.hist(lr, bins=np.linspace(lr.min() - 0.15, lr.max() + 0.15, 26), density=True, color="C0", alpha=0.7,
            label=f"P = {100 * run['P']:g} %: {len(lr)} active, {b['n_silent']} silent")
    xs = np.linspace(lo, hi, 300)
    mu, sd = b["lognormal_mu"] / math.log(10), b["lognormal_sigma"] / math.log(10)
    ax.plot(xs, np.exp(-0.5 * ((xs - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), color="C3", lw=1.5,
            label=f"fitted log-normal: {b['lognormal_verdict']}\n(Lilliefors p = {b['lilliefors_pvalue']:.2g})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend above the bars
    ax.set_xlabel("log10 spikes per step (test split)")
    ax.set_ylabel("density of neurons")
    cv, fano, corr = (b[key]["value"] for key in ("cv", "fano_trial", "correlation"))
    ax.set_title(f"{title}\nCV {cv:.2f}, Fano {fano:.2f}, corr. {corr:.3f}", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")


def _control_figure(res: dict, out: Path) -> None:
    plt = common.pyplot()
    datasets = sorted({p["dataset"] for p in res["points"]})
    sel = _sparsest(res)
    nbio = sum(len(v["runs"][0]["biology"]) for v in sel.values())
    ncols = max(2 * len(datasets), nbio, 1)
    fig = plt.figure(figsize=(4.2 * ncols, 4.6 * (2 if nbio else 1)), constrained_layout=True)
    gs = fig.add_gridspec(2 if nbio else 1, ncols)
    width = ncols // len(datasets)
    marks = {"lagrangian": ("o", "-"), "thresholds": ("^", ":"), None: ("o", "-")}
    for di, ds in enumerate(datasets):
        ax = fig.add_subplot(gs[0, di * width:(di + 1) * width])
        lo = min([p["fraction_active"] for p in res["points"] if p["dataset"] == ds] + [LENNIE]) / 1.6
        ax.axvspan(lo, LENNIE, color="tab:green", alpha=0.25, lw=0, label="cortex: < 1 % (Lennie 2003)")
        combos = sorted({(p["grid"], _enc(p)) for p in res["points"] if p["dataset"] == ds},
                        key=lambda g: (g[1] != MODEL["encoding"], CONTROL_GRIDS.index(g[0])))
        for gi, ((grid, enc), c) in enumerate(zip(combos, ("C0", "C1", "C2", "C3", "C4", "C5"))):
            for ctrl in CONTROLLERS:
                pts = sorted([p for p in res["points"] if p["dataset"] == ds and p["grid"] == grid and _enc(p) == enc
                              and p.get("controller", "thresholds") in (ctrl, None)], key=lambda p: p["fraction_active"])
                if not [p for p in pts if p["P"] is not None]:
                    continue
                mk, ls = marks[ctrl]
                ax.errorbar([p["fraction_active"] for p in pts], [100 * p["test_accuracy"] for p in pts],
                            yerr=[100 * p["test_accuracy_std"] for p in pts], fmt=mk + ls, color=c, ms=4, capsize=2,
                            label=f"{grid} grid, {enc} input, {ctrl}")
                ax.plot([p["fraction_active"] for p in pts], [100 * p["spikes_only_accuracy"] for p in pts], mk,
                        color=c, ms=4, mfc="none", alpha=0.8)
                if ctrl == "lagrangian" and gi == 0:  # one label per target: the curves share its rate
                    for p in pts:
                        if p["P"] is not None:
                            ax.annotate(f"P={100 * p['P']:g}%", (p["fraction_active"], 100 * p["test_accuracy"]),
                                        fontsize=6, color=c, textcoords="offset points",
                                        xytext=(4, 4))
        ax.plot([], [], "o", color="0.3", mfc="none", label="hollow: spikes-only read-out")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:g} %"))
        ax.set_xlabel("hidden neurons active per step (test)")
        ax.set_ylabel(f"{ds} test accuracy (%)")
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(fontsize=6, loc="lower right")
    col = 0
    for ds, v in sel.items():
        run, base = v["runs"][0], (v["baseline"][0] if v["baseline"] else None)
        for layer in run["biology"]:
            _bio_panel(fig.add_subplot(gs[1, col]), run, base, layer,
                       f"{ds}, {layer}: {run['controller']}, {run['grid']} grid, {_enc(run)} input, "
                       f"seed {run['seed']}")
            col += 1
    fig.suptitle(f"Rate control: accuracy against activity ({res['settings']['epochs']} epochs, seeds "
                 f"{common.seed_text(res['settings']['seeds'])})"
                 + ("; rate distributions at the sparsest target met" if nbio else ""), fontsize=10)
    common.save_figure(fig, out, "sparse_control.png")


def _control_key(r: dict) -> tuple:
    """A run's job: (dataset, grid, controller, P, seed, input code, input rate target)."""
    return r["dataset"], r["grid"], r.get("controller"), r["P"], r["seed"], _code(r), r.get("input_rate_target")


def _main_control(args) -> dict:
    if args.replot:
        res = common.read_result(args.out, "sparse_control.json")
        common.write_text(args.out, "sparse_control.md", _control_markdown(res))
        _control_figure(res, args.out)
        return res
    targets = (None, *args.targets) if args.targets else None
    sweep = QUICK_CONTROL if args.quick else {d: targets or CONTROL[d] for d in args.datasets}
    epochs = QUICK["epochs"] if args.quick else (args.epochs or RECIPE["epochs"])
    seeds = (0,) if args.quick else tuple(args.seeds)
    grids = ("running",) if args.quick else tuple(args.grids)
    ctrls = tuple(args.controllers)
    encs = tuple(args.input_encodings)
    Qs = (None, *args.input_rate_targets)
    jobs = [(ds, g, None if P is None else c, P, s, e, Q) for ds, Ps in sweep.items() for e in encs for g in grids
            for P in Ps for c in (ctrls if P is not None else ctrls[:1]) for Q in (Qs if P is not None else Qs[:1])
            for s in seeds]
    settings = {"model": MODEL, "recipe": RECIPE, "epochs": epochs, "seeds": list(seeds), "quick": bool(args.quick),
                "controllers": list(ctrls), "input_encodings": list(encs)}
    if args.input_rate_targets:  # (settings of sweeps without them stay as they were: --resume continues them)
        settings["input_rate_targets"] = list(args.input_rate_targets)
    # --resume: the runs of an interrupted sweep of the same settings are kept
    runs: list[dict] = []
    old = common.resumed(args.out, "sparse_control.json") if args.resume else None
    if old is not None:
        if old.get("settings") == json.loads(json.dumps(json_ready(settings))):
            runs = [r for r in old.get("runs", []) if _control_key(r) in set(jobs)]
    done = {_control_key(r) for r in runs}
    cache: dict = {}
    res: dict = {}
    for job in common.progress(jobs, args.progress, "rate control"):
        if job in done:
            continue
        runs.append(_run_control(*job, epochs, args.quick, cache))
        res = {"settings": settings, "run_info": common.run_info(args), "runs": runs,
               "points": _control_points(runs), "complete": len(runs) == len(jobs)}
        common.write_json(args.out, "sparse_control.json", res)
        common.write_text(args.out, "sparse_control.md", _control_markdown(res))
    if not res:  # everything was resumed
        res = {"settings": settings, "run_info": common.run_info(args), "runs": runs,
               "points": _control_points(runs), "complete": True}
        common.write_json(args.out, "sparse_control.json", res)
        common.write_text(args.out, "sparse_control.md", _control_markdown(res))
    print(_control_markdown(res))
    _control_figure(res, args.out)
    return res


def main(argv: list[str] | None = None) -> dict:
    from tbnn.core.codes import SCHEMES
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs of an interrupted sweep found in sparse_activity.json "
                             "(sparse_control.json with --control)")
    parser.add_argument("--control", action="store_true",
                        help="sweep the homeostatic rate controller (rate_target=P alone) instead of W")
    parser.add_argument("--datasets", nargs="+", default=list(CONTROL), choices=list(CONTROL),
                        help="--control: datasets to sweep")
    parser.add_argument("--epochs", type=int, default=None, help="--control: epochs (default: the recipe's 60)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="--control: seeds")
    parser.add_argument("--grids", nargs="+", default=list(CONTROL_GRIDS), choices=list(CONTROL_GRIDS),
                        help="--control: hidden grids")
    parser.add_argument("--controllers", nargs="+", default=list(CONTROLLERS), choices=list(CONTROLLERS),
                        help="--control: rate controllers (the unregularised run is shared)")
    parser.add_argument("--input-encodings", nargs="+", default=[MODEL["encoding"]],
                        choices=list(SCHEMES),
                        help="--control: the input encoder's spike codes swept (default: binary, the model's; "
                             "latency: at most one spike per input neuron)")
    parser.add_argument("--input-rate-targets", type=float, nargs="+", default=[],
                        help="--control: also rate-control the input encoder toward each Q (its grid headroom, "
                             "tbnn.nn.homeostasis.step_headroom) at every target P")
    parser.add_argument("--targets", type=float, nargs="+", default=None,
                        help="--control: targets P (default 0.05 0.02 0.01; the unregularised run is always added)")
    args = common.parse_args(parser, argv)
    if args.control:
        return _main_control(args)
    if args.replot:
        res = common.read_result(args.out, "sparse_activity.json")
        res["verdicts"] = _verdicts(res["points"])
        common.write_text(args.out, "sparse_activity.md", _markdown(res))
        _figure(res, args.out)
        return res
    sweep = QUICK_SWEEP if args.quick else SWEEP
    seeds = (0,) if args.quick else SEEDS
    jobs = [(ds, sur, W, s) for (ds, sur), Ws in sweep.items() for W in Ws for s in seeds]
    settings = {"model": MODEL, "recipe": RECIPE, "epochs": QUICK["epochs"] if args.quick else RECIPE["epochs"],
                "seeds": list(seeds), "P": 0.0, "sweep": [[ds, sur, list(W)] for (ds, sur), W in sweep.items()],
                "quick": bool(args.quick)}
    # runs already in the JSON of the same settings are kept (an interrupted sweep resumes)
    runs: list[dict] = []
    old = common.resumed(args.out, "sparse_activity.json") if args.resume else None
    if old is not None:
        if old.get("settings") == json.loads(json.dumps(json_ready(settings))):
            runs = [r for r in old.get("runs", []) if (r["dataset"], r["surrogate"], r["W"], r["seed"]) in set(jobs)]
    done = {(r["dataset"], r["surrogate"], r["W"], r["seed"]) for r in runs}
    cache: dict = {}
    res: dict = {}
    for job in common.progress(jobs, args.progress, "sparse activity"):
        if job not in done:
            runs.append(_run(*job, args.quick, cache))
        points = _points(runs)
        res = {"settings": settings, "run_info": common.run_info(args), "runs": runs, "points": points,
               "verdicts": _verdicts(points), "complete": len(runs) == len(jobs)}
        common.write_json(args.out, "sparse_activity.json", res)
    md = _markdown(res)
    common.write_text(args.out, "sparse_activity.md", md)
    print(md)
    _figure(json.loads((args.out / "sparse_activity.json").read_text()), args.out)
    return res


if __name__ == "__main__":
    main()
