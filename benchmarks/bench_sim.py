"""Simulator benchmark: tbnn's spiking simulator against snnTorch and the float floor.

Everything is measured in one run and printed side by side (DESIGN §3: speed and memory are
benchmarked, never asserted):

* throughput (samples/s) on the digits test split of the digits MLP (64-256-256-10, 1-bit
  weights, T = 4) in tbnn's ``step`` (event-driven) and ``folded`` modes;
* an snnTorch ``Leaky`` network of the same widths run the usual way (rate-coded input from
  ``snntorch.spikegen.rate``, a Python loop over time steps, spike/membrane recording) at
  equal ``T`` (4) and at matched accuracy (``T = 25``), its accuracy measured here;
* the float floor: the same MLP with float weights, one forward pass;
* where the step engine's time goes (``torch.profiler`` top ops and simple timers);
* peak memory (peak-RSS growth, each engine in its own subprocess, the VmHWM watermark reset
  after set-up; ``ru_maxrss`` where that is not possible) and weight storage;
* 'beyond': two candidate step engines (:func:`fast_tbn_step`): cached weight codes with a
  row sum in place of the all-ones matmul, and the same with exact int8 matmuls
  (``torch._int_mm``) of binary spikes by integer weight codes; and a bit-packed
  AND + popcount product (:func:`packed_and_popcount`), timed against the float matmul.

Timing: ``torch.set_num_threads(--threads)`` (default 1: on a shared 2-core machine OpenMP
spinning with 2 threads makes sgemm up to 10x slower and noisy), two warm-up passes per
engine, then ``--repeats`` passes interleaved round-robin over engines (so background load
hits all of them alike), median reported.

    python benchmarks/bench_sim.py            # full (~3-4 min on 2 cores), writes figures/bench_sim.{json,md}
    python benchmarks/bench_sim.py --quick    # a few seconds, prints only (unless --out)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
ENGINES_MEM = ("tbn_step", "tbn_folded", "snn_T4", "snn_T25", "float")


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


# --------------------------------------------------------------------------------------
# candidate step engines ('beyond'); not part of tbnn


class FastStep:
    """A step engine for TBN MLPs that prepares the weights once.

    Same arithmetic as :func:`tbnn.sim.step_current` (per time step, only spiking inputs
    contribute, scaled by their block's read-out gain), with three changes:

    * integer weight codes and their per-channel affine are computed once, not per batch;
    * the rank-1 correction ``L_1(a s_t)`` (a matmul with all-ones weights in tbnn) is the
      gain-weighted spike count of each sample, a row sum;
    * spikes made by the neurons are not re-checked for being 0/1 (see :meth:`fire`);
    * ``int8=True``: each step's product ``s_t Q^T`` runs per input block as an exact int8
      matmul (``torch._int_mm``, int32 accumulation) and is scaled by the block gain after.

    Hidden neurons fire by the same integrate-and-fire rule and read-out fit as tbnn. MLPs
    only (linear layers).
    """

    def __init__(self, model: nn.Module, int8: bool = False) -> None:
        from tbnn.layers import TBLinear
        from tbnn.sim import _weight_codes

        self.model, self.int8 = model, int8
        self.prep = []
        for layer in [*model.layers, model.readout]:
            if not isinstance(layer, TBLinear):
                raise ValueError("FastStep handles MLPs (TBLinear layers) only.")
            q, alpha, gamma = _weight_codes(layer)
            if int8 and not bool((q == q.round()).all() and q.abs().max() <= 127):
                raise ValueError("int8 path needs integer weight codes within [-127, 127].")
            w_hat = alpha[:, None] * q + gamma[:, None]
            self.prep.append(dict(qT=q.t().contiguous(), qT8=q.round().to(torch.int8).t().contiguous(),
                                  alpha=alpha, gamma=gamma, w_hat=w_hat, bias=layer.bias.detach()))

    def current(self, p: dict[str, Tensor], code) -> Tensor:
        s = code.spikes  # bool [T, B, F]
        T, B, F = s.shape
        gain = code.gain.reshape(B, -1)  # [B, nb]
        bs = code._bsize()
        g, o = code.feature_gain()
        wt = code.weights.tolist()
        acc_q = torch.zeros(B, p["qT"].shape[1])
        acc_1 = torch.zeros(B, 1)
        if self.int8:
            s8 = s.to(torch.int8)
            for t in range(T):
                for b in range(gain.shape[1]):
                    sl = slice(b * bs, min(F, (b + 1) * bs))
                    prod = torch._int_mm(s8[t, :, sl].contiguous(), p["qT8"][sl])  # exact int32
                    acc_q += (wt[t] * gain[:, b:b + 1]) * prod
        else:
            sf = s.to(torch.float32)
            for t in range(T):
                acc_q += wt[t] * ((sf[t] * g) @ p["qT"])
        sf = s.to(torch.float32)
        for t in range(T):
            acc_1 += wt[t] * (sf[t] * g).sum(1, keepdim=True)
        const = torch.nn.functional.linear(o, p["w_hat"], p["bias"])
        return p["alpha"] * acc_q + p["gamma"] * acc_1 + const

    @staticmethod
    def fire(neuron: nn.Module, current: Tensor):
        """:func:`tbnn.sim.neuron_fire` without re-validating spikes that are binary by
        construction (``SpikeCode.from_spikes`` checks every element is 0 or 1)."""
        from dataclasses import replace

        from tbnn.coding import SpikeCode, if_binary_run, step_weights
        from tbnn.quant import _to_blocks, grid_range
        from tbnn.sim import neuron_fire

        if neuron.scheme != "binary" or neuron.method != "dat":
            return neuron_fire(neuron, current)
        x = current.flatten(1)
        xb, valid, n = _to_blocks(x, -1, neuron.block)
        lo, hi = grid_range(xb, valid, n, neuron.grid, 2**neuron.timesteps)
        v = ((xb - lo) / (hi - lo)).clamp(0.0, 1.0).reshape(x.shape[0], -1)[:, : x.shape[1]]
        spikes = if_binary_run(v, neuron.timesteps)
        q = torch.tensordot(step_weights("binary", neuron.timesteps), spikes, dims=1)
        target = torch.relu(x) if neuron.target == "relu" else x
        code = SpikeCode(q, q, q, "binary", neuron.timesteps, neuron.block, target, raw=spikes.bool(),
                         lam=neuron.lam)
        gain, offset = code._fit(q, neuron.timesteps)
        return replace(code, gain=gain, offset=offset, shape=tuple(current.shape))

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        from dataclasses import replace

        m = self.model
        h = self.fire(m.encoder, x.reshape(x.shape[0], *m.cfg.input_shape))
        for p, norm, neuron in zip(self.prep, m.norms, m.neurons):
            h = self.fire(neuron, norm(self.current(p, h)))
        return self.current(self.prep[-1], replace(h, shape=None))


def fast_tbn_step(model: nn.Module, x: Tensor, int8: bool = False) -> Tensor:
    """Logits of a TBN MLP from the proposed step engine (see :class:`FastStep`)."""
    return FastStep(model, int8)(x)


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


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _train_runs(cache: Path, quick: bool, epochs: int, lif_t: int) -> dict[str, Path]:
    from tbnn.train import train

    sub = dict(n_train=300, n_test=120) if quick else {}
    specs = {
        "tbn": dict(model="tbn", timesteps=4, weight_bits=1),
        "float": dict(model="float"),
        "lif_T4": dict(model="lif", timesteps=4),
        f"lif_T{lif_t}": dict(model="lif", timesteps=lif_t),
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


def _load(runs: dict[str, Path], lif_t: int):
    from tbnn.data import load_dataset
    from tbnn.sim import load_run

    models = {k: load_run(v)[0] for k, v in runs.items()}
    tcfg = json.loads((runs["tbn"] / "config.json").read_text())["train"]
    ds = load_dataset("digits", seed=tcfg["seed"], n_train=tcfg["n_train"], n_test=tcfg["n_test"])
    engines: dict[str, Callable[[Tensor], Tensor]] = {}
    from tbnn.sim import _tbn_step

    tbn = models["tbn"]
    engines["tbn_step"] = lambda x: _tbn_step(tbn, x)[0]
    engines["tbn_folded"] = lambda x: tbn(x, mode="folded", record=True)[0]
    snn4 = SnnTorchMLP.from_lif(models["lif_T4"])
    snnT = SnnTorchMLP.from_lif(models[f"lif_T{lif_t}"])
    engines["snn_T4"] = lambda x: snn4(x)[0]
    engines[f"snn_T{lif_t}"] = lambda x: snnT(x)[0]
    fl = models["float"]
    engines["float"] = lambda x: fl(x)
    return models, ds, engines


def _batches(x: Tensor, batch: int) -> list[Tensor]:
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def _mem_child(args: argparse.Namespace) -> None:
    """Subprocess: peak RSS growth while one engine runs the test split."""
    torch.set_num_threads(args.threads)
    runs = {p.name: p for p in Path(args.cache).iterdir() if (p / "metrics.json").exists()}
    _, ds, engines = _load(runs, args.lif_t)
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
               "--batch", str(args.batch), "--threads", str(args.threads), "--lif-t", str(args.lif_t)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            out[name] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        out[name] = {"base_mib": d["base_kib"] / 1024, "peak_mib": d["peak_kib"] / 1024,
                     "delta_mib": (d["peak_kib"] - d["base_kib"]) / 1024}
    return out


def _profile_step(model: nn.Module, x: Tensor, rows: int = 10) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    from tbnn.sim import _tbn_step

    with torch.no_grad():
        _tbn_step(model, x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                _tbn_step(model, x)
    ev = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ev)
    ev.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "calls_per_batch": e.count / 3, "self_ms_per_batch": e.self_cpu_time_total / 3e3,
             "percent": 100 * e.self_cpu_time_total / total} for e in ev[:rows]]


def _step_breakdown(model: nn.Module, x: Tensor, repeats: int) -> dict[str, float]:
    """Wall time of the step engine's parts (ms per batch), by re-running its pieces in order."""
    from dataclasses import replace

    from tbnn.sim import _weight_codes, neuron_fire

    parts: dict[str, list[float]] = {}

    def tick(name: str, fn: Callable[[], Any]):
        t0 = time.perf_counter()
        r = fn()
        parts.setdefault(name, []).append(time.perf_counter() - t0)
        return r

    def current(layer, code):
        q_w, alpha, gamma = tick("weight codes (re-quantized every batch)", lambda: _weight_codes(layer))
        spikes = code.spikes.to(code.q.dtype)
        g, o = code.feature_gain()
        wt = code.weights
        ones = torch.ones_like(q_w)
        acc_q = tick("spikes x weight codes (T matmuls)",
                     lambda: sum(wt[t] * layer._op(code.unflatten(spikes[t] * g), q_w, None) for t in range(len(wt))))
        acc_1 = tick("rank-1 correction (T all-ones matmuls)",
                     lambda: sum(wt[t] * layer._op(code.unflatten(spikes[t] * g), ones, None) for t in range(len(wt))))
        def rest():
            w_hat = alpha.view(-1, 1) * q_w + gamma.view(-1, 1)
            return alpha * acc_q + gamma * acc_1 + layer._op(code.unflatten(o), w_hat, layer.bias)
        return tick("offset term + combine", rest)

    with torch.no_grad():
        for r in range(repeats + 1):
            if r == 1:
                parts.clear()
            t0 = time.perf_counter()
            h = tick("encode input (IF neurons + read-out fit)", lambda: neuron_fire(model.encoder, x))
            for layer, norm, neuron in zip(model.layers, model.norms, model.neurons):
                c = current(layer, h)
                c = tick("batch norm", lambda: norm(c))
                h = tick("hidden IF neurons + read-out fit", lambda: neuron_fire(neuron, c))
            current(model.readout, replace(h, shape=None))
            parts.setdefault("total", []).append(time.perf_counter() - t0)
    # each part's per-batch time: sum over its calls within one pass, median over passes
    n = len(parts["total"])
    out = {}
    for k, v in parts.items():
        per = len(v) // n
        out[k] = statistics.median(sum(v[i * per:(i + 1) * per]) for i in range(n)) * 1e3
    return out


def _packed_vs_float(repeats: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for B, F, O in [(256, 64, 256), (256, 256, 256), (256, 256, 10)]:
        s = torch.rand(B, F, generator=gen) < 0.25
        q = torch.rand(O, F, generator=gen) < 0.5
        qf = q.float().t().contiguous()
        q8 = q.to(torch.int8).t().contiguous()
        qp = pack_bits(q)
        ref = s.float() @ qf
        assert torch.equal(packed_and_popcount(pack_bits(s), qp).float(), ref)
        assert torch.equal(torch._int_mm(s.to(torch.int8), q8).float(), ref)
        cands = {
            "float matmul": lambda: s.float() @ qf,
            "int8 _int_mm": lambda: torch._int_mm(s.to(torch.int8), q8),
            "packed AND+popcount": lambda: packed_and_popcount(pack_bits(s), qp),
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
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 10; quick 1)")
    ap.add_argument("--batch", type=int, default=256, help="simulation batch (simulate()'s default)")
    ap.add_argument("--repeats", type=int, default=None, help="timed passes per engine (default 9; quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--lif-t", type=int, default=25, help="snnTorch T for matched accuracy (default 25)")
    ap.add_argument("--cache", type=str, default=None, help="keep/reuse trained runs here")
    ap.add_argument("--out", type=str, default=None,
                    help="write bench_sim.json/.md here (default figures/; --quick: nothing unless given)")
    ap.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurement")
    ap.add_argument("--_mem", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._mem:
        _mem_child(args)
        return {}
    epochs = args.epochs or (1 if args.quick else 10)
    repeats = args.repeats or (2 if args.quick else 9)
    out = Path(args.out) if args.out else (None if args.quick else ROOT / "figures")
    torch.set_num_threads(args.threads)
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
    from tbnn.models import weight_storage_bits
    from tbnn.sim import simulate

    lt = args.lif_t
    print(f"bench_sim: digits MLP 64-256-256-10, torch {torch.__version__}, {args.threads} thread(s), "
          f"batch {args.batch}, {epochs} epoch(s), {repeats} timed repeats", flush=True)
    runs = _train_runs(cache, args.quick, epochs, lt)
    models, ds, engines = _load(runs, lt)
    fast = FastStep(models["tbn"])
    fast8 = FastStep(models["tbn"], int8=True)
    engines["tbn_step_cached_rowsum"] = fast
    engines["tbn_step_int8"] = fast8
    x, y = ds.x_test, ds.y_test
    xs = _batches(x, args.batch)
    n = len(x)

    # accuracy of each engine on the same samples (snnTorch: averaged over 3 draws of input spikes)
    acc, agree = {}, {}
    with torch.no_grad():
        ref = torch.cat([engines["tbn_step"](xb) for xb in xs])
        for k, fn in engines.items():
            draws = 3 if k.startswith("snn") else 1
            a = []
            for d in range(draws):
                torch.manual_seed(d)
                logits = torch.cat([fn(xb) for xb in xs])
                a.append(float((logits.argmax(1) == y).float().mean()))
            acc[k] = statistics.mean(a)
            if k.startswith("tbn"):
                agree[k] = float((logits.argmax(1) == ref.argmax(1)).float().mean())

    # throughput: warm-up, then interleaved repeats
    times: dict[str, list[float]] = {k: [] for k in engines}
    with torch.no_grad():
        for fn in engines.values():
            for _ in range(2):
                for xb in xs:
                    fn(xb)
        for _ in range(repeats):
            for k, fn in engines.items():
                t0 = time.perf_counter()
                for xb in xs:
                    fn(xb)
                times[k].append(time.perf_counter() - t0)
    sps = {k: n / statistics.median(v) for k, v in times.items()}
    spread = {k: (n / max(v), n / min(v)) for k, v in times.items()}

    # tbnn's own simulate() figures (its timer covers the engine call only)
    sim_sps = {}
    for key, run, mode in (("tbn_step", "tbn", "step"), ("tbn_folded", "tbn", "folded"),
                           (f"snn_T{lt}", f"lif_T{lt}", "step"), ("snn_T4", "lif_T4", "step")):
        vals, last = [], None
        for _ in range(max(2, repeats // 3)):
            last = simulate(runs[run], mode=mode, batch=args.batch, progress=False)
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
    names = ["tbn_step", "tbn_folded", "snn_T4", f"snn_T{lt}", "float"]
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
             "tbn_step_cached_rowsum": "step, cached codes + row sum (proposed)",
             "tbn_step_int8": "step, int8 _int_mm (proposed)", "snn_T4": "snnTorch Leaky T=4",
             f"snn_T{lt}": f"snnTorch Leaky T={lt}", "float": "float MLP, 1 forward"}
    T_of = {"tbn_step": 4, "tbn_folded": 4, "tbn_step_cached_rowsum": 4, "tbn_step_int8": 4,
            "snn_T4": 4, f"snn_T{lt}": lt, "float": 1}
    rows = []
    for k in engines:
        rows.append([label[k], T_of[k], f"{acc[k]:.4f}", sps[k], f"{spread[k][0]:,.0f}-{spread[k][1]:,.0f}",
                     sps[k] / sps[f"snn_T{lt}"], sps[k] / sps["snn_T4"],
                     memory.get(k, {}).get("delta_mib", float("nan")) if k in memory else "-"])
    t1 = _fmt_table(["engine", "T", "accuracy", "samples/s (median)", "min-max", f"x snnTorch T={lt}",
                     "x snnTorch T=4", "peak RSS delta MiB"], rows)
    ratios = {
        "step_vs_snn_matched": sps["tbn_step"] / sps[f"snn_T{lt}"],
        "folded_vs_snn_matched": sps["tbn_folded"] / sps[f"snn_T{lt}"],
        "step_vs_snn_T4": sps["tbn_step"] / sps["snn_T4"],
        "step_vs_folded": sps["tbn_step"] / sps["tbn_folded"],
        "float_vs_step": sps["float"] / sps["tbn_step"],
        "int8_step_vs_step": sps["tbn_step_int8"] / sps["tbn_step"],
        "cached_step_vs_step": sps["tbn_step_cached_rowsum"] / sps["tbn_step"],
    }
    t_sim = _fmt_table(["simulate() run", "accuracy", "agreement", "spikes/sample", "syn. ops/sample",
                        "samples/s (its own timer)"],
                       [[label[k], f"{v['accuracy']:.4f}", f"{v['forward_agreement']:.3f}", v["spikes_per_sample"],
                         v["synaptic_ops_per_sample"], v["samples_per_second"]] for k, v in sim_sps.items()])
    t_prof = _fmt_table(["op (torch.profiler, self CPU)", "calls/batch", "ms/batch", "%"],
                        [[p["op"], p["calls_per_batch"], p["self_ms_per_batch"], p["percent"]] for p in profile])
    tot = breakdown["total"]
    t_br = _fmt_table(["step-engine part (timers)", "ms/batch", "% of total"],
                      [[k, v, 100 * v / tot] for k, v in breakdown.items()])
    t_st = _fmt_table(["model", "weight storage bits", "bits per synapse", "KiB"],
                      [["tbn (1-bit codes + scales + float BN/bias)", st["total"], st["total"] / n_syn, st["total"] / 8192],
                       ["  of which quantized weights + per-channel scales", st["quantized"], st["quantized"] / n_syn,
                        st["quantized"] / 8192],
                       ["float MLP (+BN)", storage["float"]["total"], storage["float"]["total"] / n_syn,
                        storage["float"]["total"] / 8192],
                       ["snnTorch Leaky MLP", storage["snn"]["total"], storage["snn"]["total"] / n_syn,
                        storage["snn"]["total"] / 8192]])
    t_pk = _fmt_table(["product (one step)", "float matmul ms", "int8 _int_mm ms", "packed AND+popcount ms"],
                      [[r["shape"], r["float matmul"], r["int8 _int_mm"], r["packed AND+popcount"]] for r in packed])
    t_mem = _fmt_table(["engine (subprocess)", "RSS after set-up MiB", "peak RSS MiB", "delta MiB"],
                       [[label[k], v.get("base_mib", float("nan")), v.get("peak_mib", float("nan")),
                         v.get("delta_mib", float("nan"))] for k, v in memory.items()]) if memory else "(skipped)"
    summary = (f"step vs snnTorch at matched accuracy (T={lt}): {ratios['step_vs_snn_matched']:.1f}x "
               f"(target >= 5x); folded: {ratios['folded_vs_snn_matched']:.1f}x; step vs snnTorch T=4: "
               f"{ratios['step_vs_snn_T4']:.2f}x; step/folded: {ratios['step_vs_folded']:.2f}; "
               f"float floor is {ratios['float_vs_step']:.1f}x faster than step; proposed int8 step: "
               f"{ratios['int8_step_vs_step']:.2f}x tbnn step")
    text = "\n\n".join([
        f"## Throughput on the digits test split ({n} samples, batch {args.batch}, {args.threads} thread(s))", t1,
        summary, "## tbnn.sim.simulate() figures", t_sim, "## Where step-mode time goes", t_prof, t_br,
        "## Peak memory (peak-RSS growth over RSS after set-up while the engine runs the test split; VmHWM reset)", t_mem,
        "## Weight storage", t_st, "## Beyond: binary spikes x binary weight codes, one step", t_pk])
    print(text, flush=True)
    result = {
        "config": {"threads": args.threads, "batch": args.batch, "epochs": epochs, "repeats": repeats,
                   "quick": args.quick, "samples": n, "lif_T": lt, "torch": torch.__version__},
        "accuracy": acc, "agreement_with_step": agree, "samples_per_second": sps,
        "samples_per_second_range": spread, "ratios": ratios, "simulate": sim_sps,
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
