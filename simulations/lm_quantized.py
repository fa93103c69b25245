r"""Quantized character transformer: DAT vs STE vs BitNet at A1W1 and below (issue 23).

Tests the stability claim of Ye et al., *Robust Training of Neural Networks at Arbitrary
Precision and Sparsity*, arXiv:2409.09245: with the denoising affine transform (DAT, their
§3: quantization as additive noise, then the ridge dequantizer
``g(q) = Cov(x, q) / (Var(q) + lam) (q - mean q) + mean x``) A1W1 training converges where
the straight-through estimator (STE) and BitNet oscillate or diverge.

**Model** (nanoGPT-style, Karpathy 2022; the transformer of ``ste_vs_dat.py``): token +
position embeddings, ``blocks`` pre-LayerNorm blocks of causal multi-head attention and a 4x
GELU MLP, a final LayerNorm and a linear LM head; Linears without bias, no weight tying, no
dropout; weights ~ N(0, 0.02), residual projections ~ N(0, 0.02 / sqrt(2 blocks)).
**Every** ``nn.Linear`` (the fused q/k/v projection, attention output, both MLP layers, the
LM head) is quantized, alike for each method; the embeddings, the LayerNorms and the
attention score / softmax / weighted-sum products stay float. (Per-row weight codes and
per-token / per-block input codes are the same for a fused q/k/v as for three Linears;
BitNet's per-tensor scale is then one for q, k and v together.)

**Methods** (see :func:`dat_ste_linear`, :func:`bitnet_b158_weight`, :func:`absmax8_act`,
:func:`bitnet1_weight`, :func:`sign_act`):

* ``dat``: ``tbnn.fake_quantize(method="dat")``, lam = 0.01, weights per output row
  (``block=None`` along the input axis), inputs in blocks of 128 along the contracted axis;
  affine grid for 1/4/8 bits (``meanstd`` at 1 bit: threshold at the block mean;
  ``minmax`` at 4 and 8 bits), linear for ternary and 2:4 codes;
* ``ste``: the same codes read out by the fixed inverse grid map ``s_f q + b_f``;
* ``bitnet``: BitNet b1.58 (Ma et al. 2024, arXiv:2402.17764) for ternary weights with 8-bit
  activations, BitNet's 1-bit weights (Wang et al. 2023, arXiv:2310.11453) with sign
  activations (XNOR-Net, Rastegari et al. 2016, arXiv:1603.05279) for A1W1;
* ``float``: no quantization.

**Corpus**: the docstrings (module, class and function) of every ``.py`` file of the
packages in :data:`PACKAGES`, read with :mod:`ast` (nothing imported, so offline and
side-effect free), one document per file, files in sorted order, test folders left out,
repeated docstrings dropped; characters outside printable ASCII become ``?``. A file goes
to validation when the SHA-256 of ``package/path`` is 0 mod 10 (:func:`build_corpus`).
Its SHA-256, size and the package versions are stored with every run.

**Grid** (:func:`plan`), in priority order so that a partial grid already answers the
question: float at 3 lrs; A1W1 DAT/STE/BitNet seed 0 at each lr; seeds 1 and 2; DAT with
lam in {0, 0.1} at DAT's best A1W1 lr (2 seeds); A4W1, A4W1 + 2:4 (DAT, STE) and ternary
weights with 8-bit activations (DAT, STE, BitNet b1.58) at the float model's best lr, 2
seeds; float at its best lr with seeds 1 and 2. Every finished run is one JSON file in
``--runs``; a rerun skips finished runs, so the grid resumes run by run.

**Stability** per run (:func:`stability`): the validation-loss curve, final and best loss,
spikes (episodes where the validation loss rises above its running minimum by more than
0.05, 0.1 or 0.2 nats), NaN/inf, percentiles of the gradient norm (before clipping), and
the fraction of weight codes that change per 100 steps over the last 20 % of training.

    python simulations/lm_quantized.py --runs /work/lm-grid/runs      # the grid (resumes)
    python simulations/lm_quantized.py --replot --runs docs/lm_quantized/runs  # figure + table only
    python simulations/lm_quantized.py --quick --runs /tmp/r --out /tmp/o      # seconds, for the tests
    python simulations/lm_quantized.py --gpu-size --device cuda               # 6 x 384, context 256
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import platform
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import ste_vs_dat  # noqa: E402

NAME = "lm_quantized"
#: Packages whose docstrings make the corpus (``stdlib``: this Python's standard library).
PACKAGES = ("stdlib", "numpy", "matplotlib")
#: Model and recipe of the CPU grid (see ``docs/lm_quantized.md`` for the timing behind it).
MODEL = dict(d_model=128, heads=4, blocks=4, context=64)
TRAIN = dict(batch=32, steps=1000, warmup=100, weight_decay=0.1, beta2=0.99, grad_clip=1.0,
             min_lr_frac=0.1, eval_every=50, eval_seqs=256, code_every=100, lam=0.01, block=128)
LRS = (1e-3, 3e-3, 1e-2)
SEEDS = (0, 1, 2)
#: The paper's nanoGPT size (item 4 of the issue): DAT, STE and BitNet at A1W1, then float.
GPU_MODEL = dict(d_model=384, heads=6, blocks=6, context=256)
GPU_TRAIN = dict(TRAIN, batch=64, steps=2000, warmup=100, eval_every=100, eval_seqs=256)
GPU_LR = 1e-3
GPU_TIME_LIMIT = 110.0  # seconds per run: 4 runs fit in 8 minutes of device time
#: ``--quick``: a tiny model on a slice of the corpus, every code path in seconds.
QUICK_MODEL = dict(d_model=32, heads=2, blocks=2, context=16)
QUICK_TRAIN = dict(TRAIN, batch=4, steps=20, warmup=4, eval_every=5, eval_seqs=16, code_every=5)
QUICK_FILES = 40  # standard-library files of the quick corpus
QUICK_LRS = (3e-3, 1e-2)
QUICK_SEEDS = (0,)

#: Quantization settings: weight bits (1.5 = ternary), activation bits, weight sparsity.
SETTINGS: dict[str, dict[str, Any]] = {
    "float": dict(w_bits=None, a_bits=None, sparsity=None),
    "A1W1": dict(w_bits=1, a_bits=1, sparsity=None),
    "A4W1": dict(w_bits=1, a_bits=4, sparsity=None),
    "A4W1+2:4": dict(w_bits=1, a_bits=4, sparsity="2:4"),
    "A8W1.58": dict(w_bits=1.5, a_bits=8, sparsity=None),
}
METHODS = ("float", "dat", "ste", "bitnet")
#: The settings BitNet has a method for.
BITNET_SETTINGS = ("A1W1", "A8W1.58")
SPIKE_THRESHOLDS = (0.05, 0.1, 0.2)
_EPS = 1e-5


# --------------------------------------------------------------------------------------
# corpus


def package_version(pkg: str) -> str:
    """The installed version of ``pkg`` (``stdlib``: the Python version)."""
    if pkg == "stdlib":
        return platform.python_version()
    dist = {"sklearn": "scikit-learn"}.get(pkg, pkg)
    return importlib.metadata.version(dist)


def _package_root(pkg: str) -> Path:
    if pkg == "stdlib":
        return Path(sysconfig.get_paths()["stdlib"])
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        raise ValueError(f"--packages names {pkg!r}, which is not installed.")
    return Path(spec.origin).parent


def _skip(pkg: str, rel: str) -> bool:
    parts = rel.split("/")
    if any(p in ("test", "tests", "testing") for p in parts[:-1]):
        return True
    return pkg == "stdlib" and parts[0] in ("site-packages", "dist-packages", "idlelib", "lib2to3",
                                              "turtledemo", "ensurepip")


def _file_docstrings(path: Path, seen: set[str]) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return ""
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and doc.strip() and doc not in seen:
                seen.add(doc)
                parts.append(doc.strip() + "\n\n")
    return "".join(parts)


def build_corpus(packages=PACKAGES, max_files: int | None = None) -> dict[str, Any]:
    """Docstrings of the installed ``packages``, split by document (file) into train / validation.

    Returns ``{"train": str, "val": str, "info": {...}}`` with the SHA-256 of the whole text
    (train documents, then validation documents, each in sorted path order), character
    counts, document counts and the package versions. ``max_files`` keeps the first files of
    each package (the quick corpus slice).
    """
    seen: set[str] = set()
    train, val = [], []
    n_train = n_val = 0
    for pkg in packages:
        root = _package_root(pkg)
        files = [f for f in sorted(root.rglob("*.py")) if not _skip(pkg, f.relative_to(root).as_posix())]
        for f in files[:max_files]:
            rel = f"{pkg}/{f.relative_to(root).as_posix()}"
            text = _file_docstrings(f, seen)
            if not text:
                continue
            text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)
            if int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 10 == 0:
                val.append(text)
                n_val += 1
            else:
                train.append(text)
                n_train += 1
    tr, va = "".join(train), "".join(val)
    info = {"packages": {p: package_version(p) for p in packages}, "max_files_per_package": max_files,
            "sha256": hashlib.sha256((tr + va).encode()).hexdigest(), "chars": len(tr) + len(va),
            "train_chars": len(tr), "val_chars": len(va), "train_docs": n_train, "val_docs": n_val,
            "split": "validation = files whose sha256('package/path') is 0 mod 10",
            "vocab": len(set(tr + va))}
    return {"train": tr, "val": va, "info": info}


# --------------------------------------------------------------------------------------
# quantizers


def dat_ste_linear(x, bits: float, method: str, block: int | None, lam: float, sparsity: str | None):
    r"""DAT or STE fake quantization of ``x`` along its last axis with ``tbnn.fake_quantize``.

    Ye et al. 2024 (arXiv:2409.09245), §3: ``u = f(x)`` (affine ``(x - b_f)/s_f`` for 1/4/8
    bits, linear ``x / s_f`` for ternary and 2:4 codes), ``q = u + sg(round_clip(u) - u)``,
    then DAT's ridge read-out ``g(q) = Cov(x,q)/(Var(q)+lam) (q - mean q) + mean x`` (linear:
    ``<q,x>/(<q,q>+lam) q``) or STE's fixed ``s_f q + b_f``. The 1-bit grid is ``meanstd``
    (threshold at the block mean), the 4- and 8-bit grid ``minmax``.
    """
    from tbnn.core.quant import fake_quantize

    grid = None if (bits == 1.5 or sparsity) else ("meanstd" if bits == 1 else "minmax")
    return fake_quantize(x, bits=bits, method=method, block=block, lam=lam, dim=-1, sparsity=sparsity,
                         grid=grid)


def bitnet_b158_weight(w):
    r"""BitNet b1.58 ternary weights (Ma et al. 2024, arXiv:2402.17764, Eq. 1-3).

    .. math:: \tilde W = \gamma\,\mathrm{RoundClip}\big(W / (\gamma + \epsilon), -1, 1\big),
              \qquad \gamma = \tfrac{1}{nm}\sum_{ij} |W_{ij}|

    per tensor, ``epsilon = 1e-5``; straight-through gradient ``dW~/dW = 1``.
    """
    g = w.detach().abs().mean()
    wq = (w.detach() / (g + _EPS)).round().clamp(-1, 1) * g
    return w + (wq - w).detach()


def absmax8_act(x):
    r"""BitNet's 8-bit absmax activations per token (Ma et al. 2024; Wang et al. 2023, Eq. 4).

    .. math:: \tilde x = \frac{\eta}{127}\,\mathrm{round}\Big(\mathrm{clip}\big(\tfrac{127 x}{\eta},
              -127, 127\big)\Big), \qquad \eta = \max_j |x_j|

    over the features of each token; straight-through gradient ``dx~/dx = 1``.
    """
    eta = x.detach().abs().amax(-1, keepdim=True).clamp_min(_EPS)
    xq = (127.0 * x.detach() / eta).clamp(-127, 127).round() * (eta / 127.0)
    return x + (xq - x).detach()


def bitnet1_weight(w):
    r"""BitNet's 1-bit weights (Wang et al. 2023, arXiv:2310.11453, Eq. 1-3).

    .. math:: \tilde W = \beta\,\mathrm{Sign}(W - \alpha), \qquad \alpha = \tfrac{1}{nm}\sum W_{ij},
              \quad \beta = \tfrac{1}{nm}\sum |W_{ij}|

    per tensor, ``Sign(0) = +1``; straight-through gradient ``dW~/dW = 1``.
    """
    wd = w.detach()
    wq = (wd - wd.mean() >= 0).to(w.dtype).mul(2).sub(1) * wd.abs().mean()
    return w + (wq - w).detach()


def sign_act(x):
    r"""Sign activations scaled by ``mean|x|`` per token, clipped straight-through (XNOR-Net).

    .. math:: \tilde x = K\,\mathrm{Sign}(x), \quad K = \tfrac{1}{d}\sum_j |x_j|, \qquad
              \frac{\partial \tilde x}{\partial x} = \mathbf 1_{|x| \le 1}

    (Rastegari et al. 2016, arXiv:1603.05279, §3.2 and the clipped STE of Hubara et al.
    2016); ``Sign(0) = +1``; ``K`` gets no gradient of its own.
    """
    xd = x.detach()
    xq = (xd >= 0).to(x.dtype).mul(2).sub(1) * xd.abs().mean(-1, keepdim=True)
    xc = x.clamp(-1.0, 1.0)  # gradient 1 inside |x| <= 1, 0 outside
    return xc + (xq - xc).detach()


def weight_codes(w, setting: str, method: str, lam: float):
    """The integer weight codes a quantized layer uses (detached), for the code-change rate."""
    import torch

    from tbnn.core.quant import quantize

    s = SETTINGS[setting]
    w = w.detach()
    if method == "bitnet":
        if s["w_bits"] == 1:
            return (w - w.mean() >= 0).to(torch.int8)
        return (w / (w.abs().mean() + _EPS)).round().clamp(-1, 1).to(torch.int8)
    grid = None if (s["w_bits"] == 1.5 or s["sparsity"]) else "meanstd"
    return quantize(w, bits=s["w_bits"], method=method, block=None, lam=lam, dim=-1,
                    sparsity=s["sparsity"], grid=grid).codes().to(torch.int8)


# --------------------------------------------------------------------------------------
# model


def build_model(vocab: int, model: dict, setting: str, method: str, lam: float, block: int = 128):
    """The character transformer with every ``nn.Linear`` quantized per ``setting`` / ``method``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    s = SETTINGS[setting]
    if (method == "float") != (setting == "float"):
        raise ValueError(f"method 'float' goes with setting 'float' only; got {method} at {setting}.")
    if method == "bitnet" and setting not in BITNET_SETTINGS:
        raise ValueError(f"method 'bitnet' exists for {', '.join(BITNET_SETTINGS)} only; got {setting}.")

    if method == "float":
        qw = qx = None
    elif method == "bitnet":
        qw, qx = (bitnet1_weight, sign_act) if s["w_bits"] == 1 else (bitnet_b158_weight, absmax8_act)
    else:
        def qw(w):
            return dat_ste_linear(w, s["w_bits"], method, None, lam, s["sparsity"])

        def qx(x):
            return dat_ste_linear(x, s["a_bits"], method, block, lam, None)

    class QLinear(nn.Linear):
        """``nn.Linear`` (no bias) whose weights and inputs pass through the method's quantizers."""

        def __init__(self, n_in: int, n_out: int):
            super().__init__(n_in, n_out, bias=False)

        def forward(self, x):
            if qw is None:
                return F.linear(x, self.weight)
            return F.linear(qx(x), qw(self.weight))

    net = ste_vs_dat._build_lm(vocab, model, method, qlinear=QLinear)
    L = model["blocks"]
    for name, p in net.named_parameters():  # nanoGPT's initialisation
        if p.dim() == 2:
            std = 0.02 / math.sqrt(2 * L) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
            torch.nn.init.normal_(p, 0.0, std)
    net.quantized = [m for m in net.modules() if isinstance(m, QLinear)]
    return net


# --------------------------------------------------------------------------------------
# stability measures


def spikes(curve, threshold: float) -> int:
    """Episodes in which ``curve`` rises above its running minimum by more than ``threshold``.

    An episode starts when ``v > min(previous values) + threshold`` and ends when a value
    comes back within ``threshold`` of the running minimum; a non-finite value ends the count.

    >>> spikes([3.0, 2.5, 2.7, 2.5, 2.8, 2.2], 0.1)
    2
    """
    run_min, count, above = math.inf, 0, False
    for v in curve:
        if v is None or not math.isfinite(v):
            break
        if v > run_min + threshold:
            count += 0 if above else 1
            above = True
        else:
            above = False
        run_min = min(run_min, v)
    return count


def stability(val_steps, val_loss, grad_norms, code_changes, steps: int) -> dict[str, Any]:
    """Final and best loss, spikes, flattening, gradient-norm percentiles, code-change rate."""
    import numpy as np

    finite = [v for v in val_loss if v is not None and math.isfinite(v)]
    best = min(finite) if finite else None
    final = val_loss[-1] if val_loss and val_loss[-1] is not None and math.isfinite(val_loss[-1]) else None
    # flattening: relative improvement of the validation loss over the last 20 % of steps
    flat = None
    if final is not None and val_steps and val_steps[-1] == steps:
        i = int(np.argmin([abs(s - 0.8 * steps) for s in val_steps]))
        if val_loss[i] is not None and math.isfinite(val_loss[i]) and val_loss[i] > 0:
            flat = (val_loss[i] - final) / val_loss[i]
    g = np.asarray([x for x in grad_norms if math.isfinite(x)], dtype=float)
    late = g[int(0.8 * len(g)):] if len(g) else g
    pct = (lambda a: {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)} | {"max": float(a.max())}
           if len(a) else None)
    return {
        "final_val_loss": final, "best_val_loss": best,
        "final_minus_best": (final - best) if final is not None and best is not None else None,
        "max_rise_above_running_min": max((v - min(finite[:i + 1]) for i, v in enumerate(finite)), default=None),
        "spikes": {f"{t:g}": spikes(val_loss, t) for t in SPIKE_THRESHOLDS},
        "rel_improvement_last_20pct": flat,
        "grad_norm": pct(g), "grad_norm_last_20pct": pct(late),
        "code_change_per_100_steps": float(np.mean(code_changes)) if code_changes else None,
    }


# --------------------------------------------------------------------------------------
# one run


def run_id(spec: dict) -> str:
    """File stem of a run: setting, method, lr, lam (DAT only), seed."""
    lam = f"_lam{spec['lam']:g}" if spec["method"] == "dat" else ""
    return f"{spec['setting']}_{spec['method']}_lr{spec['lr']:g}{lam}_s{spec['seed']}".replace(":", "-")


def train_one(corpus: dict, spec: dict, model: dict, train: dict, device: str = "cpu",
              time_limit: float | None = None) -> dict[str, Any]:
    """Train one run of the grid; returns its curves and :func:`stability` measures.

    AdamW (betas 0.9 / ``beta2``, weight decay on the 2-D weights), linear warm-up then
    cosine decay to ``min_lr_frac`` of the peak, gradients clipped to norm ``grad_clip``
    (the norm before clipping is recorded). Deterministic given the seed on the CPU: the same
    initial weights and batches for every method. A non-finite loss or gradient stops the
    run (``nan_at_step``). ``time_limit`` (seconds) stops it early, marked ``stopped_early``.
    """
    import torch
    import torch.nn.functional as F

    chars = sorted(set(corpus["train"] + corpus["val"]))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in corpus["train"]], dtype=torch.long)
    val = torch.tensor([stoi[c] for c in corpus["val"]], dtype=torch.long)
    vocab, C, B, steps = len(chars), model["context"], train["batch"], train["steps"]
    if min(len(data), len(val)) < C + 2:
        raise ValueError(f"the corpus's train / validation parts ({len(data)} / {len(val)} characters) must "
                         f"each be longer than the context ({C}) + 1.")

    common.seed_everything(spec["seed"])
    lam = spec["lam"] if spec["lam"] is not None else train["lam"]  # STE and BitNet have no ridge
    net = build_model(vocab, model, spec["setting"], spec["method"], lam, train["block"]).to(device)

    def nonfinite(err: ValueError) -> bool:  # a NaN / inf reached a quantizer, not a bug
        if "finite" not in str(err):
            raise err
        return True

    decay = [p for n, p in net.named_parameters() if p.dim() == 2 and not n.startswith(("tok.", "pos."))]
    rest = [p for n, p in net.named_parameters() if not (p.dim() == 2 and not n.startswith(("tok.", "pos.")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}], lr=spec["lr"], betas=(0.9, train["beta2"]))
    warm, floor = train["warmup"], train["min_lr_frac"]

    def lr_at(s: int) -> float:  # linear warm-up, then cosine to floor * peak
        if s < warm:
            return (s + 1) / warm
        p = (s - warm) / max(1, steps - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(spec["seed"])
    gv = torch.Generator().manual_seed(12345)  # the same validation windows for every run
    vstarts = torch.randint(0, len(val) - C - 1, (train["eval_seqs"],), generator=gv)
    vx = torch.stack([val[i:i + C] for i in vstarts]).to(device)
    vy = torch.stack([val[i + 1:i + C + 1] for i in vstarts]).to(device)

    @torch.no_grad()
    def evaluate() -> tuple[float, float]:
        net.eval()
        tot, acc = 0.0, 0.0
        try:
            for i in range(0, len(vx), 64):
                lg = net(vx[i:i + 64])
                tot += float(F.cross_entropy(lg.reshape(-1, vocab), vy[i:i + 64].reshape(-1), reduction="sum"))
                acc += float((lg.argmax(-1) == vy[i:i + 64]).sum())
        except ValueError as err:
            nonfinite(err)
            tot = acc = float("nan")
        net.train()
        return tot / vy.numel(), acc / vy.numel()

    code_start = int(0.8 * steps) // train["code_every"] * train["code_every"]
    codes_prev, code_changes = None, []

    def snapshot():
        nonlocal codes_prev
        if spec["method"] == "float":
            return
        cur = [weight_codes(m.weight, spec["setting"], spec["method"], lam) for m in net.quantized]
        if codes_prev is not None:
            changed = sum(int((a != b).sum()) for a, b in zip(cur, codes_prev))
            code_changes.append(changed / sum(a.numel() for a in cur))
        codes_prev = cur

    l0, a0 = evaluate()
    val_steps, val_loss, val_acc = [0], [l0], [a0]
    train_loss, grad_norms, window = [], [], []
    nan_at, stopped = None, None
    t0 = time.perf_counter()
    for step in range(steps):
        if step == code_start or (step > code_start and (step - code_start) % train["code_every"] == 0):
            snapshot()
        starts = torch.randint(0, len(data) - C - 1, (B,), generator=g)
        x = torch.stack([data[i:i + C] for i in starts]).to(device)
        y = torch.stack([data[i + 1:i + C + 1] for i in starts]).to(device)
        try:
            loss = F.cross_entropy(net(x).reshape(-1, vocab), y.reshape(-1))
        except ValueError as err:
            nonfinite(err)
            loss = torch.tensor(float("nan"))
        if not torch.isfinite(loss):
            nan_at = step
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(net.parameters(), train["grad_clip"]))
        if not math.isfinite(gn):
            nan_at = step
            break
        opt.step()
        sched.step()
        grad_norms.append(gn)
        window.append(loss.item())
        if len(window) == 10 or step + 1 == steps:
            train_loss.append(sum(window) / len(window))
            window = []
        if (step + 1) % train["eval_every"] == 0 or step + 1 == steps:
            vl, va = evaluate()
            val_steps.append(step + 1), val_loss.append(vl), val_acc.append(va)
        if time_limit is not None and time.perf_counter() - t0 > time_limit and step + 1 < steps:
            stopped = step + 1
            if val_steps[-1] != step + 1:
                vl, va = evaluate()
                val_steps.append(step + 1), val_loss.append(vl), val_acc.append(va)
            break
    if nan_at is None and stopped is None:
        snapshot()
    seconds = time.perf_counter() - t0
    done = len(grad_norms)
    out = {"spec": spec, "id": run_id(spec), "vocab": vocab, "steps_done": done, "nan_at_step": nan_at,
           "stopped_early_at_step": stopped, "seconds": seconds, "seconds_per_step": seconds / max(1, done),
           "val_steps": val_steps, "val_loss": val_loss, "val_accuracy": val_acc,
           "train_loss_per_10_steps": train_loss,
           "grad_norm_per_10_steps": [sum(grad_norms[i:i + 10]) / len(grad_norms[i:i + 10])
                                      for i in range(0, len(grad_norms), 10)],
           "code_change_per_100_steps_curve": code_changes, "code_change_from_step": code_start,
           "initial_val_loss": l0}
    out.update(stability(val_steps, val_loss, grad_norms, code_changes, steps))
    if nan_at is not None:
        out["final_val_loss"] = None
    return out


# --------------------------------------------------------------------------------------
# the grid


def _mean_final(runs: list[dict], **match) -> float:
    vals = [r["final_val_loss"] for r in runs if all(r["spec"][k] == v for k, v in match.items())]
    vals = [v if v is not None else math.inf for v in vals]
    return sum(vals) / len(vals) if vals else math.inf


def best_lr(runs: list[dict], lrs, **match) -> float | None:
    """The lr with the lowest mean final validation loss over the finished runs that match
    (a NaN run counts as infinite loss); ``None`` until a run at every lr has finished."""
    done = [lr for lr in lrs if any(r["spec"]["lr"] == lr and all(r["spec"][k] == v for k, v in match.items())
                                    for r in runs)]
    if len(done) < len(lrs):
        return None
    return min(lrs, key=lambda lr: _mean_final(runs, lr=lr, **match))


def plan(runs: list[dict], lrs, seeds, lam: float) -> list[dict]:
    """The grid in priority order; a group of runs that depends on unfinished runs is one
    entry ``{"waits": what, "count": runs}``.

    1. float at each lr, seed 0; 2. A1W1 DAT/STE/BitNet at each lr, seed 0; 3. the same for
    the other seeds; 4. DAT with lam 0 and 0.1 at DAT's best A1W1 lr (all seeds' mean), 2
    seeds; 5. A4W1 and A4W1 + 2:4 (DAT, STE) and A8W1.58 (DAT, STE, BitNet b1.58) at the
    float model's best lr (seed 0), 2 seeds; 6. float at its best lr, the other seeds.
    """
    def spec(setting, method, lr, seed, lam_=lam):
        return {"setting": setting, "method": method, "lr": lr, "seed": seed, "lam": lam_ if method == "dat" else None}

    out: list[dict] = [spec("float", "float", lr, seeds[0]) for lr in lrs]
    for s in seeds:
        out += [spec("A1W1", m, lr, s) for lr in lrs for m in ("dat", "ste", "bitnet")]
    two = seeds[:2]
    dat_lr = best_lr(runs, lrs, setting="A1W1", method="dat", lam=lam)
    if dat_lr is None or len([r for r in runs if r["spec"]["setting"] == "A1W1" and r["spec"]["method"] == "dat"
                              and r["spec"]["lam"] == lam]) < len(lrs) * len(seeds):
        out += [{"waits": "DAT lam ablation waits for every A1W1 DAT run", "count": len(two) * 2}]
    else:
        out += [spec("A1W1", "dat", dat_lr, s, la) for s in two for la in (0.0, 0.1)]
    f_lr = best_lr(runs, lrs, setting="float", seed=seeds[0])
    rest = [("A4W1", "dat"), ("A4W1", "ste"), ("A4W1+2:4", "dat"), ("A4W1+2:4", "ste"),
            ("A8W1.58", "dat"), ("A8W1.58", "ste"), ("A8W1.58", "bitnet")]
    if f_lr is None:
        out += [{"waits": "A4W1 / 2:4 / A8W1.58 wait for the float lr sweep", "count": len(rest) * len(two)},
                {"waits": "float seeds wait for the float lr sweep", "count": len(seeds) - 1}]
    else:
        out += [spec(st, m, f_lr, s) for s in two for st, m in rest]
        out += [spec("float", "float", f_lr, s) for s in seeds[1:]]
    return out


def load_runs(runs_dir: Path, preset: str) -> list[dict]:
    """The finished runs of ``preset`` in ``runs_dir`` (one JSON file each)."""
    out = []
    for f in sorted(Path(runs_dir).glob("*.json")):
        if f.name.startswith("."):  # a temporary file being written (tbnn.fileio.atomic_write)
            continue
        try:
            r = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if r.get("preset") == preset:
            out.append(r)
    return out


def _host() -> dict[str, Any]:
    from tbnn.runtime.machine import cpu_info

    try:
        cpu = cpu_info()
    except Exception:  # noqa: BLE001 - the description is informative only
        cpu = platform.processor()
    return {"cpu": cpu, "node": platform.node()}


def save_run(r: dict, folder: Path, name: str, preset: str, model: dict, train: dict, corpus: dict, args,
             **extra: Any) -> Path:
    """Stamp run ``r`` with what made it (preset, model, recipe, corpus, host, command, time) and
    write it to ``folder/name`` atomically."""
    r.update(preset=preset, model=model, train=train, corpus=corpus["info"], host=_host(),
             info=common.run_info(args), **extra, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    return common.write_json(folder, name, r)


def run_grid(args, preset: str, corpus: dict, model: dict, train: dict, lrs, seeds) -> int:
    """Train the unfinished runs of the grid in priority order; returns how many it trained."""
    runs_dir = Path(args.runs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    trained = 0
    while args.max_runs is None or trained < args.max_runs:
        runs = load_runs(runs_dir, preset)
        done = {r["id"] for r in runs}
        todo = [s for s in plan(runs, lrs, seeds, train["lam"]) if "waits" not in s and run_id(s) not in done]
        if not todo:
            break
        spec = todo[0]
        t = time.strftime("%H:%M:%S")
        print(f"[{t}] {preset}: run {len(done) + 1} {run_id(spec)} ...", flush=True)
        r = train_one(corpus, spec, model, train, args.device,
                      GPU_TIME_LIMIT if preset == "gpu" and not args.quick else None)
        save_run(r, runs_dir, run_id(spec) + ".json", preset, model, train, corpus, args)
        trained += 1
        fl = r["final_val_loss"]
        print(f"[{time.strftime('%H:%M:%S')}]   final val loss {fl if fl is None else round(fl, 4)}, "
              f"best {r['best_val_loss']}, {r['seconds_per_step']:.3f} s/step", flush=True)
    return trained


def gpu_plan(lr: float) -> list[dict]:
    """Item 4: DAT, STE and BitNet at A1W1, then float, at the nanoGPT size (one seed)."""
    return [{"setting": "A1W1", "method": m, "lr": lr, "seed": 0, "lam": 0.01 if m == "dat" else None}
            for m in ("dat", "ste", "bitnet")] + [{"setting": "float", "method": "float", "lr": lr, "seed": 0,
                                                    "lam": None}]


# --------------------------------------------------------------------------------------
# report


def _label(setting: str, method: str, lam) -> str:
    name = {"dat": "DAT", "ste": "STE", "float": "float",
            "bitnet": "BitNet b1.58" if setting == "A8W1.58" else "BitNet 1-bit"}[method]
    if method == "dat" and lam is not None and lam != TRAIN["lam"]:
        name += f" lam={lam:g}"
    return name


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (setting, method, lam, lr): mean ± std over seeds of the measures."""
    keys = []
    for r in runs:
        k = (r["spec"]["setting"], r["spec"]["method"], r["spec"]["lam"], r["spec"]["lr"])
        if k not in keys:
            keys.append(k)
    order = list(SETTINGS)
    keys.sort(key=lambda k: (order.index(k[0]), METHODS.index(k[1]), k[2] if k[2] is not None else -1, k[3]))
    rows = []
    for st, m, la, lr in keys:
        rr = sorted([r for r in runs if (r["spec"]["setting"], r["spec"]["method"], r["spec"]["lam"],
                                         r["spec"]["lr"]) == (st, m, la, lr)], key=lambda r: r["spec"]["seed"])
        fm, fs = common.mean_std(r["final_val_loss"] for r in rr)
        rows.append({
            "setting": st, "method": m, "lam": la, "lr": lr, "label": _label(st, m, la),
            "seeds": [r["spec"]["seed"] for r in rr], "final_mean": fm, "final_std": fs,
            "final": [r["final_val_loss"] for r in rr],
            "best_mean": common.mean_std(r["best_val_loss"] for r in rr)[0],
            "final_minus_best_mean": common.mean_std(r["final_minus_best"] for r in rr)[0],
            "spikes": {t: sum(r["spikes"][t] for r in rr) for t in rr[0]["spikes"]},
            "nan": sum(r["nan_at_step"] is not None for r in rr),
            "grad_norm_p99_mean": common.mean_std((r["grad_norm"] or {}).get("p99") for r in rr)[0],
            "code_change_mean": common.mean_std(r["code_change_per_100_steps"] for r in rr)[0],
            "rel_improvement_last_20pct": [r["rel_improvement_last_20pct"] for r in rr],
            "val_accuracy_mean": common.mean_std(r["val_accuracy"][-1] for r in rr if r["nan_at_step"] is None)[0],
        })
    return rows


def table(rows: list[dict]) -> str:
    """The Markdown table of :func:`summarise`."""
    def f(v, d=3):
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.{d}f}"

    return common.format_table(
        ["setting", "method", "lr", "seeds", "final val loss", "best", "final - best",
         "spikes >0.05/0.1/0.2", "NaN", "grad-norm p99", "codes changed / 100 steps", "flat (last 20 %)"],
        [[r["setting"], r["label"], f"{r['lr']:g}", len(r["seeds"]),
          f"{f(r['final_mean'])} ± {f(r['final_std'])}" if len(r["seeds"]) > 1 else f(r["final_mean"]),
          f(r["best_mean"]), f(r["final_minus_best_mean"]),
          "/".join(str(r["spikes"][t]) for t in r["spikes"]), r["nan"], f(r["grad_norm_p99_mean"], 2),
          "n/a" if r["code_change_mean"] is None or not math.isfinite(r["code_change_mean"])
          else f"{100 * r['code_change_mean']:.2f} %",
          ", ".join("n/a" if v is None else f"{100 * v:.1f} %" for v in r["rel_improvement_last_20pct"])]
         for r in rows], align="llrrrrrrrrrr")


def figure(runs: list[dict], lrs, out: Path, name: str, command: str, note: str = "") -> Path | None:
    """Validation-loss curves, mean over seeds with a ± std band: one panel per A1W1 lr, then
    the lam ablation and the A4W1 / 2:4 / A8W1.58 settings at their lr."""
    import numpy as np

    from tbnn.io.files import atomic_write
    from tbnn.viz.style import new_figure

    if not runs:
        return None
    plt = common.pyplot()
    colors = {"float": "0.25", "dat": "C0", "ste": "C3", "bitnet": "C2"}
    panels = [(f"A1W1, lr {lr:g}", lambda r, lr=lr: r["spec"]["lr"] == lr and r["spec"]["setting"] in ("A1W1", "float")
               and r["spec"]["lam"] in (None, TRAIN["lam"])) for lr in lrs]
    panels.append(("A1W1 DAT: ridge lam", lambda r: r["spec"]["setting"] == "A1W1" and r["spec"]["method"] == "dat"))
    for st in ("A4W1", "A4W1+2:4", "A8W1.58"):
        panels.append((st, lambda r, st=st: r["spec"]["setting"] == st))
    fig, axes = new_figure(13.0, 7.2, nrows=2, ncols=4)
    axes = list(axes.ravel())
    lam_colors = {0.0: "C1", 0.01: "C0", 0.1: "C4"}
    lam_lr = {r["spec"]["lr"] for r in runs if r["spec"]["method"] == "dat" and r["spec"]["lam"] != TRAIN["lam"]}
    for ax, (title, sel) in zip(axes, panels):
        rs = [r for r in runs if sel(r)]
        if title.startswith("A1W1 DAT"):
            rs = [r for r in rs if r["spec"]["lr"] in lam_lr]
            title += f" at lr {', '.join(f'{x:g}' for x in sorted(lam_lr))}" if lam_lr else " (not run yet)"
        elif not title.startswith("A1W1") and rs:
            title += f", lr {rs[0]['spec']['lr']:g}"
            fl = [r for r in runs if r["spec"]["setting"] == "float" and r["spec"]["lr"] == rs[0]["spec"]["lr"]]
            rs = rs + fl
        groups: dict[tuple, list[dict]] = {}
        for r in rs:
            groups.setdefault((r["spec"]["setting"], r["spec"]["method"], r["spec"]["lam"]), []).append(r)
        for (st, m, la), gr in sorted(groups.items(), key=lambda kv: METHODS.index(kv[0][1])):
            finite = [r for r in gr if r["nan_at_step"] is None]
            color = lam_colors.get(la, "C5") if title.startswith("A1W1 DAT") else colors[m]
            label = _label(st, m, la) if not title.startswith("A1W1 DAT") else f"DAT lam={la:g}"
            for r in gr:
                if r["nan_at_step"] is not None:
                    ax.axvline(r["nan_at_step"], color=color, ls=":", lw=1)
                    label += " (NaN)"
            if not finite:
                continue
            n = min(len(r["val_loss"]) for r in finite)
            a = np.asarray([r["val_loss"][:n] for r in finite], dtype=float)
            x = np.asarray(finite[0]["val_steps"][:n])
            mu, sd = a.mean(0), a.std(0)
            if len(finite) > 1:
                ax.fill_between(x, mu - sd, mu + sd, color=color, alpha=0.2, lw=0)
            ax.plot(x, mu, color=color, lw=1.2, label=f"{label} ({len(finite)} seed{'s' if len(finite) > 1 else ''})")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss (nats/char)")
        ax.grid(alpha=0.3, lw=0.5)
        if ax.lines:
            ax.legend(loc="upper right", fontsize=7)
            lo = min(min(v for v in line.get_ydata() if math.isfinite(v)) for line in ax.lines if len(line.get_ydata()))
            ax.set_ylim(lo - 0.1, lo + 2.0)
        else:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.axis("off")
    axes[-1].text(0.02, 0.95, note, ha="left", va="top", transform=axes[-1].transAxes, fontsize=8, wrap=True)
    fig.suptitle("Character transformer, every Linear quantized: validation loss, mean ± std over seeds")
    path = Path(out) / name
    meta = {"Description": f"made by: {command}", "Software": "tbnn simulations/lm_quantized.py"}
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=common.DPI, metadata=meta))
    finally:
        plt.close(fig)
    return path


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (what a reader of the .md can follow)."""
    try:
        return Path(path).resolve().relative_to(common.ROOT).as_posix()
    except ValueError:
        return str(path)


def report(runs: list[dict], planned: list, args, lrs, out: Path, command: str, trained: int = 0) -> dict:
    """Write ``lm_quantized.{json,md,png}`` (``--quick``: ``lm_quantized_quick.*``) from the finished runs."""
    stem = NAME + ("_quick" if args.quick else "_gpu" if args.gpu_size else "")
    rows = summarise(runs)
    n_plan = sum(p.get("count", 1) for p in planned)
    tab = table(rows)
    corpus = runs[0]["corpus"] if runs else None
    sps = {}
    for r in runs:
        key = f"{r['spec']['setting']} {r['spec']['method']}"
        sps.setdefault(key, []).append(r["seconds_per_step"])
    timing = {k: sum(v) / len(v) for k, v in sps.items()}
    done_ids = {r["id"] for r in runs}
    mean_sps = sum(timing.values()) / len(timing) if timing else math.nan
    wall = [r["seconds"] for r in runs]
    left = sum(p["count"] * mean_sps if "waits" in p else
               timing.get(f"{p['setting']} {p['method']}", mean_sps)
               for p in planned if "waits" in p or run_id(p) not in done_ids)
    left *= runs[0]["train"]["steps"] if runs else 0  # seconds per step include the evaluations
    md = (f"# Quantized character transformer: {len(runs)} of {n_plan} runs finished\n\n"
          f"Made by `{command}` from the run files in `{_shown(args.runs)}`.\n\n"
          + (f"Corpus: {corpus['chars']:,} characters ({corpus['train_chars']:,} train, {corpus['val_chars']:,} "
             f"validation, vocabulary {corpus['vocab']}), docstrings of "
             + ", ".join(f"{p} {v}" for p, v in corpus["packages"].items())
             + f", SHA-256 `{corpus['sha256']}`.\n\n" if corpus else "")
          + (f"Model {runs[0]['model']}; recipe {runs[0]['train']}.\n\n" if runs else "")
          + "Spikes: episodes where the validation loss rises above its running minimum by more than "
            "0.05 / 0.1 / 0.2 nats (summed over seeds). Flat: relative improvement of the validation "
            "loss over the last 20 % of steps (the float model has flattened when it is below 1 %). "
            "Codes changed: fraction of weight codes that change per 100 steps over the last 20 % "
            "of training.\n\n" + tab + "\n\n"
          + "Seconds per training step, evaluations included (mean over runs): "
          + ", ".join(f"{k} {v:.3f}" for k, v in timing.items())
          + f"; the {len(runs)} finished runs took {sum(wall) / 3600:.2f} h, the rest of the grid needs about "
            f"{left / 3600:.1f} h more at these speeds.\n")
    result = {"runs_finished": len(runs), "runs_planned": n_plan, "trained_now": trained,
              "hours_finished": sum(wall) / 3600, "hours_left_estimate": left / 3600, "summary": rows, "table_markdown": tab,
              "seconds_per_step": timing, "corpus": corpus, "command": command,
              "pending": [p["waits"] if "waits" in p else run_id(p) for p in planned
                          if "waits" in p or run_id(p) not in {r["id"] for r in runs}],
              "info": common.run_info(args)}
    common.write_json(out, stem + ".json", result)
    common.write_text(out, stem + ".md", md)
    figure(runs, lrs, out, stem + ".png", command,
           f"{len(runs)} of {n_plan} runs of the grid finished.\n"
           "Dotted vertical line: a run that hit NaN.\nBand: ± std over seeds.\n"
           "Numbers: " + stem + ".md")
    print(md)
    return result


# --------------------------------------------------------------------------------------
# main


def length_check(args, model: dict, train: dict, lr: float = 3e-3) -> dict:
    """The issue's length criterion on its own: the float model (the grid's recipe, ``lr``, seed 0)
    trained ``train["steps"]`` steps; written to ``RUNS/length/float_<steps>.json``."""
    corpus = build_corpus(PACKAGES[:1] if args.quick else PACKAGES, QUICK_FILES if args.quick else None)
    spec = {"setting": "float", "method": "float", "lr": lr, "seed": 0, "lam": None}
    r = train_one(corpus, spec, model, train, args.device, None)
    save_run(r, Path(args.runs) / "length", f"float_{train['steps']}.json", "length", model, train, corpus, args)
    flat = r["rel_improvement_last_20pct"]
    print(f"float, lr {lr}, {train['steps']} steps: final val loss {r['final_val_loss']:.4f}, "
          f"{100 * flat:.2f} % better over the last 20 % of steps: "
          f"{'flattened' if flat < 0.01 else 'not flattened'} (criterion < 1 %)", flush=True)
    return r


def main(argv: list[str] | None = None) -> dict:
    p = common.make_parser(__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=common.ROOT / "docs" / NAME / "runs",
                   help="folder of the per-run JSON files (finished runs are skipped: the grid resumes)")
    p.add_argument("--max-runs", type=int, default=None, help="train at most this many new runs, then report")
    p.add_argument("--gpu-size", action="store_true",
                   help="the paper's nanoGPT size (6 blocks, d 384, context 256): A1W1 DAT, STE, BitNet, float")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the preset's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--length-check", type=int, default=None, metavar="STEPS",
                   help="instead of the grid: train the float model (lr 3e-3, seed 0) for STEPS steps into "
                        "RUNS/length/ and print whether it flattened (< 1 %% better over its last 20 %% of steps)")
    args = common.parse_args(p, argv)
    if args.max_runs is not None and args.max_runs < 0:
        p.error(f"--max-runs must be >= 0; got {args.max_runs}.")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1; got {args.steps}.")
    if args.length_check is not None and args.length_check < 1:
        p.error(f"--length-check must be >= 1; got {args.length_check}.")
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    command = " ".join(["python simulations/lm_quantized.py", *(sys.argv[1:] if argv is None else argv)])

    model, train, lrs, seeds = dict(MODEL), dict(TRAIN), LRS, SEEDS
    if args.gpu_size:
        model, train = dict(GPU_MODEL), dict(GPU_TRAIN)
    if args.quick:
        train = dict(QUICK_TRAIN)
        lrs, seeds = QUICK_LRS, QUICK_SEEDS
        if not args.gpu_size:
            model = dict(QUICK_MODEL)
        else:
            train.update(batch=2, steps=3, eval_every=3, eval_seqs=4, code_every=1, warmup=1)
    if args.steps is not None:
        train["steps"] = args.steps
    preset = ("quick-" if args.quick else "") + ("gpu" if args.gpu_size else "cpu")

    if args.length_check is not None:
        return length_check(args, model, dict(train, steps=args.length_check))
    trained = 0
    if args.gpu_size:
        planned = gpu_plan(GPU_LR)
    if not args.replot:
        corpus = build_corpus(PACKAGES[:1] if args.quick else PACKAGES, QUICK_FILES if args.quick else None)
        if args.gpu_size:
            rd = Path(args.runs)
            rd.mkdir(parents=True, exist_ok=True)
            done = {r["id"] for r in load_runs(rd, preset)}
            for spec in planned[:args.max_runs] if args.max_runs is not None else planned:
                if run_id(spec) in done:
                    continue
                r = train_one(corpus, spec, model, train, args.device, None if args.quick else GPU_TIME_LIMIT)
                save_run(r, rd, run_id(spec) + ".json", preset, model, train, corpus, args, unconverged=True)
                trained += 1
                print(f"{run_id(spec)}: {r['steps_done']} steps, final val loss {r['final_val_loss']}", flush=True)
        else:
            trained = run_grid(args, preset, corpus, model, train, lrs, seeds)
    runs = load_runs(args.runs, preset)
    if not args.gpu_size:
        planned = plan(runs, lrs, seeds, train["lam"])
    return report(runs, planned, args, lrs if not args.gpu_size else (GPU_LR,), args.out, command, trained)


if __name__ == "__main__":
    main()
