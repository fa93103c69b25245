"""Simulator benchmark: tbnn's spiking simulator against snnTorch and the float floor.

Everything is measured in one run and printed side by side (speed and memory are
benchmarked here, never asserted in tests):

* throughput (samples/s) on the digits test split of the digits MLP (64-256-256-10, 1-bit
  weights, T = 4) in tbnn's ``step`` (event-driven) and ``folded`` modes;
* an snnTorch ``Leaky`` network of the same widths run the usual way (rate-coded input from
  ``snntorch.spikegen.rate``, a Python loop over time steps, spikes recorded) at equal ``T``
  (4) and at ``--lif-t`` (default 8 and 25), each trained by tbnn's ``lif`` recipe and its
  accuracy measured here; "matched accuracy" is the smallest of these ``T`` whose accuracy
  is within ``--match-tol`` (0.5 points) of the TBN's, and ``T = 25`` is always reported;
* the float floor: the same MLP with float weights, one forward pass;
* where the step engine's time goes (``torch.profiler`` top ops and simple timers);
* peak memory (peak-RSS growth, each engine in its own subprocess, the VmHWM watermark reset
  after set-up; ``ru_maxrss`` where that is not possible) and weight storage;
* the step engine with its products forced to float32, beside the probe's choice (int8 or
  bfloat16 where faster and exact), which the header prints with the probe's timings;
* 'beyond', for one step's product: the float32, bfloat16 and int8 (``torch._int_mm``)
  matmuls and a bit-packed AND + popcount (:func:`packed_and_popcount`, not adopted).

Allocator: like the ``tbnn`` command, the benchmark first lets glibc's malloc keep freed
memory (:func:`tbnn.runtime.machine.tune_allocator`), for every engine alike; ``--malloc-defaults``
leaves it alone. The throughput table counts minor page faults per pass of the split.

Timing: ``torch.set_num_threads(--threads)`` (default 1: on a shared 2-core machine OpenMP
spinning with 2 threads makes sgemm up to 10x slower and noisy), two warm-up passes per
engine, then ``--repeats`` passes interleaved round-robin over engines (so background load
hits all of them alike; a pass repeats the split until it lasts >= 20 ms, so that a fast
engine is not timed on one scheduler hiccup), median reported.

    python benchmarks/bench_sim.py            # full (~1-2 min on 2 cores), writes figures/bench_sim.{json,md}
    python benchmarks/bench_sim.py --quick    # a few seconds, prints only (unless --out)
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tbnn.runtime.machine import cpu_info, describe_allocator, tune_allocator
from tbnn.runtime.threads import add_threads_option, set_threads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_layers import spikingjelly_available  # noqa: E402


# --------------------------------------------------------------------------------------
# the snnTorch network, written the way the snnTorch tutorials write it


class SnnTorchMLP(nn.Module):
    """``Linear -> snn.Leaky`` per hidden layer, a linear read-out averaged over time.

    Input: ``snntorch.spikegen.rate`` of the input min-max scaled per sample to [0, 1]; a
    Python loop over ``num_steps`` with every layer's spikes recorded (the tutorial's
    ``spk_rec``). The same network as tbnn's ``lif`` model, so its trained weights load here.
    """

    def __init__(self, sizes: list[int], n_classes: int, num_steps: int, beta: float) -> None:
        super().__init__()
        import snntorch as snn

        self.num_steps = num_steps
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.lifs = nn.ModuleList(snn.Leaky(beta=beta) for _ in self.fcs)
        self.readout = nn.Linear(sizes[-1], n_classes)

    @classmethod
    def from_lif(cls, model: nn.Module) -> "SnnTorchMLP":
        cfg = model.cfg
        sizes = [cfg.in_features] + [cfg.hidden] * cfg.layers
        net = cls(sizes, cfg.n_classes, cfg.timesteps, cfg.beta)
        for fc, lin in zip(net.fcs, model.layers):
            fc.load_state_dict(lin.state_dict())
        net.readout.load_state_dict(model.readout.state_dict())
        return net.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        from snntorch import spikegen

        lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
        spk_in = spikegen.rate((x - lo) / (hi - lo).clamp_min(1e-12), num_steps=self.num_steps)
        mems = [lif.init_leaky() for lif in self.lifs]
        spk_rec: list[list[Tensor]] = [[] for _ in self.lifs]
        out = 0.0
        for step in range(self.num_steps):
            h = spk_in[step]
            for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                h, mems[i] = lif(fc(h), mems[i])
                spk_rec[i].append(h)
            out = out + self.readout(h)
        return out / self.num_steps, [torch.stack(r) for r in spk_rec]


class SpikingJellyMLP(nn.Module):
    r"""``layer.Linear -> neuron.LIFNode`` per hidden layer in SpikingJelly's multi-step mode
    (``step_mode="m"``: each layer takes all ``T`` steps at once), a linear read-out averaged
    over time, the input rate-coded as for snnTorch (Bernoulli spikes of the input min-max
    scaled per sample); the spikes of every layer are its outputs, so they are recorded.

    ``LIFNode(tau=1/(1-beta), decay_input=False, v_reset=None)`` is the leaky neuron with
    reset by subtraction: :math:`H_t = \beta V_{t-1} + I_t`, :math:`S_t = [H_t \ge \theta]`,
    :math:`V_t = H_t - \theta S_t`. It subtracts the threshold in the step it fires, where
    snnTorch's ``Leaky`` (tbnn's ``lif`` model) subtracts it from the next step's membrane
    and fires at :math:`U_t > \theta`; so the ``lif`` weights loaded here make a similar,
    not the same, network, and its accuracy is measured.
    """

    def __init__(self, sizes: list[int], n_classes: int, num_steps: int, beta: float, threshold: float) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer, neuron

        self.num_steps = num_steps
        tau = math.inf if beta >= 1 else 1.0 / (1.0 - beta)
        self.fcs = nn.ModuleList(layer.Linear(a, b, step_mode="m") for a, b in zip(sizes[:-1], sizes[1:]))
        self.lifs = nn.ModuleList(neuron.LIFNode(tau=tau, decay_input=False, v_threshold=threshold, v_reset=None,
                                                 step_mode="m") for _ in self.fcs)
        self.readout = nn.Linear(sizes[-1], n_classes)

    @classmethod
    def from_lif(cls, model: nn.Module) -> "SpikingJellyMLP":
        cfg = model.cfg
        sizes = [cfg.in_features] + [cfg.hidden] * cfg.layers
        net = cls(sizes, cfg.n_classes, cfg.timesteps, cfg.beta, cfg.threshold)
        for fc, lin in zip(net.fcs, model.layers):
            fc.load_state_dict(lin.state_dict())
        net.readout.load_state_dict(model.readout.state_dict())
        return net.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
        p = (x - lo) / (hi - lo).clamp_min(1e-12)
        h = torch.bernoulli(p.expand(self.num_steps, *p.shape))  # [T, B, F]
        spk_rec = []
        for fc, lif in zip(self.fcs, self.lifs):
            h = lif(fc(h))
            spk_rec.append(h)
        return self.readout(h).mean(0), spk_rec


# --------------------------------------------------------------------------------------
# candidate step engines ('beyond'); not part of tbnn


def forced(fn: Callable[[Tensor], Tensor], choice: str) -> Callable[[Tensor], Tensor]:
    """``fn`` run with the engine's product type forced to ``choice`` (restored to the probe's after)."""
    from tbnn.engine import integer as engine

    def run(x: Tensor) -> Tensor:
        engine.set_matmul_dtype(choice)
        try:
            return fn(x)
        finally:
            engine.set_matmul_dtype("auto")

    return run


_M1, _M2, _M4, _H = (v - (1 << 64) if v >= 1 << 63 else v for v in
                     (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x0101010101010101))


def pack_bits(b: Tensor) -> Tensor:
    """Pack a boolean ``[..., F]`` into int64 words ``[..., ceil(F/64)]`` (bit i of word j = b[64j+i])."""
    F = b.shape[-1]
    w = -(-F // 64)
    b = torch.nn.functional.pad(b.to(torch.int64), (0, w * 64 - F)).reshape(*b.shape[:-1], w, 64)
    return (b << torch.arange(64, dtype=torch.int64)).sum(-1)


def popcount64(x: Tensor) -> Tensor:
    """Bits set in each int64 (SWAR; shifts are arithmetic, so every shift is masked)."""
    x = x - ((x >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    return ((x * _H) >> 56) & 0xFF


def packed_and_popcount(s_packed: Tensor, q_packed: Tensor) -> Tensor:
    """``s Q^T`` for binary spikes ``s [B, F]`` and binary codes ``Q [O, F]``, both packed:
    ``popcount(s & q)`` summed over words, ``[B, O]`` int64. Exact."""
    return popcount64(s_packed[:, None, :] & q_packed[None, :, :]).sum(-1)


# --------------------------------------------------------------------------------------
# helpers


def tbnn_engine(model: nn.Module, schedule: str = "step") -> Callable[[Tensor], tuple[Tensor, Any]]:
    """tbnn's spiking engine as ``tbnn.simulate(schedule=...)`` runs it: the model's forward in a
    simulation session (every spike recorded and counted), the weight codes kept between
    calls as ``simulate`` keeps them (checked against the weights on every call)."""
    from tbnn.engine.session import SimulationSession
    from tbnn.sim.simulator import spike_layer_names

    names = spike_layer_names(model)
    ids = {id(mod): names[name] for name, mod in model.named_modules() if name in names}

    def run(x: Tensor) -> tuple[Tensor, Any]:
        with SimulationSession(ids, schedule) as sess:
            logits = model(x)
        return logits, sess

    return run


def _cpu_model() -> str:
    """The CPU model and the flags that decide the fast paths (avx2, avx512, bf16, amx), from
    :func:`tbnn.runtime.machine.cpu_info` (``lscpu``)."""
    info = cpu_info()
    return f"{info['model']} ({', '.join(info['raw']) or 'no avx2'})"


def _run_info() -> dict[str, Any]:
    """Date and git state of the checkout (``simulations/common.run_info``)."""
    sys.path.insert(0, str(ROOT / "simulations"))
    try:
        import common
    finally:
        sys.path.pop(0)
    info = common.run_info()
    return {"date": info["date"], "git": info["git"]}


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _train_runs(cache: Path, quick: bool, epochs: int, lif_ts: list[int]) -> dict[str, Path]:
    from tbnn.train.trainer import train

    sub = dict(n_train=300, n_test=120) if quick else {}
    specs = {
        "tbn": dict(model="tbn", timesteps=4, weight_bits=1),
        "float": dict(model="float"),
        **{f"lif_T{t}": dict(model="lif", timesteps=t) for t in lif_ts},
    }
    runs = {}
    for name, kw in specs.items():
        d = cache / name
        if not (d / "metrics.json").exists():
            if d.exists():
                import shutil

                shutil.rmtree(d)
            t0 = time.perf_counter()
            train("digits", out=d, epochs=epochs, seed=0, progress=False, hidden=256, layers=2, **sub, **kw)
            print(f"  trained {name:8s} in {time.perf_counter() - t0:5.1f} s", flush=True)
        runs[name] = d
    return runs


def _logits(net: nn.Module) -> Callable[[Tensor], Tensor]:
    """The first output (the logits) of ``net(x)``."""
    return lambda x: net(x)[0]


def _load(runs: dict[str, Path], lif_ts: list[int]):
    from tbnn.io.datasets import load_dataset
    from tbnn.sim.simulator import load_run

    models = {k: load_run(v)[0] for k, v in runs.items()}
    tcfg = json.loads((runs["tbn"] / "config.json").read_text())["train"]
    ds = load_dataset("digits", seed=tcfg["seed"], n_train=tcfg["n_train"], n_test=tcfg["n_test"])
    engines: dict[str, Callable[[Tensor], Tensor]] = {}
    tbn = models["tbn"]
    step, folded = tbnn_engine(tbn, "step"), tbnn_engine(tbn, "folded")
    engines["tbn_step"] = lambda x: step(x)[0]
    engines["tbn_folded"] = lambda x: folded(x)[0]
    anchors = {"snn": SnnTorchMLP, **({"sj": SpikingJellyMLP} if spikingjelly_available() else {})}
    for prefix, cls in anchors.items():
        for t in lif_ts:
            engines[f"{prefix}_T{t}"] = _logits(cls.from_lif(models[f"lif_T{t}"]))
    fl = models["float"]
    engines["float"] = lambda x: fl(x)
    return models, ds, engines


def _lif_ts(args: argparse.Namespace) -> list[int]:
    return sorted({4, *args.lif_t})


def _batches(x: Tensor, batch: int) -> list[Tensor]:
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def _mem_child(args: argparse.Namespace) -> None:
    """Subprocess: peak RSS growth while one engine runs the test split (threads set by main)."""
    runs = {p.name: p for p in Path(args.cache).iterdir() if (p / "metrics.json").exists()}
    _, ds, engines = _load(runs, _lif_ts(args))
    fn = engines[args._mem]
    xs = _batches(ds.x_test, args.batch)
    with torch.no_grad():
        fn(ds.x_test[:2])  # lazy initialisation (MKL, snnTorch state) is not engine memory
        # reset the peak-RSS watermark (VmHWM) so set-up and imports do not mask the engine
        reset = _reset_hwm()
        base = _vm_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for xb in xs:
            fn(xb)
        peak = _vm_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kib": base, "peak_kib": peak, "hwm_reset": reset}))


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _vm_kib("VmHWM") > 0
    except OSError:
        return False


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _memory(cache: Path, args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_mem", name, "--cache", str(cache),
               "--batch", str(args.batch), "--threads", str(args.threads), "--lif-t", *map(str, args.lif_t),
               *(["--malloc-defaults"] if args.malloc_defaults else [])]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            out[name] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        out[name] = {"base_mib": d["base_kib"] / 1024, "peak_mib": d["peak_kib"] / 1024,
                     "delta_mib": (d["peak_kib"] - d["base_kib"]) / 1024, "hwm_reset": d.get("hwm_reset")}
    return out


def _profile_step(model: nn.Module, x: Tensor, rows: int = 10) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    step = tbnn_engine(model, "step")
    with torch.no_grad():
        step(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step(x)
    ev = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ev)
    ev.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "calls_per_batch": e.count / 3, "self_ms_per_batch": e.self_cpu_time_total / 3e3,
             "percent": 100 * e.self_cpu_time_total / total} for e in ev[:rows]]


def _step_breakdown(model: nn.Module, x: Tensor, repeats: int) -> dict[str, float]:
    """Wall time of the step engine's parts (ms per batch), by re-running its pieces in order
    (:func:`tbnn.engine.step_current`, split into :func:`~tbnn.engine.step_terms` and combine)."""
    from dataclasses import replace

    from tbnn.engine import integer as engine

    parts: dict[str, list[float]] = {}
    layers = [*model.layers, model.readout]
    t0 = time.perf_counter()
    with torch.no_grad():
        wcs = {id(m): m.weight_codes() for m in layers}
    once_ms = (time.perf_counter() - t0) * 1e3

    def tick(name: str, fn: Callable[[], Any]):
        t0 = time.perf_counter()
        r = fn()
        parts.setdefault(name, []).append(time.perf_counter() - t0)
        return r

    def current(layer, code):
        wc = wcs[id(layer)]
        n, s = tick("integer terms: T step products per block + row sums, summed over steps",
                    lambda: engine.step_terms(layer, code, wc))
        return tick("combine: read-out gains, rank-1 terms, bias (float64)", lambda: engine.combine(layer, n, s, code, wc))

    with torch.no_grad():
        for r in range(repeats + 1):
            if r == 1:
                parts.clear()
            t0 = time.perf_counter()
            h = tick("input IF neurons + read-out fit + check", lambda: model.encoder.fire(x))
            for layer, norm, neuron in zip(model.layers, model.norms, model.neurons):
                c = current(layer, h)
                c = tick("batch norm", lambda norm=norm, c=c: norm(c))
                h = tick("hidden IF neurons + read-out fit + check", lambda neuron=neuron, c=c: neuron.fire(c))
            current(model.readout, replace(h, shape=None))
            parts.setdefault("total", []).append(time.perf_counter() - t0)
    # each part's per-batch time: sum over its calls within one pass, median over passes
    n = len(parts["total"])
    out = {}
    for k, v in parts.items():
        per = len(v) // n
        out[k] = statistics.median(sum(v[i * per:(i + 1) * per]) for i in range(n)) * 1e3
    total = out.pop("total")
    out["other (Python, dataclass copies)"] = max(0.0, total - sum(out.values()))
    out["total"] = total
    out["(weight codes, once per simulation, not in total)"] = once_ms
    return out


def _packed_vs_float(repeats: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for B, F, O in [(256, 64, 256), (256, 256, 256), (256, 256, 10)]:
        s = torch.rand(B, F, generator=gen) < 0.25
        q = torch.rand(O, F, generator=gen) < 0.5
        qf = q.float().t().contiguous()
        qb = q.to(torch.bfloat16).t().contiguous()
        q8 = q.to(torch.int8).t().contiguous()
        qp = pack_bits(q)
        ref = s.float() @ qf
        assert torch.equal(packed_and_popcount(pack_bits(s), qp).float(), ref)
        assert torch.equal(torch._int_mm(s.to(torch.int8), q8).float(), ref)
        assert torch.equal((s.to(torch.bfloat16) @ qb).float(), ref)  # every sum <= 256: exact
        cands = {
            "float matmul": lambda s=s, qf=qf: s.float() @ qf,
            "bf16 matmul": lambda s=s, qb=qb: s.view(torch.uint8).to(torch.bfloat16) @ qb,
            "int8 _int_mm": lambda s=s, q8=q8: torch._int_mm(s.to(torch.int8), q8),
            "packed AND+popcount": lambda s=s, qp=qp: packed_and_popcount(pack_bits(s), qp),
        }
        row: dict[str, Any] = {"shape": f"[{B}x{F}] x [{F}x{O}]"}
        for k, f in cands.items():
            f()
            row[k] = _median_time(f, repeats) * 1e3
        rows.append(row)
    return rows


def _fmt_table(headers: list[str], rows: list[list[Any]]) -> str:
    def f(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    cells = [[f(v) for v in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny training and few repeats (seconds)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 15; quick 1)")
    ap.add_argument("--batch", type=int, default=256, help="simulation batch (simulate()'s default)")
    ap.add_argument("--repeats", type=int, default=None, help="timed passes per engine (default 9; quick 2)")
    add_threads_option(ap)
    ap.add_argument("--lif-t", type=int, nargs="+", default=[8, 25],
                    help="snnTorch T values besides 4 (candidates for matched accuracy; default 8 25)")
    ap.add_argument("--match-tol", type=float, default=0.005,
                    help="accuracy tolerance (fraction) for 'matched accuracy' (default 0.005)")
    ap.add_argument("--cache", type=str, default=None, help="keep/reuse trained runs here")
    ap.add_argument("--out", type=str, default=None,
                    help="write bench_sim.json/.md here (default figures/; --quick: nothing unless given)")
    ap.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurement")
    ap.add_argument("--malloc-defaults", action="store_true",
                    help="leave glibc malloc at its defaults (default: tuned as the tbnn command tunes it, "
                         "tbnn.runtime.machine.tune_allocator, for every engine alike)")
    ap.add_argument("--_mem", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.malloc_defaults:
        args.allocator_tuned = tune_allocator()
    else:
        args.allocator_tuned = False
    set_threads(ap, args.threads)
    if args._mem:
        _mem_child(args)
        return {}
    epochs = args.epochs or (1 if args.quick else 15)
    repeats = args.repeats or (2 if args.quick else 9)
    out = Path(args.out) if args.out else (None if args.quick else ROOT / "figures")
    tmp = None
    if args.cache:
        cache = Path(args.cache)
        cache.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_sim_")
        cache = Path(tmp.name)
    try:
        return _run(args, cache, out, epochs, repeats)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(args, cache: Path, out: Path | None, epochs: int, repeats: int) -> dict[str, Any]:
    from tbnn.nn.models import weight_storage_bits
    from tbnn.sim.simulator import simulate

    lts = _lif_ts(args)
    print(f"bench_sim: digits MLP 64-256-256-10, torch {torch.__version__}, {args.threads} thread(s), "
          f"batch {args.batch}, {epochs} epoch(s), {repeats} timed repeats", flush=True)
    from tbnn.engine import integer as engine

    arith = engine.arithmetic("cpu")
    print(f"CPU: {_cpu_model()}; engine's exact products: {', '.join(arith['order']) or 'float32'} "
          f"where exact, else float32 ({arith['reason']})", flush=True)
    print(describe_allocator(args.allocator_tuned), flush=True)
    runs = _train_runs(cache, args.quick, epochs, lts)
    models, ds, engines = _load(runs, lts)
    engines["tbn_step_f32"] = forced(engines["tbn_step"], "float32")
    x, y = ds.x_test, ds.y_test
    xs = _batches(x, args.batch)
    n = len(x)

    # accuracy of each engine on the same samples (snnTorch, SpikingJelly: mean over 3 draws of input spikes)
    acc, agree = {}, {}
    with torch.no_grad():
        ref = torch.cat([engines["tbn_step"](xb) for xb in xs])
        for k, fn in engines.items():
            draws = 3 if k.startswith(("snn", "sj")) else 1
            a = []
            for d in range(draws):
                torch.manual_seed(d)
                logits = torch.cat([fn(xb) for xb in xs])
                a.append(float((logits.argmax(1) == y).float().mean()))
            acc[k] = statistics.mean(a)
            if k.startswith("tbn"):
                agree[k] = float((logits.argmax(1) == ref.argmax(1)).float().mean())
    # matched accuracy: the smallest snnTorch T within --match-tol of the TBN
    within = [t for t in lts if acc[f"snn_T{t}"] >= acc["tbn_step"] - args.match_tol]
    matched_t = within[0] if within else lts[-1]

    # throughput: warm-up, then interleaved repeats
    # (a pass runs the split `laps` times, enough for >= 20 ms, so that a fast engine's
    # figure is not one scheduler hiccup; throughput = laps * n / pass time)
    times: dict[str, list[float]] = {k: [] for k in engines}
    faults: dict[str, int] = {k: 0 for k in engines}  # minor page faults during the timed passes
    laps: dict[str, int] = {}
    with torch.no_grad():
        for k, fn in engines.items():
            for _ in range(2):
                t0 = time.perf_counter()
                for xb in xs:
                    fn(xb)
            laps[k] = max(1, math.ceil(0.02 / max(time.perf_counter() - t0, 1e-6)))
        for _ in range(repeats):
            for k, fn in engines.items():
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                for _ in range(laps[k]):
                    for xb in xs:
                        fn(xb)
                times[k].append((time.perf_counter() - t0) / laps[k])
                faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    faults_per_pass = {k: faults[k] / (repeats * laps[k]) for k in engines}
    sps = {k: n / statistics.median(v) for k, v in times.items()}
    spread = {k: (n / max(v), n / min(v)) for k, v in times.items()}

    # tbnn's own simulate() figures (its timer covers the engine call only)
    sim_sps = {}
    sim_jobs = [("tbn_step", "tbn", "step"), ("tbn_folded", "tbn", "folded")]
    sim_jobs += [(f"snn_T{t}", f"lif_T{t}", "step") for t in lts]
    for key, run, mode in sim_jobs:
        vals, last = [], None
        for _ in range(max(2, repeats // 3)):
            last = simulate(runs[run], schedule=mode, batch=args.batch, progress=False)
            vals.append(last["samples_per_second"])
        sim_sps[key] = {"samples_per_second": statistics.median(vals), "accuracy": last["accuracy"],
                        "forward_agreement": last["forward_agreement"],
                        "spikes_per_sample": last["spikes_per_sample"],
                        "synaptic_ops_per_sample": last["synaptic_ops_per_sample"]}

    # where step time goes
    xb0 = xs[0]
    profile = _profile_step(models["tbn"], xb0)
    breakdown = _step_breakdown(models["tbn"], xb0, max(3, repeats // 2))

    # memory and storage
    names = ["tbn_step", "tbn_folded", *[f"snn_T{t}" for t in lts], *[f"sj_T{t}" for t in lts if f"sj_T{t}" in engines],
             "float"]
    memory = {} if args.no_memory else _memory(cache, args, names)
    st = weight_storage_bits(models["tbn"])
    storage = {
        "tbn": st,
        "float": {"total": 32 * sum(t.numel() for t in models["float"].state_dict().values() if t.is_floating_point())},
        "snn": {"total": 32 * sum(p.numel() for p in models["lif_T4"].parameters())},
    }
    n_syn = sum(l.weight.numel() for l in [*models["tbn"].layers, models["tbn"].readout])
    packed = _packed_vs_float(max(5, repeats))

    # ------------------------------------------------------------------ report
    label = {"tbn_step": "tbnn step (simulate engine)", "tbn_folded": "tbnn folded",
             "tbn_step_f32": "tbnn step, float32 products (forced)", "float": "float MLP, 1 forward",
             **{f"snn_T{t}": f"snnTorch Leaky T={t}" for t in lts},
             **{f"sj_T{t}": f"SpikingJelly LIFNode T={t} (multi-step)" for t in lts}}
    T_of = {"tbn_step": 4, "tbn_folded": 4, "tbn_step_f32": 4, "float": 1,
            **{f"snn_T{t}": t for t in lts}, **{f"sj_T{t}": t for t in lts}}
    mk = f"snn_T{matched_t}"
    rows = []
    for k in engines:
        rows.append([label[k], T_of[k], f"{acc[k]:.4f}", sps[k], f"{spread[k][0]:,.0f}-{spread[k][1]:,.0f}",
                     sps[k] / sps[mk], sps[k] / sps[f"snn_T{lts[-1]}"], sps[k] / sps["snn_T4"],
                     f"{faults_per_pass[k]:,.0f}",
                     memory[k].get("delta_mib", float("nan")) if k in memory else "-"])
    t1 = _fmt_table(["engine", "T", "accuracy", "samples/s (median)", "min-max",
                     f"x snnTorch T={matched_t} (matched)", f"x snnTorch T={lts[-1]}", "x snnTorch T=4",
                     "page faults per pass", "peak RSS delta MiB"], rows)
    ratios = {
        "matched_T": matched_t,
        "step_vs_snn_matched": sps["tbn_step"] / sps[mk],
        "folded_vs_snn_matched": sps["tbn_folded"] / sps[mk],
        **{f"step_vs_snn_T{t}": sps["tbn_step"] / sps[f"snn_T{t}"] for t in lts},
        **{f"folded_vs_snn_T{t}": sps["tbn_folded"] / sps[f"snn_T{t}"] for t in lts},
        "step_vs_folded": sps["tbn_step"] / sps["tbn_folded"],
        "float_vs_step": sps["float"] / sps["tbn_step"],
        "float_vs_folded": sps["float"] / sps["tbn_folded"],
        "step_vs_step_float32": sps["tbn_step"] / sps["tbn_step_f32"],
        **{f"step_vs_sj_T{t}": sps["tbn_step"] / sps[f"sj_T{t}"] for t in lts if f"sj_T{t}" in sps},
    }
    t_sim = _fmt_table(["simulate() run", "accuracy", "agreement", "spikes/sample", "syn. ops/sample",
                        "samples/s (its own timer)"],
                       [[label[k], f"{v['accuracy']:.4f}", f"{v['forward_agreement']:.3f}", v["spikes_per_sample"],
                         v["synaptic_ops_per_sample"], v["samples_per_second"]] for k, v in sim_sps.items()])
    t_prof = _fmt_table(["op (torch.profiler, self CPU)", "calls/batch", "ms/batch", "%"],
                        [[p["op"], p["calls_per_batch"], p["self_ms_per_batch"], p["percent"]] for p in profile])
    tot = breakdown["total"]
    t_br = _fmt_table(["step-engine part (timers)", "ms/batch", "% of total"],
                      [[k, v, 100 * v / tot if not k.startswith("(") else "-"] for k, v in breakdown.items()])
    t_st = _fmt_table(["model", "weight storage bits", "bits per synapse", "KiB"],
                      [["tbn (1-bit codes + scales + float BN/bias)", st["total"], st["total"] / n_syn, st["total"] / 8192],
                       ["  of which quantized weights + per-channel scales", st["quantized"], st["quantized"] / n_syn,
                        st["quantized"] / 8192],
                       ["float MLP (+BN)", storage["float"]["total"], storage["float"]["total"] / n_syn,
                        storage["float"]["total"] / 8192],
                       ["snnTorch Leaky MLP", storage["snn"]["total"], storage["snn"]["total"] / n_syn,
                        storage["snn"]["total"] / 8192]])
    t_pk = _fmt_table(["product (one step)", "float32 matmul ms", "bf16 matmul ms", "int8 _int_mm ms",
                       "packed AND+popcount ms"],
                      [[r["shape"], r["float matmul"], r["bf16 matmul"], r["int8 _int_mm"], r["packed AND+popcount"]]
                       for r in packed])
    t_mem = _fmt_table(["engine (subprocess)", "RSS after set-up MiB", "peak RSS MiB", "delta MiB"],
                       [[label[k], v.get("base_mib", float("nan")), v.get("peak_mib", float("nan")),
                         v.get("delta_mib", float("nan"))] for k, v in memory.items()]) if memory else "(skipped)"
    summary = (f"matched accuracy: snnTorch T={matched_t} is the smallest T within {100 * args.match_tol:.1f} points "
               f"of the TBN ({100 * acc[mk]:.2f} % vs {100 * acc['tbn_step']:.2f} %)"
               + ("" if within else " -- none was; the largest T is used") + ". "
               f"tbnn step vs snnTorch at matched accuracy: {ratios['step_vs_snn_matched']:.2f}x (target >= 5x); "
               f"folded: {ratios['folded_vs_snn_matched']:.2f}x; step vs snnTorch T={lts[-1]}: "
               f"{ratios[f'step_vs_snn_T{lts[-1]}']:.2f}x; step vs snnTorch T=4: {ratios['step_vs_snn_T4']:.2f}x "
               f"(target >= 1x); step/folded: {ratios['step_vs_folded']:.2f}; the float floor is "
               f"{ratios['float_vs_folded']:.1f}x faster than folded (target <= 5x) and {ratios['float_vs_step']:.1f}x "
               f"faster than step; step with the probe's products ({', '.join(arith['order']) or 'float32'}) vs "
               f"float32 products: {ratios['step_vs_step_float32']:.2f}x; "
               + ("step vs SpikingJelly " + ", ".join(f"T={t}: {ratios[f'step_vs_sj_T{t}']:.2f}x" for t in lts)
                  if f"step_vs_sj_T{lts[0]}" in ratios else "SpikingJelly: not installed") + ".")
    text = "\n\n".join([
        f"## Throughput on the digits test split ({n} samples, batch {args.batch}, {args.threads} thread(s))",
        f"CPU: {_cpu_model()}; products: {arith['reason']}; {describe_allocator(args.allocator_tuned)}.", t1,
        summary, "## tbnn.sim.simulate() figures", t_sim, "## Where step-mode time goes", t_prof, t_br,
        "## Peak memory (peak-RSS growth over RSS after set-up while the engine runs the test split; VmHWM reset)",
        t_mem, "## Weight storage", t_st, "## Beyond: binary spikes x binary weight codes, one step", t_pk])
    print(text, flush=True)
    result = {
        "config": {"threads": args.threads, "batch": args.batch, "epochs": epochs, "repeats": repeats,
                   "quick": args.quick, "samples": n, "lif_T": lts, "match_tol": args.match_tol,
                   "torch": torch.__version__, **_run_info()},
        "engine_arithmetic": {k: arith[k] for k in ("low_precision", "order", "reason")},
        "allocator": describe_allocator(args.allocator_tuned),
        "accuracy": acc, "agreement_with_step": agree, "samples_per_second": sps,
        "samples_per_second_range": spread, "minor_page_faults_per_pass": faults_per_pass, "ratios": ratios, "simulate": sim_sps,
        "profile_step": profile, "step_breakdown_ms": breakdown, "memory": memory,
        "weight_storage_bits": storage, "synapses": n_syn, "packed_vs_float_ms": packed,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_sim.json").write_text(json.dumps(result, indent=2, default=float))
        (out / "bench_sim.md").write_text("# Simulator benchmark (benchmarks/bench_sim.py)\n\n" + text + "\n")
        print(f"wrote {out / 'bench_sim.json'} and {out / 'bench_sim.md'}")
    return result


if __name__ == "__main__":
    main()
