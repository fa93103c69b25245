"""Firing statistics against biology: TBN vs snnTorch LIF, and how the statistics move with T and λ.

Trains a TBN (T = 4, 1-bit weights, DAT) and an snnTorch LIF network (T = 25) on digits,
simulates both, analyses every layer with :mod:`tbnn.analysis` (network vs discrete-time
null vs biological range) and draws the network-vs-biology panels and the TBN raster.
Then sweeps T (1, 2, 4, 8) and λ (1e-3 … 1) for the TBN and records how the rate, CV,
Fano factor and fraction of active neurons of the first hidden layer move against the null.

    python simulations/biology.py [--quick] [--out figures/] [--replot]

``--replot`` redraws ``biology_sweep.png`` from ``biology.json``; the per-layer panels and
the raster are drawn from spike archives, which only a run writes.

Writes ``biology.json``, ``biology.md``, ``demo_raster.png``, ``biology_tbn.png``,
``biology_lif.png`` and ``biology_sweep.png``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from tbnn.analysis import analyze_run, raster_run  # noqa: E402
from tbnn.sim.simulator import simulate_run  # noqa: E402
from tbnn.train.trainer import train  # noqa: E402  # noqa: E402

KEYS = ("rate_per_step", "cv", "fano_stream", "fano_trial", "fraction_active", "noise_correlation")


def _values(analysis: dict, layer: str) -> dict:
    """Network value and analytic null of the headline measures of one layer."""
    m = analysis["layers"][layer]["measures"]
    out = {}
    for k in KEYS:
        if k in m:
            null = (m[k].get("null") or {}).get("analytic") or {}
            out[k] = {"network": m[k].get("value"), "null": null.get("value"), "verdict": m[k].get("verdict")}
    return out


def _run(tmp: Path, name: str, model: str, epochs: int, quick: bool, progress: bool, **kw) -> tuple[dict, dict, Path]:
    size = dict(n_train=300, n_test=60) if quick else {}
    metrics = train("digits", model, tmp / name, epochs=epochs, progress=progress, **size, **kw)
    sim = simulate_run(tmp / name, tmp / f"{name}-sim", progress=False)
    analysis = analyze_run(tmp / f"{name}-sim", tmp / f"{name}-analysis")
    return {"test_accuracy": metrics["test_accuracy"], **{k: sim[k] for k in (
        "accuracy", "forward_agreement", "spikes_per_sample", "synaptic_ops_per_sample")}}, analysis, tmp / name


SWEEP = (("rate_per_step", "spike probability per step p (mean)\nnull = network by construction"),
         ("cv", "CV of ISIs (median)"),
         ("fano_stream", "Fano factor, stream view (mean)"),
         ("noise_correlation", "noise correlation (mean)"))


def _sweep_figure(sweeps: dict, out: Path) -> Path:
    """hidden1's statistics against T and λ: network (filled) and the Bernoulli null at the
    same p (open), each measure on its own labelled axis that starts at 0 (so a small change
    looks small), with the biological band where one exists. One seed per point."""
    from matplotlib.lines import Line2D

    from tbnn.analysis.reference import REFERENCES
    from tbnn.viz.style import BIO_COLOR, NULL_COLOR, model_color, new_figure

    common.pyplot()
    fig, axes = new_figure(12.0, 5.6, nrows=2, ncols=len(SWEEP), squeeze=False)
    c = model_color("tbn")
    for row, (key, xlabel) in enumerate((("timesteps", "time steps T (λ = 0.01)"), ("lam", "ridge penalty λ (T = 4)"))):
        pts = sweeps.get(key) or []
        for ax, (k, ylabel) in zip(axes[row], SWEEP):
            x = [s[key] for s in pts]
            net = [s["hidden1"].get(k, {}).get("network") for s in pts]
            null = [s["hidden1"].get(k, {}).get("null") for s in pts]
            net = [float("nan") if v is None else v for v in net]
            null = [float("nan") if v is None else v for v in null]
            ref = REFERENCES.get(k)
            if ref is not None:
                ax.axhspan(ref.low, ref.high, color=BIO_COLOR, alpha=0.6, linewidth=0, zorder=0)
            ax.plot(x, net, "o-", color=c, ms=5)
            ax.plot(x, null, "o--", color=NULL_COLOR, mfc="white", ms=5)
            vals = [v for v in net + null if v == v] + ([ref.high] if ref is not None else [])
            lo = min(0.0, min(vals, default=0.0))
            hi = max(vals, default=1.0)
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.15 * (hi - lo))
            if key == "lam":
                ax.set_xscale("log")
            else:
                ax.set_xticks(x)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], marker="o", color=c, label="network (hidden1)"),
               Line2D([], [], marker="o", ls="--", color=NULL_COLOR, mfc="white",
                      label="Bernoulli null at the same p"),
               Line2D([], [], lw=6, color=BIO_COLOR, label="biological range (tbnn.analysis.reference)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    fig.suptitle("digits TBN (1-bit weights), layer hidden1: firing statistics against T and λ "
                 "(one seed per point; axes start at 0)")
    return common.save_figure(fig, out, "biology_sweep.png")


def main(argv: list[str] | None = None) -> dict:
    args = common.parse_args(common.make_parser(__doc__.splitlines()[0]), argv)
    if args.replot:
        # The sweep is redrawn from biology.json; the per-layer panels and the raster need the
        # spike archives, which only a run (about three minutes on one CPU core) writes.
        results = common.read_result(args.out, "biology.json")
        _sweep_figure(results["sweep"], args.out)
        return results
    common.seed_everything(0)
    epochs = 2 if args.quick else 30
    Ts = (1,) if args.quick else (1, 2, 4, 8)
    lams = (1.0,) if args.quick else (1e-3, 1e-2, 1e-1, 1.0)
    results: dict = {"settings": {"dataset": "digits", "epochs": epochs, "seed": 0, "dt_ms": 1.0,
                                  "tbn": "MLP 64-256-256-10, 1-bit weights, binary spikes, T=4, lam=0.01",
                                  "lif": "same widths, snnTorch Leaky beta=0.9, rate code, T=25"},
                     "run_info": common.run_info(args)}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        results["tbn"], a_tbn, _ = _run(tmp, "tbn", "tbn", epochs, args.quick, args.progress, timesteps=4)
        results["tbn"]["stats"] = {layer: _values(a_tbn, layer) for layer in a_tbn["layers"]}
        results["lif"], a_lif, _ = _run(tmp, "lif", "lif", epochs, args.quick, args.progress,
                                        timesteps=3 if args.quick else 25)
        results["lif"]["stats"] = {layer: _values(a_lif, layer) for layer in a_lif["layers"]}
        raster_run(tmp / "tbn-sim", tmp / "demo_raster.png", samples="0:8")  # then copied: replaces an earlier one
        common.copy_file(tmp / "demo_raster.png", args.out, "demo_raster.png")
        for name in ("tbn", "lif"):
            common.copy_file(tmp / f"{name}-analysis" / "hidden1_summary.png", args.out, f"biology_{name}.png")
        sweeps: dict[str, list] = {"timesteps": [], "lam": []}
        for T in common.progress(Ts, args.progress, "T sweep"):
            r, a, _ = _run(tmp, f"T{T}", "tbn", epochs, args.quick, False, timesteps=T)
            sweeps["timesteps"].append({"timesteps": T, "lam": 0.01, **r, "hidden1": _values(a, "hidden1")})
        for lam in common.progress(lams, args.progress, "lambda sweep"):
            r, a, _ = _run(tmp, f"lam{lam}", "tbn", epochs, args.quick, False, timesteps=4, lam=lam)
            sweeps["lam"].append({"timesteps": 4, "lam": lam, **r, "hidden1": _values(a, "hidden1")})
        results["sweep"] = sweeps

    _sweep_figure(sweeps, args.out)

    rows = []
    for name in ("tbn", "lif"):
        for layer, st in results[name]["stats"].items():
            rows.append([name, layer] + [
                "—" if st.get(k, {}).get("network") is None else
                f"{st[k]['network']:.3g} / {st[k]['null']:.3g}" if st[k].get("null") is not None else f"{st[k]['network']:.3g}"
                for k in KEYS])
    table = common.format_table(["model", "layer"] + [f"{k} (net / null)" for k in KEYS], rows)
    srows = [[s["timesteps"], s["lam"], f"{100 * s['accuracy']:.1f}", f"{s['spikes_per_sample']:.0f}"] + [
        "—" if s["hidden1"].get(k, {}).get("network") is None else f"{s['hidden1'][k]['network']:.3g}"
        for k in ("rate_per_step", "cv", "fano_stream", "fraction_active")]
        for s in sweeps["timesteps"] + sweeps["lam"]]
    stable = common.format_table(["T", "λ", "acc %", "spikes/sample", "rate/step", "CV", "Fano (stream)",
                                  "fraction active"], srows)
    text = f"# Firing statistics vs biology (digits, dt = 1 ms)\n\n{table}\n\n## TBN sweep (hidden1)\n\n{stable}\n"
    print(text)
    common.write_text(args.out, "biology.md", text)
    common.write_json(args.out, "biology.json", results)
    return results


if __name__ == "__main__":
    main()
