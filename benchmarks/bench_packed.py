"""The packed AND + popcount engine against the dense one and the float twin, on issue 22's held-out shape.

Network (public layers only): input 64 -> two hidden layers of width W (TBLinear with 1-bit
weights, BatchNorm1d on the currents, TemporalBinary with T = 4, read-out blocks of 128)
-> TBLinear(W, 10); inputs encoded by a TemporalBinary layer. The float twin is the same
graph with Linear + BatchNorm1d + ReLU, in eval mode under ``torch.inference_mode``.
Weights are random (untrained); BatchNorm keeps its initial statistics.

Rows (one thread, batch 256, median of ``--repeats`` interleaved passes):

* **simulate**: ``tbnn.simulate(model, x)`` as it runs by default (step mode, every spike
  recorded and counted, input encoding included), its ``engine_seconds`` (the simulated
  pass, not the eval-forward reference it also runs), with the engine ``auto`` (packed
  where the kernel runs) and forced ``dense``; the float twin's forward over the same
  batches; and a gauge of the host, the popcount microbenchmark just before and after
  (:func:`popcount_micro`).
* **kernel**: the popcount kernel alone (``tbnn.kernels.block_terms``) for one W -> W layer,
  B = 256 samples x T = 4 step planes, in synaptic operations per second (B T K W / time),
  against a popcount microbenchmark on the same machine (``tbnn.kernels.packed.and_popcount``:
  AND + popcount of words in the first-level cache with nothing else in the loop, on the
  kernel's dispatch path: the most this CPU's AND + popcount can do).
* **profile**: per hidden layer and batch, the time of packing the spikes, the kernel
  (the integer terms with the read-out ``sum_b a_b N_b`` fused in), the rest of the layer's
  current (``tbnn.engine.step_current``: planes, rank-1 corrections, bias), BatchNorm and
  the neurons' firing.
* **activity**: the current of one W -> W layer (``tbnn.engine.step_current``, packed and
  dense) with input spikes drawn at 0.2 %, 1 %, 5 % and 20 % of neurons per step (the packed
  kernel skips words of 64 inputs with no spike in any step).

Allocator: like the ``tbnn`` command and ``bench_sim``, the benchmark first lets glibc's malloc
keep freed memory (:func:`tbnn.runtime.machine.tune_allocator`), for every engine alike;
``--malloc-defaults`` leaves it alone.

* **conv**: the mnist1d TBN CNN of ``tbnn train --dataset mnist1d --model tbn --arch cnn`` (input 40,
  two TBConv1d layers of 32 and 64 channels, kernel 5, the second with stride 2, BatchNorm,
  TemporalBinary with T = 4, blocks of 128; random weights) under ``tbnn.simulate``, packed
  (every receptive field once per read-out block, counted by AND + popcount) and dense, on
  ``--samples`` random inputs; both give the same logits bit for bit (checked here).
* **shapes**: the simulate table at the issue's further shapes, one setting of the held-out
  shape varied at a time: W = 256, 512, 1024, 2048; batch 64 and 1024 (at W = 256 and 1024);
  T = 2 and 8 (likewise).
* **drift**: for ``--seconds`` seconds in one process, alternately the 1 -> 1 layer's kernel and
  the float32 matmul of the same shape, each as the fastest of 10 calls in CPU time, every tenth
  of a second or so: how each one's speed moves over time on this machine, and their ratio
  (minimum, median and maximum over the windows). A shared or virtual machine whose speed
  changes affects the two unequally; the other tables sample such windows.
* **account**: every part of one simulated batch (step mode, every spike recorded and counted,
  as ``tbnn.simulate`` runs it) in CPU time, the rest (Python between the calls, the session's
  bookkeeping) as the whole batch less the parts, and the minor page faults per batch; and the
  set-up of a ``simulate`` call (weight codes, packed weights, offsets, fan-outs: the first
  batch of a call less a later one), from scratch (a model's first call, or after its weights
  changed) and with the weight codes kept from an earlier call on the same unchanged model
  (:func:`tbnn.engine.cached_weight_codes`). The simulate rows' calls keep their codes from the
  warm-up pass on (a cold call makes them in ``simulate``'s eval-forward reference, outside
  ``engine_seconds``).

Figures depend on the machine and its load: the CPU line and the load average are
printed with every table. No result here is asserted.

    python benchmarks/bench_packed.py [--widths 256 1024] [--repeats 9] [--samples 1024] [--clock wall|cpu]
    python benchmarks/bench_packed.py --only conv drift [--seconds 20] [--figure figures/bench_drift.png]
    python benchmarks/bench_packed.py --only shapes --repeats 5 --clock cpu

The simulate table also gives samples per CPU second (``engine_cpu_seconds_per_sample`` of
the summary against the twin's process time), steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import tbnn
from tbnn.engine import integer as engine
from tbnn.kernels import packed as kernels
from tbnn.kernels.current import LinearCall
from tbnn.runtime.machine import describe_cpu, tune_allocator

BLOCK, T, BATCH, INPUT, CLASSES = 128, 4, 256, 64, 10


def tbn(width: int, steps: int = T) -> nn.Sequential:
    """The held-out network at ``width`` (``steps``: its T)."""
    def hidden(i: int, o: int) -> list[nn.Module]:
        return [tbnn.TBLinear(i, o, weight_bits=1), nn.BatchNorm1d(o), tbnn.TemporalBinary(steps, block=BLOCK)]
    return nn.Sequential(tbnn.TemporalBinary(steps, block=BLOCK, grid="minmax"), *hidden(INPUT, width),
                         *hidden(width, width), tbnn.TBLinear(width, CLASSES, weight_bits=1)).eval()


def float_twin(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(INPUT, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width),
                         nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, CLASSES)).eval()


#: the simulate tables' last column: :func:`popcount_micro` before and after a width's passes
GAUGE = "host gauge: popcount micro before / after (G bit-ops/s)"

#: ``time.perf_counter`` (wall) or ``time.thread_time`` (this thread's CPU time: steadier on a loaded machine)
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def median_ms(fn: Callable[..., object], repeats: int, *args: object) -> float:
    """Median time of ``fn(*args)`` over ``repeats`` calls after one warm-up call, in ms (:data:`CLOCK`)."""
    fn(*args)
    ts = []
    clock = CLOCK[0]
    for _ in range(repeats):
        t0 = clock()
        fn(*args)
        ts.append(clock() - t0)
    return statistics.median(ts) * 1e3


def header() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{describe_cpu()}; packed kernel path: {kernels.kernel_path()}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); load average {load}")


def simulate_rows(widths: list[int], samples: int, repeats: int, batch: int = BATCH, steps: int = T,
                  shape: bool = False) -> list[str]:
    """The simulate table (``shape``: rows that also name the batch and T, without the header)."""
    x = torch.randn(samples, INPUT)
    rows = []
    for w in widths:
        torch.manual_seed(w)
        net, twin = tbn(w, steps), float_twin(w)
        times: dict[str, list[float]] = {"packed": [], "dense": [], "float": [], "packed_cpu": [], "float_cpu": []}
        acts = {}
        gauge = [popcount_micro(torch.Generator().manual_seed(0), 2**31, 3)]  # the host, before and after
        for rep in range(repeats + 1):  # interleaved; the first pass warms up (and builds) and is dropped
            for choice in ("packed", "dense"):
                engine.set_engine("auto" if choice == "packed" else "dense")
                # the weight codes are kept between calls, and a cold call makes them in simulate's
                # eval-forward reference, outside engine_seconds: the account rows time the set-up
                s = tbnn.simulate(net, x, batch=batch, record_layers=None).summary
                if rep:
                    times[choice].append(s["engine_seconds"])
                    if choice == "packed":
                        times["packed_cpu"].append(s["engine_cpu_seconds_per_sample"] * samples)
                acts[choice] = (s["engine"]["layers"], [round(layer["rate_per_step"], 3) for layer in s["layers"]])
            with torch.inference_mode():
                t0, c0 = time.perf_counter(), time.process_time()
                for i in range(0, samples, batch):
                    twin(x[i:i + batch])
                if rep:
                    times["float"].append(time.perf_counter() - t0)
                    times["float_cpu"].append(time.process_time() - c0)
        engine.set_engine("auto")
        gauge.append(popcount_micro(torch.Generator().manual_seed(0), 2**31, 3))
        sps = {k: samples / statistics.median(v) for k, v in times.items()}
        lead = f"| {w} | {batch} | {steps} |" if shape else f"| {w} |"
        rows.append(f"{lead} {sps['packed']:,.0f} | {sps['dense']:,.0f} | {sps['float']:,.0f} | "
                    f"{sps['packed'] / sps['float']:.2f}x | {sps['packed'] / sps['dense']:.2f}x | "
                    f"{sps['packed_cpu']:,.0f} / {sps['float_cpu']:,.0f} = {sps['packed_cpu'] / sps['float_cpu']:.2f}x | "
                    f"{acts['packed'][1]} | {', '.join(sorted(set(acts['packed'][0].values())))} | "
                    f"{gauge[0]:,.0f} / {gauge[1]:,.0f} |")
    return [("| W | simulate, packed (samples/s; weight codes kept) | simulate, dense | float twin | "
             "packed / float | packed / dense | by CPU time: packed / float twin (samples per CPU second) | "
             f"spikes per neuron and step (input, h1, h2) | engine per layer | {GAUGE} |"),
            "|---|---|---|---|---|---|---|---|---|---|", *rows]


#: The issue's further shapes: (width, batch, T), the held-out shape varied one setting at a time.
SHAPES: tuple[tuple[int, int, int], ...] = (
    (256, BATCH, T), (512, BATCH, T), (1024, BATCH, T), (2048, BATCH, T),
    (256, 64, T), (1024, 64, T), (256, 1024, T), (1024, 1024, T),
    (256, BATCH, 2), (1024, BATCH, 2), (256, BATCH, 8), (1024, BATCH, 8))


def shape_rows(samples: int, repeats: int) -> list[str]:
    """The simulate table at :data:`SHAPES` (at least two batches of samples each)."""
    rows = [r for w, b, t in SHAPES for r in simulate_rows([w], max(samples, 2 * b), repeats, b, t, shape=True)[2:]]
    return [("| W | batch | T | simulate, packed (samples/s) | simulate, dense | float twin | packed / float | "
             "packed / dense | by CPU time: packed / float twin | spikes per neuron and step (input, h1, h2) | "
             f"engine per layer | {GAUGE} |"), "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows]


def kernel_layer(w: int, gen: torch.Generator):
    """A W -> W layer of random 1-bit codes and B x T planes of spikes at 20 %, packed: ``(pw, x, coefs)``."""
    pw = kernels.pack_weights(torch.randint(0, 2, (w, w), generator=gen), BLOCK)
    planes = kernels.step_planes(torch.rand(T, BATCH, w, generator=gen) < 0.2, [8, 4, 2, 1])
    x = kernels.pack_bits(planes.bits.reshape(-1, w), BLOCK).reshape(T, BATCH, -1)
    return pw, x, torch.tensor(planes.coefs)


def popcount_micro(gen: torch.Generator, bit_ops: int, repeats: int) -> float:
    """The AND + popcount microbenchmark, G bit-operations per second: 1,024 words with 1,024 others
    (16 KiB: in the first-level cache), the kernel's tightest loop with nothing else in it, repeated
    for about ``bit_ops``; median of ``repeats`` (:data:`CLOCK`). Also the simulate table's gauge of
    the host: on the virtual machine of docs/benchmarks.md it falls by up to a third in the host's
    busy phases, with nothing of ours running, and the engine's ratio to the float twin with it.
    NaN without a compiled kernel."""
    if kernels.kernel() is None:
        return math.nan
    mx, mw = (torch.randint(-2**62, 2**62, (1024,), generator=gen) for _ in range(2))
    reps = max(1, bit_ops // 64 // 1024)
    per_word = median_ms(kernels.and_popcount, repeats, mx, mw, reps) / (reps * 1024)  # ms per word
    return 64e-6 / per_word


def kernel_rows(widths: list[int], repeats: int) -> list[str]:
    rows = []
    for w in widths:
        gen = torch.Generator().manual_seed(w)
        pw, x, coefs = kernel_layer(w, gen)
        ms = median_ms(kernels.block_terms, repeats, x, coefs, pw)
        ops = BATCH * T * w * (w + 1)  # the ones column (S_b) included
        a, b = torch.randn(BATCH, w), torch.randn(w, w)
        mm = median_ms(torch.matmul, repeats, a, b)
        micro = popcount_micro(gen, ops, repeats)
        rows.append(f"| {w} -> {w} | {ms:.3f} | {ops / ms / 1e6:.1f} | {micro:.1f} | "
                    f"{(ops / ms / 1e6) / micro:.2f} | {mm:.3f} |")
    return [("| layer | kernel ms (B=256, T=4 planes) | synaptic ops/s (G) | popcount micro (G bit-ops/s) | "
             "kernel / micro | float32 matmul [256, K] x [K, W] ms |"), "|---|---|---|---|---|---|", *rows]


def profile_rows(widths: list[int], repeats: int) -> list[str]:
    rows = []
    for w in widths:
        torch.manual_seed(w)
        net = tbn(w)
        x = torch.randn(BATCH, INPUT)
        enc, mods = net[0], list(net)[1:]
        code = enc.fire(x)
        for i in range(0, 6, 3):  # the two hidden layers: TBLinear, BatchNorm1d, TemporalBinary
            lin, bn, neuron = mods[i:i + 3]
            wc = engine.weight_codes(lin)
            engine.set_engine("auto")
            spikes = code.spikes
            pw = kernels.pack_weights(wc.q.reshape(wc.q.shape[0], -1), BLOCK)
            planes = kernels.step_planes(spikes, [int(v) for v in code.weights.tolist()])
            t_spikes = median_ms(getattr, repeats, code, "spikes")
            xw = kernels.pack_bits(planes.bits.reshape(-1, planes.bits.shape[-1]), BLOCK)
            t_pack = median_ms(kernels.pack_bits, repeats, planes.bits.reshape(-1, planes.bits.shape[-1]), BLOCK)
            xw = xw.reshape(T, BATCH, -1)
            coefs = torch.tensor(planes.coefs)
            gains = code.gain.detach().to(torch.float64).squeeze(-1).transpose(0, 1).reshape(-1, BATCH)
            t_kernel = median_ms(kernels.block_readout, repeats, xw, coefs, pw, gains)
            t_current = median_ms(engine.step_current, repeats, lin, code, wc)
            cur = engine.step_current(lin, code, wc)
            with torch.no_grad():
                t_bn = median_ms(bn, repeats, cur)
                h = bn(cur)
                t_fire = median_ms(neuron.fire, repeats, h)
                code = neuron.fire(h)
            rows.append(f"| {w} | {lin.in_features} -> {lin.out_features} | {t_spikes:.3f} | {t_pack:.3f} | "
                        f"{t_kernel:.3f} | {t_current - t_kernel:.3f} | {t_current:.3f} | {t_bn:.3f} | "
                        f"{t_fire:.3f} |")
    return [("| W | layer | spikes from the code | pack | kernel (terms + fused read-out) | rest of the current | "
             "layer current (step_current) | BatchNorm | neurons fire |"), "|---|---|---|---|---|---|---|---|---|",
            *rows]


class _Parts:
    """Exclusive CPU time (this thread) of the functions a simulated batch calls, by part.

    Each wrapped function's time, less that of the wrapped functions it calls, goes to the
    part its label names; the rest of a batch (Python between the calls, the model's own
    forward, the session's bookkeeping) is the whole batch less the parts.
    """

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.stack: list[list] = []
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: Callable[[tuple], str]) -> None:
        fn = getattr(owner, name)
        parts = self

        def timed(*args, **kwargs):
            parts.stack.append([label(args), time.thread_time(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                part, t0, inner = parts.stack.pop()
                dt = time.thread_time() - t0
                parts.ms[part] = parts.ms.get(part, 0.0) + (dt - inner) * 1e3
                if parts.stack:
                    parts.stack[-1][2] += dt

        self.undo.append((owner, name, fn))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, fn in reversed(self.undo):
            setattr(owner, name, fn)


#: the parts of a batch, in the order of the table
PARTS = ("input encoding (encoder: code, fit, firing)",
         "hidden neurons: codes, spikes and check, compiled (tbnn.kernels.neuron)",
         "hidden neurons: read-out fit (compiled, else in torch)",
         "hidden neurons: torch path (closed-form code, grid values), where the compiled neuron does not run",
         "hidden neurons: the rest of firing (grid input, target, code object)", "spikes recorded and counted",
         "pack spikes", "kernel, hidden layers", "kernel, read-out layer", "rest of the current, hidden layers",
         "rest of the current, read-out layer", "engine glue (planes, gains, checks)", "synaptic operations counted",
         "BatchNorm")


def account_rows(widths: list[int], repeats: int) -> list[str]:
    """Every part of a simulated batch (step mode, every spike recorded and counted) at each width."""
    cols = {w: account_width(w, repeats) for w in widths}
    names = [*PARTS, "Python and the rest (whole less the parts)", "**whole batch**",
             "set-up of a simulate call from scratch (its first batch less its second)",
             "set-up of a later call, weight codes kept (unchanged weights)", "page faults per batch"]
    rows = [f"| {name} | " + " | ".join(f"{cols[w][i]:.0f}" if i == len(names) - 1 else f"{cols[w][i]:.3f}"
                                       for w in widths) + " |" for i, name in enumerate(names)]
    return [f"| part of a batch (ms of CPU, mean of {repeats} batches) | " + " | ".join(f"W {w}" for w in widths)
            + " |", "|---|" + "---|" * len(widths), *rows]


def account_width(w: int, repeats: int) -> list[float]:
    """:func:`account_rows`' column at width ``w``: the parts, the rest, the whole, the set-up, the faults."""
    from tbnn.engine.session import SimulationSession
    from tbnn.nn import neurons
    from tbnn.sim.runners import runner_for

    torch.manual_seed(w)
    net = tbn(w)
    encoder, readout = net[0], net[-1]
    role = {"layer": "hidden"}
    parts = _Parts()

    def layer_role(args):
        role["layer"] = "read-out" if args[1] is readout else "hidden"
        role["neuron"] = None
        return "synaptic operations counted"

    def neuron_role(args):
        role["neuron"] = "input" if args[1] is encoder else "hidden"
        return "input encoding (encoder: code, fit, firing)" if args[1] is encoder else "neuron glue"

    def neuron_part(text):
        return lambda args: "input encoding (encoder: code, fit, firing)" if role.get("neuron") == "input" else text

    def by_layer(what):
        return lambda args: f"{what}, read-out layer" if role["layer"] == "read-out" else f"{what}, hidden layers"

    x = torch.randn(BATCH, INPUT)
    runner = runner_for(net)
    setups: dict[bool, list[float]] = {True: [], False: []}
    with torch.no_grad():
        for rep in range(7):  # a fresh session per call, as simulate makes; the first call warms up
            kept = bool(rep % 2)  # alternately with the weight codes kept from the call before, and from scratch
            if not kept:
                engine.clear_weight_codes()
            fresh = SimulationSession(runner.ids, "step")
            t0 = time.thread_time()
            runner.run(x, fresh)
            t1 = time.thread_time()
            runner.run(x, fresh)
            if rep:
                setups[kept].append((2 * t1 - t0 - time.thread_time()) * 1e3)
    parts.wrap(SimulationSession, "layer_current", layer_role)
    parts.wrap(SimulationSession, "neuron_output", neuron_role)
    parts.wrap(SimulationSession, "record_spikes", lambda a: "spikes recorded and counted")
    torch_path = "hidden neurons: torch path (closed-form code, grid values), where the compiled neuron does not run"
    parts.wrap(neurons.TemporalBinary, "encode", neuron_part(torch_path))
    parts.wrap(neurons, "grid_values", neuron_part(torch_path))
    parts.wrap(neurons.TemporalBinary, "fire_counted", neuron_part("hidden neurons: the rest of firing (grid input, target, "
                                                           "code object)"))
    parts.wrap(neurons, "fire_codes", neuron_part("hidden neurons: codes, spikes and check, compiled "
                                                  "(tbnn.kernels.neuron)"))
    for fn in ("dat_fit", "dat_readout"):
        parts.wrap(neurons, fn, neuron_part("hidden neurons: read-out fit (compiled, else in torch)"))
    parts.wrap(engine, "step_current", lambda a: "engine glue (planes, gains, checks)")
    for fn in ("_combine", "_linear_rest", "_linear_rest_terms"):  # offsets, rank-1 term, bias (alpha unless fused)
        parts.wrap(engine, fn, by_layer("rest of the current"))
    parts.wrap(kernels, "block_sums", by_layer("rest of the current"))  # S_b for the rank-1 term
    parts.wrap(kernels, "pack_bits", lambda a: "pack spikes")
    for fn in ("block_readout", "block_current"):  # the kernel, with the read-out (and alpha) fused in
        parts.wrap(kernels, fn, by_layer("kernel"))
    # the kernel with the read-out, alpha and the rest of the current, its operands made in the same call
    parts.wrap(LinearCall, "__call__", by_layer("kernel"))
    parts.wrap(nn.BatchNorm1d, "forward", lambda a: "BatchNorm")
    sess = SimulationSession(runner.ids, "step")
    whole = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    try:
        with torch.no_grad():
            for rep in range(repeats + 1):  # the first batch warms up and is dropped
                if rep == 1:
                    parts.ms.clear()
                    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.thread_time()
                runner.run(x, sess)
                sess.end_batch(BATCH)
                if rep:
                    whole.append((time.thread_time() - t0) * 1e3)
    finally:
        parts.restore()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / repeats
    ms = {k: v / repeats for k, v in parts.ms.items()}
    total = sum(whole) / repeats
    col = [ms.get(k, 0.0) for k in PARTS]  # "neuron glue" (the session's own part of a neuron) is in the rest
    return [*col, total - sum(col), total, statistics.median(setups[False]), statistics.median(setups[True]), faults]


def activity_rows(widths: list[int], repeats: int) -> list[str]:
    rows = []
    for w in widths:
        torch.manual_seed(w)
        lin = tbnn.TBLinear(w, w, weight_bits=1).eval()
        for p in (0.002, 0.01, 0.05, 0.20):
            code = tbnn.SpikeCode.from_spikes(torch.rand(T, BATCH, w) < p, "binary", block=BLOCK)
            got = {}
            for choice in ("auto", "dense"):
                engine.set_engine(choice)
                wc = engine.weight_codes(lin)
                got[choice] = median_ms(engine.step_current, repeats, lin, code, wc)
            engine.set_engine("auto")
            rows.append(f"| {w} | {p:.1%} | {got['auto']:.3f} | {got['dense']:.3f} |")
    return ["| W | active per step | packed current ms | dense current ms |", "|---|---|---|---|", *rows]


def conv_rows(samples: int, repeats: int) -> list[str]:
    from tbnn.nn.models import ModelConfig, build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(model="tbn", arch="cnn", in_features=40, n_classes=CLASSES)).eval()
    x = torch.randn(samples, 40)
    times: dict[str, list[float]] = {"packed": [], "dense": []}
    logits, engines = {}, {}
    for rep in range(repeats + 1):
        for choice in ("packed", "dense"):
            engine.set_engine("auto" if choice == "packed" else "dense")
            res = tbnn.simulate(net, x, batch=BATCH, record_layers=None)
            if rep:
                times[choice].append(res.summary["engine_seconds"])
            logits[choice], engines[choice] = res.logits, res.summary["engine"]["layers"]
    engine.set_engine("auto")
    sps = {k: samples / statistics.median(v) for k, v in times.items()}
    same = torch.equal(logits["packed"], logits["dense"])
    row = (f"| mnist1d TBN CNN (32, 64 channels) | {sps['packed']:,.0f} | {sps['dense']:,.0f} | "
           f"{sps['packed'] / sps['dense']:.2f}x | {'yes' if same else 'NO'} | "
           f"{', '.join(f'{k}: {v}' for k, v in engines['packed'].items())} |")
    return ["| network | simulate, packed (samples/s) | simulate, dense | packed / dense | logits equal | engine per layer |",
            "|---|---|---|---|---|---|", row]


def drift_figure(series: dict[int, tuple[list[float], list[float], list[float]]], path: Path) -> None:
    """Per width, each window's kernel and matmul time relative to its own fastest window, over time."""
    from tbnn.viz.style import layer_color, new_figure, save_figure

    fig, axes = new_figure(6.5, 2.4 * len(series), nrows=len(series), ncols=1, squeeze=False)
    for ax, (w, (at, ks, ms)) in zip(axes[:, 0], series.items()):
        ax.plot(at, [k / min(ks) for k in ks], lw=0.8, color=layer_color(0),
                label=f"AND + popcount kernel ({min(ks):.2f} ms at best)")
        ax.plot(at, [m / min(ms) for m in ms], lw=0.8, color=layer_color(1),
                label=f"float32 matmul, same shape ({min(ms):.2f} ms at best)")
        ax.set_ylabel("time / fastest window")
        ax.set_title(f"{w} -> {w} layer, B = {BATCH}, T = {T}: fastest of 10 calls per window, CPU time", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds into the run (one process, one thread)")
    save_figure(fig, path)


def drift_rows(widths: list[int], seconds: float, figure: Path | None = None) -> list[str]:
    rows = []
    series: dict[int, tuple[list[float], list[float], list[float]]] = {}
    for w in widths:
        gen = torch.Generator().manual_seed(w)
        pw, x, coefs = kernel_layer(w, gen)
        nb = kernels.words_per_block(BLOCK, w)[1]
        gains = torch.randn(nb, BATCH, generator=gen).to(torch.float32).to(torch.float64)
        a, b = torch.randn(BATCH, w, generator=gen), torch.randn(w, w, generator=gen)
        ks, ms, at = [], [], []
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            bk = bm = float("inf")
            for _ in range(10):
                t0 = time.thread_time()
                kernels.block_readout(x, coefs, pw, gains)
                bk = min(bk, time.thread_time() - t0)
                t0 = time.thread_time()
                torch.matmul(a, b)
                bm = min(bm, time.thread_time() - t0)
            ks.append(bk * 1e3)
            ms.append(bm * 1e3)
            at.append(time.perf_counter() - start)
        series[w] = (at, ks, ms)
        ratio = [m / k for k, m in zip(ks, ms)]

        def span(v: list[float], digits: int = 3) -> str:
            return f"{min(v):.{digits}f} / {statistics.median(v):.{digits}f} / {max(v):.{digits}f}"
        rows.append(f"| {w} -> {w} | {len(ks)} | {span(ks)} | {max(ks) / min(ks):.2f}x | {span(ms)} | "
                    f"{max(ms) / min(ms):.2f}x | {span(ratio, 2)} |")
    if figure is not None:
        drift_figure(series, figure)
    return [("| layer | windows | kernel ms min / median / max | kernel max / min | float32 matmul ms min / median "
             "/ max | matmul max / min | matmul / kernel min / median / max |"), "|---|---|---|---|---|---|---|", *rows]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="kernel, profile and activity rows: wall time or this thread's CPU time")
    ap.add_argument("--only", nargs="+", default=["simulate", "kernel", "profile", "account", "activity"],
                    choices=["simulate", "kernel", "profile", "account", "activity", "conv", "drift", "shapes"],
                    help="tables to print (conv, drift and shapes only when named)")
    ap.add_argument("--seconds", type=float, default=20.0, help="drift: how long to sample each width (default 20)")
    ap.add_argument("--figure", type=Path, default=None, help="drift: also plot the windows to this .png")
    ap.add_argument("--malloc-defaults", action="store_true",
                    help="leave glibc malloc at its defaults (default: tuned as the tbnn command tunes it)")
    args = ap.parse_args(argv)
    if not args.seconds > 0:
        ap.error(f"--seconds must be > 0; got {args.seconds}.")
    if args.figure is not None and (args.figure.suffix.lower() not in (".png", ".pdf", ".svg")
                                    or not args.figure.resolve().parent.is_dir()):
        ap.error(f"--figure must be a .png, .pdf or .svg path in an existing folder; got {args.figure}.")
    tuned = False if args.malloc_defaults else tune_allocator()
    torch.set_num_threads(1)
    CLOCK[0] = time.thread_time if args.clock == "cpu" else time.perf_counter
    tables = {"simulate": lambda: simulate_rows(args.widths, args.samples, args.repeats),
              "kernel": lambda: kernel_rows(args.widths, args.repeats),
              "profile": lambda: profile_rows(args.widths, args.repeats),
              "account": lambda: account_rows(args.widths, max(args.repeats, 5)),
              "activity": lambda: activity_rows(args.widths, args.repeats),
              "conv": lambda: conv_rows(args.samples, args.repeats),
              "drift": lambda: drift_rows(args.widths, args.seconds, args.figure),
              "shapes": lambda: shape_rows(args.samples, args.repeats)}
    for name in args.only:
        clock = "" if name == "simulate" else "; clock: cpu" if name in ("account", "drift") else f"; clock: {args.clock}"
        print(f"\n## {name}\n\n{header()}{clock}; malloc {'tuned' if tuned else 'defaults'}\n", flush=True)
        print("\n".join(tables[name]()), flush=True)


if __name__ == "__main__":
    main()
