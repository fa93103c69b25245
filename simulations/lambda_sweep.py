"""Ridge penalty sweep: the DAT's ``lam`` on digits TBN (MLP 64-256-256-10), T = 4 and T = 1.

``lam`` in (0, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10), 3 seeds, the recipe of ``results_table.py`` at
lr 1e-3 (``lam`` is used by every DAT in the network: the input encoder, the hidden neurons' read-outs
and the 1-bit weights). Reports test accuracy, the final training loss and any NaN, and two
diagnostics of what ``lam`` does to the trained network:

* ``hidden_shrink``: mean over hidden read-out blocks (test set) of ``Var(q) / (Var(q) + lam)``,
  the factor by which the ridge shrinks the read-out gain towards the block mean (1: plain
  least squares; 0: the read-out is the block mean, ``lam -> inf``);
* ``weight_shrink``: the same for the 1-bit weight read-outs (per output channel), and
  ``weight_rms``: the RMS of the first hidden layer's latent weights (the network can undo a
  shrunken gain by growing its weights, since ``Cov(w, q)`` scales with ``w``);
* ``constant_blocks``: the fraction of hidden read-out blocks whose codes are all equal
  (``Var(q) = 0``), where ``lam = 0`` would divide 0 by 0; tbnn gives such a block its mean.

Writes ``lambda_sweep.json``, ``lambda_sweep.md`` and ``lambda_sweep.png`` into ``--out``.

    python simulations/lambda_sweep.py            # full (about 10 min on 1 core)
    python simulations/lambda_sweep.py --quick    # seconds, for the tests
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import results_table  # noqa: E402

LAMS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
TIMESTEPS = (4, 1)
SEEDS = (0, 1, 2)
#: The results table's recipe at the learning rate that suits digits best (tbn_recipe_tuning.md).
RECIPE = dict(results_table.RECIPE, lr=1e-3)


def block_var(q, block: int | None):
    """Population variance of ``q`` within blocks of ``block`` along the last axis: ``[..., nb]``.

    A ragged last block counts only its own elements (as the DAT does).
    """
    import torch

    k = q.shape[-1]
    size = k if block is None else min(block, k)
    nb = -(-k // size)
    pad = nb * size - k
    qp = torch.nn.functional.pad(q, (0, pad)).reshape(*q.shape[:-1], nb, size)
    valid = (torch.arange(nb * size, device=q.device) < k).reshape(nb, size).to(q.dtype)
    n = valid.sum(-1)
    mean = (qp * valid).sum(-1) / n
    return (((qp - mean.unsqueeze(-1)) * valid) ** 2).sum(-1) / n


def _shrink(var, lam: float) -> float:
    import torch

    den = var + lam
    return float(torch.where(den > 0, var / torch.where(den > 0, den, torch.ones_like(den)),
                             torch.zeros_like(var)).mean())


def diagnostics(net, x) -> dict[str, Any]:
    """Shrink factors, constant blocks and weight scale of a trained TBN (eval mode, ``x``)."""
    import torch

    from tbnn.nn.layers import TBLayer
    from tbnn.core.quant import quantize

    lam = float(net.cfg.lam)
    net.eval()
    with torch.no_grad():
        _, codes = net(x, record=True)
        shrink, const = [], []
        for name, code in codes.items():
            if name == "input":
                continue
            var = block_var(code.q.detach().flatten(1), code.block)
            const.append(float((var == 0).float().mean()))
            shrink.append(_shrink(var, lam))
        wshrink = []
        for mod in net.modules():
            if isinstance(mod, TBLayer) and mod.weight_bits is not None:
                w2 = mod.weight.reshape(mod.weight.shape[0], -1)
                c = quantize(w2, bits=mod.weight_bits, method=mod.method, block=mod.weight_block, lam=mod.lam,
                             dim=-1, sparsity=mod.sparsity, grid=mod.weight_grid)
                wshrink.append(_shrink(block_var(c.codes(), mod.weight_block), lam))
        w_rms = float(net.layers[0].weight.pow(2).mean().sqrt())
    return {"hidden_shrink": sum(shrink) / len(shrink), "weight_shrink": sum(wshrink) / len(wshrink),
            "constant_blocks": sum(const) / len(const), "weight_rms": w_rms}


def run_one(lam: float, T: int, seed: int, recipe: dict, n_train, n_test) -> dict:
    from tbnn.io.datasets import load_dataset
    from tbnn.train.trainer import train

    common.seed_everything(seed)
    model_kw = dict(results_table.MODEL, lam=lam, timesteps=T)
    rec: dict[str, Any] = {"lam": lam, "timesteps": T, "seed": seed}
    try:
        m = train("digits", "tbn", seed=seed, progress=False, n_train=n_train, n_test=n_test, **recipe, **model_kw)
    except (FloatingPointError, ValueError) as e:  # NaN loss, or NaN reaching a quantizer
        rec.update(nan=True, error=str(e), test_accuracy=None, train_accuracy=None, final_loss=None,
                   loss_curve=[])
        return rec
    ds = load_dataset("digits", seed=seed, n_train=n_train, n_test=n_test)
    curve = [h["loss"] for h in m["history"]]
    rec.update(nan=not all(math.isfinite(v) for v in curve), test_accuracy=m["test_accuracy"],
               train_accuracy=m["train_accuracy"], final_loss=curve[-1], loss_curve=curve,
               test_curve=[h["test_accuracy"] for h in m["history"]], **diagnostics(m["net"], ds.x_test))
    return rec


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for T in dict.fromkeys(r["timesteps"] for r in runs):
        for lam in dict.fromkeys(r["lam"] for r in runs):
            rr = [r for r in runs if r["lam"] == lam and r["timesteps"] == T]
            if not rr:
                continue
            acc = [r["test_accuracy"] for r in rr]
            row = {"timesteps": T, "lam": lam, "seeds": len(rr), "test_accuracy": acc,
                   "test_accuracy_mean": common.mean_std(acc)[0], "test_accuracy_std": common.mean_std(acc)[1],
                   "final_loss_mean": common.mean_std(r["final_loss"] for r in rr)[0],
                   "nan": sum(bool(r["nan"]) for r in rr)}
            for k in ("hidden_shrink", "weight_shrink", "constant_blocks", "weight_rms"):
                row[k] = common.mean_std(r.get(k) for r in rr)[0]
            rows.append(row)
    return rows


def _xpos(lam: float, left: float) -> float:
    return lam if lam > 0 else left


def _figure(rows: list[dict], runs: list[dict], out: Path) -> None:
    plt = common.pyplot()
    pos = sorted({r["lam"] for r in rows if r["lam"] > 0})
    left = (pos[0] / 10) if pos else 1e-5  # lam = 0 drawn one decade left of the smallest lam > 0
    colors = {4: "#0072B2", 1: "#D55E00"}  # tbnn.viz.style's Okabe-Ito palette
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for T in dict.fromkeys(r["timesteps"] for r in rows):
        rr = [r for r in rows if r["timesteps"] == T]
        xs = [_xpos(r["lam"], left) for r in rr]
        ys = [100 * r["test_accuracy_mean"] for r in rr]
        es = [100 * r["test_accuracy_std"] for r in rr]
        a1.errorbar(xs, ys, yerr=es, color=colors.get(T), marker="o", ms=4, capsize=2, label=f"T = {T}")
        for r in runs:
            if r["timesteps"] == T and r["test_accuracy"] is not None:
                a1.plot(_xpos(r["lam"], left) * 1.08, 100 * r["test_accuracy"], ".", color=colors.get(T), ms=3,
                        alpha=0.5)
        a2.plot(xs, [r["hidden_shrink"] for r in rr], color=colors.get(T), marker="o", ms=4,
                label=f"hidden read-out, T = {T}")
        a2.plot(xs, [r["weight_shrink"] for r in rr], color=colors.get(T), marker="s", ms=5 if T == 4 else 3,
                ls="--", mfc="none" if T == 4 else colors.get(T), label=f"1-bit weights, T = {T}")
    for a in (a1, a2):
        a.set_xscale("log")
        ticks = [left] + pos
        a.set_xticks(ticks, ["0"] + [f"{v:g}" for v in pos])
        a.minorticks_off()
        a.axvspan(left / 2, math.sqrt(left * pos[0]) if pos else left * 2, color="0.92", zorder=0)
        a.set_xlabel("ridge penalty λ (λ = 0 at the left edge)")
    a1.axhline(10, color="0.5", lw=0.8, ls=":", label="chance")
    a1.set_ylabel("test accuracy (%)\nmean ± std over seeds; dots: seeds")
    a1.set_ylim(0, 100)
    a1.set_title("digits TBN (1-bit weights): accuracy vs λ")
    a1.legend(loc="center left")
    a2.set_ylabel("Var(q) / (Var(q) + λ)")
    a2.set_ylim(-0.03, 1.03)
    a2.set_title("gain shrink of the DAT read-outs (trained nets, seed mean)")
    a2.legend(loc="lower left")
    fig.tight_layout()
    common.save_figure(fig, out, "lambda_sweep.png")


def main(argv: list[str] | None = None) -> dict:
    p = common.make_parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, ...)")
    args = common.parse_args(p, argv)
    if args.replot:
        result = common.read_result(args.out, "lambda_sweep.json")
        _figure(result["rows"], result["runs"], args.out)
        return result
    recipe = dict(RECIPE)
    lams, seeds, n_train, n_test = LAMS, list(range(args.seeds)), None, None
    if args.quick:
        recipe["epochs"] = 2
        lams, seeds, n_train, n_test = (0.0, 1e-2, 10.0), [0], 256, 128
    jobs = [(T, lam, s) for T in TIMESTEPS for lam in lams for s in seeds]
    runs = []
    for T, lam, s in common.progress(jobs, args.progress, "lambda sweep"):
        r = run_one(lam, T, s, recipe, n_train, n_test)
        runs.append(r)
        if not args.progress:
            print(f"  T={T} lam={lam:g} seed {s}: test {r['test_accuracy']}", flush=True)
    rows = summarise(runs)
    table = common.format_table(
        ["T", "λ", "test acc % (mean ± std)", "final train loss", "NaN runs", "hidden shrink", "weight shrink",
         "constant blocks", "weight RMS (layer 1)"],
        [[r["timesteps"], f"{r['lam']:g}", common.fmt_pm(r["test_accuracy"], 100, 2),
          f"{r['final_loss_mean']:.4f}", f"{r['nan']}/{r['seeds']}", f"{r['hidden_shrink']:.3f}",
          f"{r['weight_shrink']:.3f}", f"{r['constant_blocks']:.4f}", f"{r['weight_rms']:.3f}"] for r in rows],
        align="rlrrrrrrr")
    md = ("# λ sweep: digits TBN MLP 64-256-256-10, 1-bit weights\n\n"
          f"Recipe: {recipe}; model {results_table.MODEL} with λ and T varied; seeds {seeds}"
          + (f"; n_train={n_train}, n_test={n_test}" if n_train else "") + ". Shrink = mean of "
          "Var(q)/(Var(q)+λ) over read-out blocks of the trained net (hidden: test set, per sample "
          "and block of 128 neurons; weights: per output channel). Constant blocks: fraction of hidden "
          "read-out blocks whose codes are all equal.\n\n" + table + "\n")
    result = {"settings": {"recipe": recipe, "model": results_table.MODEL, "lams": list(lams),
                           "timesteps": list(TIMESTEPS), "seeds": seeds, "n_train": n_train, "n_test": n_test},
              "rows": rows, "runs": runs, "table_markdown": table, "info": common.run_info(args)}
    common.write_json(args.out, "lambda_sweep.json", result)
    common.write_text(args.out, "lambda_sweep.md", md)
    _figure(rows, runs, args.out)
    print(md)
    return result


if __name__ == "__main__":
    main()
