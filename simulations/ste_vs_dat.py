"""STE vs DAT at A1W1 (1-bit weights, 1-bit activations): stability and accuracy.

Two experiments, the same recipe for both methods:

1. **MLP** (64/40-256-256-10) on ``digits`` and ``mnist1d``: ``tbn`` (DAT) vs ``ste`` at
   ``T = 1`` (one binary spike per neuron, i.e. 1-bit activations) with 1-bit weights and a
   1-bit read-out, the recipe of ``results_table.py`` at lr 1e-3 (60 epochs), 5 seeds. Per-epoch training-loss
   curves, final test accuracy, and the number of diverged runs (a non-finite loss, or a
   final training loss above the untrained network's).
2. **Character-level transformer** (written here): token + position embedding, pre-LN
   attention blocks, every ``Linear`` (q/k/v, attention output, both MLP layers and the
   LM head) with its weights (per output row) and its input activations (blocks of 128
   along the contracted axis) fake-quantized to 1 bit by
   ``tbnn.core.quant.fake_quantize(bits=1, method="dat" | "ste", grid="meanstd")``; a float
   twin for reference. Trained for 300 steps at two learning rates on text that ships with Python
   (docstrings of standard-library modules, gathered offline with :mod:`inspect`), a few
   seeds; next-character loss curves for float, DAT and STE.

Writes ``ste_vs_dat.json``, ``ste_vs_dat.md`` and ``ste_vs_dat.png`` into ``--out``.

    python simulations/ste_vs_dat.py            # full (about 20 min on 1 core)
    python simulations/ste_vs_dat.py --quick    # seconds, for the tests
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import results_table  # noqa: E402

METHODS_MLP = {"dat": "tbn", "ste": "ste"}
#: The MLP recipe: the results table's, at the learning rate that suits digits best
#: (tbn_recipe_tuning.md) and is the library's default.
MLP_RECIPE = dict(results_table.RECIPE, lr=1e-3)
MLP_MODEL = dict(results_table.MODEL, timesteps=1, weight_bits=1, readout_bits=1)
MLP_SEEDS = (0, 1, 2, 3, 4)

#: Character transformer settings (full run).
LM = dict(d_model=64, heads=4, blocks=2, context=64, batch=32, steps=300, lrs=(2e-3, 6e-3), warmup=20,
          weight_decay=0.0, eval_every=20, eval_batches=8, block=128)
LM_SEEDS = (0, 1, 2)
LM_METHODS = ("float", "dat", "ste")

#: Standard-library modules whose docstrings make the corpus (sorted; import side-effect free).
STDLIB_MODULES = sorted([
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs",
    "collections", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "doctest", "email", "enum", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.client",
    "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging", "mimetypes",
    "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "poplib", "pprint",
    "pydoc", "queue", "random", "re", "sched", "secrets", "shlex", "shutil", "smtplib", "socket",
    "sqlite3", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "traceback", "types", "typing", "unittest", "urllib.parse",
    "uuid", "warnings", "weakref", "xml.etree.ElementTree", "zipfile",
])


# --------------------------------------------------------------------------------------
# 1. MLP at A1W1


def _initial_loss(dataset: str, model: str, seed: int, n_train, n_test) -> float:
    """Training-set loss of the untrained network that ``train(seed=seed)`` starts from."""
    import torch

    from tbnn.io.datasets import load_dataset
    from tbnn.nn.models import build_model
    from tbnn.train.trainer import model_config_for

    ds = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
    torch.manual_seed(seed)  # train() seeds the same way before building
    net = build_model(model_config_for(ds, model=model, **MLP_MODEL))
    net.train()  # BatchNorm in training mode: the loss the first batches see
    with torch.no_grad():
        import torch.nn.functional as F

        loss = float(F.cross_entropy(net(ds.x_train), ds.y_train))
    return loss


def run_mlp(args, recipe: dict, seeds, n_train, n_test) -> list[dict]:
    from tbnn.train.trainer import train

    runs = []
    jobs = [(ds, m, s) for ds in ("digits", "mnist1d") for m in METHODS_MLP for s in seeds]
    for ds, method, seed in common.progress(jobs, args.progress, "MLP A1W1"):
        common.seed_everything(seed)
        model = METHODS_MLP[method]
        init = _initial_loss(ds, model, seed, n_train, n_test)
        rec: dict[str, Any] = {"dataset": ds, "method": method, "model": model, "seed": seed,
                               "initial_loss": init}
        try:
            m = train(ds, model, seed=seed, progress=False, n_train=n_train, n_test=n_test,
                      **recipe, **MLP_MODEL)
            hist = m["history"]
            rec.update(test_accuracy=m["test_accuracy"], train_accuracy=m["train_accuracy"],
                       loss_curve=[h["loss"] for h in hist], test_curve=[h["test_accuracy"] for h in hist],
                       nan=False)
        except (FloatingPointError, ValueError) as e:  # a NaN loss, or NaN reaching a quantizer
            rec.update(test_accuracy=None, train_accuracy=None, loss_curve=[], test_curve=[], nan=True,
                       error=str(e))
        curve = rec["loss_curve"]
        rec["final_loss"] = curve[-1] if curve else None
        rec["diverged"] = bool(rec["nan"] or not math.isfinite(rec["final_loss"]) or rec["final_loss"] > init)
        # oscillation: epochs whose loss rose by more than 5 % over the previous epoch
        rec["loss_increases"] = sum(1 for a, b in zip(curve, curve[1:]) if b > 1.05 * a)
        runs.append(rec)
        if not args.progress:
            print(f"  MLP {ds} {method} seed {seed}: test {rec['test_accuracy']}", flush=True)
    return runs


def summarise_mlp(runs: list[dict]) -> list[dict]:
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in runs):
        for method in METHODS_MLP:
            rr = [r for r in runs if r["dataset"] == ds and r["method"] == method]
            if not rr:
                continue
            out.append({"dataset": ds, "method": method, "seeds": len(rr),
                        "test_accuracy": [r["test_accuracy"] for r in rr],
                        "test_accuracy_mean": common.mean_std(r["test_accuracy"] for r in rr)[0],
                        "test_accuracy_std": common.mean_std(r["test_accuracy"] for r in rr)[1],
                        "final_loss_mean": common.mean_std(r["final_loss"] for r in rr)[0],
                        "min_test_accuracy": min((r["test_accuracy"] for r in rr if r["test_accuracy"] is not None),
                                                 default=None),
                        "diverged": sum(r["diverged"] for r in rr), "nan": sum(r["nan"] for r in rr),
                        "loss_increases": sum(r["loss_increases"] for r in rr)})
    return out


# --------------------------------------------------------------------------------------
# 2. character-level transformer


def stdlib_corpus(max_chars: int | None = None) -> str:
    """Docstrings of standard-library modules and their public members, in a fixed order.

    Offline and deterministic for a given Python version; characters outside printable
    ASCII (plus newline) become ``?``.
    """
    parts: list[str] = []
    seen: set[str] = set()

    def add(obj) -> None:
        doc = inspect.getdoc(obj)
        if doc and doc not in seen:
            seen.add(doc)
            parts.append(doc.strip() + "\n\n")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in STDLIB_MODULES:
            try:
                mod = importlib.import_module(name)
            except Exception:  # a module missing from this build of Python
                continue
            add(mod)
            for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
                if attr.startswith("_"):
                    continue
                obj = getattr(mod, attr, None)
                if obj is None or inspect.ismodule(obj):
                    continue
                if getattr(obj, "__module__", name) != name and not inspect.isbuiltin(obj):
                    continue
                add(obj)
                if inspect.isclass(obj):
                    for meth in sorted(vars(obj)):
                        if not meth.startswith("_"):
                            add(getattr(obj, meth, None))
            if max_chars is not None and sum(map(len, parts)) >= max_chars:
                break
    text = "".join(parts)
    text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)
    return text[:max_chars] if max_chars else text


def _build_lm(vocab: int, cfg: dict, method: str, qlinear=None):
    """The character transformer; ``qlinear(n_in, n_out)`` replaces the 1-bit ``QLinear`` in
    every Linear when given (``lm_quantized.py`` passes its own quantizers)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tbnn.core.quant import fake_quantize

    class QLinear(nn.Linear):
        """Linear with 1-bit weights (per output row) and 1-bit input activations."""

        def forward(self, x):
            if method == "float":
                return F.linear(x, self.weight, self.bias)
            xq = fake_quantize(x, bits=1, method=method, block=cfg["block"], grid="meanstd", dim=-1)
            wq = fake_quantize(self.weight, bits=1, method=method, block=None, grid="meanstd", dim=-1)
            return F.linear(xq, wq, self.bias)

    d, h = cfg["d_model"], cfg["heads"]
    Lin = qlinear or QLinear

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = Lin(d, 3 * d), Lin(d, d)
            self.fc1, self.fc2 = Lin(d, 4 * d), Lin(4 * d, d)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            q, k, v = (t.view(B, T, h, d // h).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Embedding(cfg["context"], d)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["blocks"]))
            self.ln = nn.LayerNorm(d)
            self.head = Lin(d, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln(x))

    return CharLM()


def run_lm_one(data, val, vocab: int, cfg: dict, method: str, seed: int, lr: float) -> dict:
    """Train one character LM; returns its loss curves and whether it diverged."""
    import torch
    import torch.nn.functional as F

    common.seed_everything(seed)
    net = _build_lm(vocab, cfg, method)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    steps, warm = cfg["steps"], cfg["warmup"]

    def lr_at(s):  # linear warm-up, then cosine to 10 %
        if s < warm:
            return (s + 1) / warm
        p = (s - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(seed)
    C, B = cfg["context"], cfg["batch"]
    gv = torch.Generator().manual_seed(12345)  # the same validation batches for every run
    vstarts = torch.randint(0, len(val) - C - 1, (cfg["eval_batches"] * B,), generator=gv)
    vx = torch.stack([val[i:i + C] for i in vstarts])
    vy = torch.stack([val[i + 1:i + C + 1] for i in vstarts])

    @torch.no_grad()
    def evaluate():
        net.eval()
        try:
            logits = net(vx)
            loss = float(F.cross_entropy(logits.reshape(-1, vocab), vy.reshape(-1)))
            acc = float((logits.argmax(-1) == vy).float().mean())
        except ValueError:  # a non-finite tensor reached a quantizer
            loss, acc = float("nan"), float("nan")
        net.train()
        return loss, acc

    train_curve, val_steps, val_curve, val_acc = [], [], [], []
    l0, a0 = evaluate()
    val_steps.append(0), val_curve.append(l0), val_acc.append(a0)
    nan_at = None
    for step in range(steps):
        starts = torch.randint(0, len(data) - C - 1, (B,), generator=g)
        x = torch.stack([data[i:i + C] for i in starts])
        y = torch.stack([data[i + 1:i + C + 1] for i in starts])
        try:
            loss = F.cross_entropy(net(x).reshape(-1, vocab), y.reshape(-1))
        except ValueError:
            loss = torch.tensor(float("nan"))
        if not torch.isfinite(loss):
            nan_at = step
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        train_curve.append(loss.item())
        if (step + 1) % cfg["eval_every"] == 0 or step + 1 == steps:
            vl, va = evaluate()
            val_steps.append(step + 1), val_curve.append(vl), val_acc.append(va)
    finite = [v for v in val_curve if math.isfinite(v)]
    final = val_curve[-1] if nan_at is None else float("nan")
    tail = train_curve[-max(1, len(train_curve) // 4):]
    return {
        "method": method, "seed": seed, "lr": lr, "train_loss": train_curve, "val_steps": val_steps,
        "val_loss": val_curve, "val_accuracy": val_acc, "initial_val_loss": l0,
        "final_val_loss": final, "min_val_loss": min(finite) if finite else None,
        "final_val_accuracy": val_acc[-1] if nan_at is None else None, "nan_at_step": nan_at,
        "diverged": bool(nan_at is not None or not math.isfinite(final) or final > l0),
        # oscillation: validation evaluations whose loss rose by more than 0.02 nats
        "val_loss_rises": sum(1 for a, b in zip(val_curve, val_curve[1:]) if b > a + 0.02),
        "train_loss_tail_std": common.mean_std(tail)[1],
    }


def run_lm(args, cfg: dict, seeds, corpus_chars: int | None) -> dict:
    import torch

    text = stdlib_corpus(corpus_chars)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    data, val = ids[:cut], ids[cut:]
    runs = []
    jobs = [(lr, m, s) for lr in cfg["lrs"] for m in LM_METHODS for s in seeds]
    for lr, method, seed in common.progress(jobs, args.progress, "char LM"):
        r = run_lm_one(data, val, len(chars), cfg, method, seed, lr)
        runs.append(r)
        if not args.progress:
            print(f"  LM lr={lr:g} {method} seed {seed}: val loss {r['final_val_loss']:.3f}", flush=True)
    summary = []
    for lr, method in [(lr, m) for lr in cfg["lrs"] for m in LM_METHODS]:
        rr = [r for r in runs if r["method"] == method and r["lr"] == lr]
        summary.append({"lr": lr, "method": method, "seeds": len(rr),
                        "final_val_loss": [r["final_val_loss"] for r in rr],
                        "final_val_loss_mean": common.mean_std(r["final_val_loss"] for r in rr)[0],
                        "final_val_loss_std": common.mean_std(r["final_val_loss"] for r in rr)[1],
                        "final_val_accuracy_mean": common.mean_std(r["final_val_accuracy"] for r in rr)[0],
                        "min_val_loss_mean": common.mean_std(r["min_val_loss"] for r in rr)[0],
                        "diverged": sum(r["diverged"] for r in rr),
                        "nan": sum(r["nan_at_step"] is not None for r in rr),
                        "val_loss_rises": sum(r["val_loss_rises"] for r in rr),
                        "train_loss_tail_std_mean": common.mean_std(r["train_loss_tail_std"] for r in rr)[0]})
    corpus = {"modules": STDLIB_MODULES, "chars": len(text), "vocab": len(chars),
              "sha256": hashlib.sha256(text.encode()).hexdigest(), "train_chars": int(cut),
              "val_chars": int(len(ids) - cut), "python": sys.version.split()[0]}
    return {"config": cfg, "seeds": list(seeds), "corpus": corpus, "summary": summary, "runs": runs}


# --------------------------------------------------------------------------------------
# output


def _mean_band(ax, x, curves, color, label):
    """Mean over seeds as a line, ± std as a band (curves of equal length only)."""
    import numpy as np

    n = min(len(c) for c in curves)
    a = np.asarray([c[:n] for c in curves], dtype=float)
    m, sd = a.mean(axis=0), a.std(axis=0)
    x = np.asarray(x[:n])
    ax.fill_between(x, m - sd, m + sd, color=color, alpha=0.2, linewidth=0)
    ax.plot(x, m, color=color, lw=1.3, label=label)
    return m, sd


def _figure(mlp_runs: list[dict], lm: dict, out: Path) -> None:
    """The quantities the verdict rests on: MLP test accuracy per epoch and the
    transformer's validation loss, each as mean ± std over seeds (band), with the final
    value's mean ± std as a bar at the right end."""
    from tbnn.viz.style import model_color, new_figure

    common.pyplot()
    colors = {"float": model_color("float"), "dat": model_color("dat"), "ste": model_color("ste")}
    names = {"float": "float", "dat": "DAT", "ste": "STE"}
    lrs = list(lm["config"].get("lrs", [])) if lm["runs"] else []
    fig, axes = new_figure(9.0, 6.4, nrows=2, ncols=2)
    axes = axes.ravel()
    for ax, ds in zip(axes[:2], ("digits", "mnist1d")):
        for method in ("float", "dat", "ste"):
            rs = [r for r in mlp_runs if r["dataset"] == ds and r["method"] == method and r.get("test_curve")]
            if not rs:
                continue
            curves = [[100 * v for v in r["test_curve"]] for r in rs]
            n = min(len(c) for c in curves)
            m, sd = _mean_band(ax, range(1, n + 1), curves, colors[method],
                               f"{names[method]} (final {m_final(rs):.1f} ± {sd_final(rs):.1f} %)")
            common.errorbar_points(ax, [n + 1.5 + 0.8 * ("float", "dat", "ste").index(method)],
                                   [m[-1]], [sd[-1]], colors[method], size=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)\nmean ± std over seeds")
        ax.set_title(f"{ds} MLP, A1W1 (T = 1, 1-bit weights): test accuracy")
        ax.legend(loc="lower right")
        lo = min((100 * min(r["test_curve"][len(r["test_curve"]) // 4:]) for r in mlp_runs
                  if r["dataset"] == ds and r.get("test_curve")), default=0)
        ax.set_ylim(max(0, lo - 3), None)
        ax.grid(alpha=0.3, lw=0.5)
    for ax, lr in zip(axes[2:], lrs[:2]):
        for method in ("float", "dat", "ste"):
            rs = [r for r in lm["runs"] if r["lr"] == lr and r["method"] == method and r["val_loss"]]
            if not rs:
                continue
            _mean_band(ax, rs[0]["val_steps"], [r["val_loss"] for r in rs], colors[method],
                       f"{names[method]} (validation)")
        ax.set_xlabel("step")
        ax.set_ylabel("next-char validation loss (nats)\nmean ± std over seeds")
        ax.set_title(f"char transformer ({lm['config']['blocks']} blocks), A1W1, lr {lr:g}")
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3, lw=0.5)
    for ax in axes[2 + len(lrs[:2]):]:
        ax.axis("off")
    common.save_figure(fig, out, "ste_vs_dat.png")


def m_final(rs: list[dict]) -> float:
    """Mean final test accuracy (%) over seeds."""
    return 100 * common.mean_std(r["test_accuracy"] for r in rs)[0]


def sd_final(rs: list[dict]) -> float:
    """Std (ddof 0) of the final test accuracy (%) over seeds."""
    return 100 * common.mean_std(r["test_accuracy"] for r in rs)[1]


def main(argv: list[str] | None = None) -> dict:
    p = common.make_parser(__doc__.split("\n")[0])
    p.add_argument("--skip-lm", action="store_true", help="leave out the character transformer")
    p.add_argument("--skip-mlp", action="store_true", help="leave out the MLP runs")
    p.add_argument("--lm-lr", type=float, nargs="+", default=None,
                   help=f"transformer learning rates (default {' '.join(map(str, LM['lrs']))})")
    p.add_argument("--lm-steps", type=int, default=None, help=f"transformer steps (default {LM['steps']})")
    args = common.parse_args(p, argv)
    if args.replot:
        result = common.read_result(args.out, "ste_vs_dat.json")
        _figure(result["mlp"]["runs"], result["lm"], args.out)
        return result
    recipe = dict(MLP_RECIPE)
    lm_cfg = dict(LM)
    mlp_seeds, lm_seeds, n_train, n_test, corpus_chars = MLP_SEEDS, LM_SEEDS, None, None, None
    if args.quick:
        recipe["epochs"] = 2
        mlp_seeds, lm_seeds, n_train, n_test = (0, 1), (0,), 256, 128
        lm_cfg.update(d_model=32, blocks=1, context=32, batch=8, steps=12, eval_every=4, eval_batches=2,
                      warmup=2)
        corpus_chars = 60_000
    if args.lm_lr is not None:
        lm_cfg["lrs"] = tuple(args.lm_lr)
    if args.lm_steps is not None:
        lm_cfg["steps"] = args.lm_steps

    mlp_runs = [] if args.skip_mlp else run_mlp(args, recipe, mlp_seeds, n_train, n_test)
    mlp_sum = summarise_mlp(mlp_runs)
    lm = {"config": lm_cfg, "seeds": [], "runs": [], "summary": [], "corpus": None} if args.skip_lm else \
        run_lm(args, lm_cfg, lm_seeds, corpus_chars)

    t1 = common.format_table(
        ["dataset", "method", "test acc % (mean ± std)", "worst seed %", "final train loss", "diverged",
         "NaN", "loss rises > 5 %"],
        [[r["dataset"], r["method"].upper(), common.fmt_pm(r["test_accuracy"], 100, 2),
          f"{100 * r['min_test_accuracy']:.1f}" if r["min_test_accuracy"] is not None else "n/a",
          f"{r['final_loss_mean']:.4f}", f"{r['diverged']}/{r['seeds']}", r["nan"], r["loss_increases"]]
         for r in mlp_sum], align="llrrrrrr")
    t2 = common.format_table(
        ["lr", "method", "final val loss (mean ± std)", "min val loss", "final val acc %", "diverged", "NaN",
         "val-loss rises", "train-loss std (last 25 %)"],
        [[f"{r['lr']:g}", r["method"].upper() if r["method"] != "float" else "float",
          common.fmt_pm(r["final_val_loss"], 1, 3), f"{r['min_val_loss_mean']:.3f}",
          f"{100 * r['final_val_accuracy_mean']:.1f}" if r["final_val_accuracy_mean"] == r["final_val_accuracy_mean"]
          else "n/a", f"{r['diverged']}/{r['seeds']}", r["nan"], r["val_loss_rises"],
          f"{r['train_loss_tail_std_mean']:.3f}"] for r in lm["summary"]], align="llrrrrrrr")
    md = ("# STE vs DAT at A1W1\n\n"
          f"MLP recipe: {recipe}; model {MLP_MODEL}; seeds {list(mlp_seeds)}"
          + (f"; n_train={n_train}, n_test={n_test}" if n_train else "") + ". Diverged = a non-finite loss, "
          "or a final-epoch training loss above the untrained network's. Loss rises = epochs whose mean "
          "training loss rose > 5 % over the previous epoch (summed over seeds).\n\n" + t1 + "\n\n"
          f"Character transformer: {lm_cfg}; seeds {list(lm['seeds'])}; corpus: "
          + (f"{lm['corpus']['chars']:,} characters of stdlib docstrings (Python {lm['corpus']['python']}), "
             f"vocabulary {lm['corpus']['vocab']}" if lm["corpus"] else "skipped")
          + ". Diverged = NaN, or a final validation loss above the initial one; val-loss rises = "
          "evaluations whose validation loss rose > 0.02 nats over the previous one (summed over seeds).\n\n"
          + t2 + "\n")
    result = {"settings": {"mlp_recipe": recipe, "mlp_model": MLP_MODEL, "mlp_seeds": list(mlp_seeds),
                           "n_train": n_train, "n_test": n_test, "lm": lm_cfg, "lm_seeds": list(lm_seeds)},
              "mlp": {"summary": mlp_sum, "runs": mlp_runs}, "lm": lm,
              "tables_markdown": [t1, t2], "info": common.run_info(args)}
    common.write_json(args.out, "ste_vs_dat.json", result)
    common.write_text(args.out, "ste_vs_dat.md", md)
    _figure(mlp_runs, lm, args.out)
    print(md)
    return result


if __name__ == "__main__":
    main()
