"""Spiking inference: run a network as binary events, record every spike, count the work.

``simulate(model, x, labels)`` runs **any** ``nn.Module`` whose spiking parts are tbnn
modules: the model's own ``forward`` runs (no tracing, so any Python control flow, skip
connections, pooling, flatten or BatchNorm on currents work) inside a
:class:`~tbnn.engine.session.SimulationSession`, with the model in eval mode for the call and its
train/eval state restored afterwards. In the session

* ``schedule="step"`` (event-driven): each tbnn layer accumulates, for every time step ``t``
  and input block ``b``, the integer sum ``w_t Q (s_t m_b)`` of the spikes that occurred
  (only presynaptic neurons that spiked add their column of weight codes ``Q``), and
  applies the block read-out gains and the rank-1 corrections of the matmul shortcut of
  Ye et al. (arXiv:2409.09245) once (:func:`tbnn.engine.step_current`); every
  :class:`~tbnn.nn.neurons.TemporalBinary` fires by integrate-and-fire with halving
  thresholds, one step at a time (:meth:`~tbnn.nn.neurons.TemporalBinary.fire`);
* ``schedule="folded"``: the same integer arithmetic with one product per block with the
  integer code (a binary code's steps are linear in the weights:
  :func:`tbnn.engine.exact`).

The integer sums are exact, so both schedules reproduce the model's eval forward pass (which
uses the same integer-code evaluation) bit for bit; predictions are compared with it on
every sample (``forward_agreement``). snnTorch ``lif`` runs of :mod:`tbnn.nn.models` are
simulated by their own per-step loop with the same random input spikes as the reference
pass (a generator forked from the global one, left as it was).

``schedule`` was called ``mode`` (still accepted, with a DeprecationWarning): the layers use
``evaluation`` for their float paths (:data:`tbnn.nn.layers.EVALUATIONS`), while the
simulator always computes in integers and only schedules the work over the time steps.
``simulation.json`` keeps the field name ``"mode"`` for the schedule (the file format is
unchanged).

``simulate(run_dir, out)`` does the same for a run folder written by ``tbnn train`` and
returns the ``simulation.json`` summary. Recorded spikes are sample-first,
``[samples, T, neurons]`` (the archive's layout); spikes in flight
(:attr:`tbnn.core.coding.SpikeCode.spikes`) are time-first, ``[T, batch, ...]``.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tbnn.parallel import distributed as ddp
from tbnn.engine import integer as engine
from tbnn.io.checkpoint import check_dataset
from tbnn.nn.runs import read_run
from tbnn.runtime.device import resolve_device, seed_device
from tbnn.runtime.threads import thread_policy
from tbnn.io.files import check_target, file_sha256, stage_dir, write_sealed_json
from tbnn.nn.models import build_model, weight_storage_bits
from tbnn.engine.session import SCHEDULES, SimulationSession
from tbnn.engine.weights import noting_weight_codes
from tbnn.sim.runners import runner_for, spike_layer_names
from tbnn.io.spikes import save_spikes
from tbnn.io.userdata import check_inputs
from tbnn.core.deprecation import deprecated_attributes, renamed_keyword
from tbnn.core.validate import check_int, check_labels, check_number

__all__ = ["SIM_SCHEDULES", "SIMULATION_FORMAT_VERSION", "SimulationResult", "load_run", "simulate", "simulate_model",
           "simulate_run", "spike_layer_names"]

#: ``step`` (event-driven) or ``folded`` (one product per block with the integer code).
SIM_SCHEDULES: tuple[str, ...] = SCHEDULES
#: Version of ``simulation.json``; files without the field (version 1) are still read.
#: (``FORMAT_VERSION`` before: kept, deprecated, as the run folder has a version of its own.)
SIMULATION_FORMAT_VERSION = 2
__getattr__ = deprecated_attributes(__name__, {
    "FORMAT_VERSION": ("tbnn.sim.simulator.SIMULATION_FORMAT_VERSION", lambda: SIMULATION_FORMAT_VERSION),
    "SIM_MODES": ("tbnn.sim.simulator.SIM_SCHEDULES", lambda: SIM_SCHEDULES)})


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its run directory (eval mode) and return it with its config.

    The config, the weights' header (names, shapes, stored hyperparameters) and the
    checksums are checked before anything large is allocated
    (:func:`tbnn.io.checkpoint.read_run`).
    """
    cfg, mcfg, state = read_run(run_dir)
    model = build_model(mcfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


@dataclass
class SimulationResult:
    """What :func:`simulate` returns for a model.

    Attributes
    ----------
    logits : ``[N, classes]`` from the simulated spikes.
    spikes : layer name -> bool ``[N_recorded, T, neurons]`` (sample-first; keys
        ``input``, ``hidden1``, ... for models of :mod:`tbnn.nn.models`, else the
        ``named_modules()`` name of each :class:`~tbnn.nn.neurons.TemporalBinary`).
    summary : the ``simulation.json`` fields.
    labels, predictions : ``[N]`` (labels ``None`` when not given).
    """

    logits: Tensor
    spikes: dict[str, np.ndarray]
    summary: dict[str, Any]
    predictions: np.ndarray
    labels: np.ndarray | None = None
    dt_ms: float = 1.0
    timesteps: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | os.PathLike, overwrite: bool = False, _flag: str = "out") -> Path:
        """Write ``simulation.json`` and ``spikes.npz`` (what ``tbnn analyze`` / ``tbnn raster`` read).

        Written as one set through the single owner of outputs
        (:func:`tbnn.io.files.stage_dir`): built beside ``out``, sealed in a manifest and moved
        in complete; ``simulation.json`` carries its own SHA-256 and the archive's
        (``spikes_sha256``), checked by the readers. ``out`` must be new or empty, or a
        simulation output that is all tbnn's own, replaced with ``overwrite=True``.
        """
        out = Path(out)
        if not ddp.is_main():  # under torchrun rank 0 writes (every rank holds the merged result)
            return out
        with stage_dir(out, "simulation", overwrite=overwrite, flag=_flag) as tmp:
            self._write_files(tmp)
        return out

    def _write_files(self, folder: Path) -> None:
        """The files of a simulation output, into ``folder`` (a staging folder)."""
        summary = dict(self.summary)
        if self.spikes:
            n = next(iter(self.spikes.values())).shape[0]
            labels = self.labels[:n] if self.labels is not None else None
            save_spikes(folder / "spikes.npz", self.spikes, labels=labels, predictions=self.predictions[:n],
                        timesteps=self.timesteps, dt_ms=self.dt_ms)
            summary["spikes_sha256"] = file_sha256(folder / "spikes.npz")
        write_sealed_json(folder / "simulation.json", summary)


def _check_optional_int(v: Any, name: str) -> None:
    if v is not None:
        check_int(v, name)


def simulate_model(
    model: nn.Module,
    x: Any,
    labels: Any = None,
    *,
    schedule: str = "step",
    batch: int = 256,
    dt_ms: float = 1.0,
    progress: bool = False,
    seed: int = 0,
    record_samples: int | None = None,
    record_layers: list[str] | None = None,
    mode: str | None = None,
) -> SimulationResult:
    """Simulate ``model`` on ``x`` as binary events; see :func:`simulate`.

    Three steps, each a function: :func:`run_batches` (the loop, on this process's share of
    the batches), :meth:`SimulationSession.merge_ranks` (under ``torchrun``: every rank's
    spikes and counts merged in sample order), :func:`summarize` (``simulation.json``).
    ``mode=`` is the deprecated spelling of ``schedule=``.
    """
    t_wall = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module or a run folder; got {type(model).__name__}.")
    schedule = renamed_keyword("simulate", "mode", "schedule", mode, schedule, "step", SIM_SCHEDULES)
    check_int(batch, "batch")
    check_int(seed, "seed", 0)
    _check_optional_int(record_samples, "record_samples")
    dt_ms = check_number(dt_ms, "dt_ms")
    xt = check_inputs(x, "x")
    yt = None if labels is None else torch.as_tensor(check_labels(labels, xt.shape[0], numpy=True))
    runner = runner_for(model)
    if record_layers is not None:
        unknown = sorted(set(record_layers) - set(runner.layer_names))
        if unknown:
            raise ValueError(f"record_layers names unknown layers {unknown}; the model's are "
                             f"{sorted(runner.layer_names)}.")
    sess = SimulationSession(runner.ids, schedule, record_layers, record_samples)
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    arith = engine.arithmetic(dev)
    packed = engine.packed_kernel() if dev.type == "cpu" else None  # built (once per machine) before the clock
    ddp.setup(dev)  # under torchrun: each rank simulates a block of whole batches (same seeds as one process)
    out, times = run_batches(model, runner, sess, xt, batch, seed, dev, progress, schedule)
    if ddp.is_distributed():  # merge the ranks' batches in sample order; counts summed exactly
        merged, times = sess.merge_ranks(ddp.merge_ranks, out, list(times))  # times: the slowest rank's
        out = {k: [torch.from_numpy(v)] for k, v in merged.items()}
    logits, pred, refp = (torch.cat(out[k]) for k in ("logits", "preds", "ref"))
    spikes = {k: sess.recorded_spikes(k) for k in sess.order if sess.recorded[k]}
    summary = summarize(model, runner, sess, pred, refp, yt, times, spikes, arith, packed, schedule, dt_ms)
    summary["wall_seconds"] = time.perf_counter() - t_wall
    return SimulationResult(logits, spikes, summary, pred.numpy(), yt.numpy() if yt is not None else None,
                            float(dt_ms), summary["timesteps"])


def run_batches(model: nn.Module, runner: Any, sess: SimulationSession, xt: Tensor, batch: int, seed: int,
                dev: torch.device, progress: bool, schedule: str
                ) -> tuple[dict[str, list[Tensor]], tuple[float, float, float]]:
    """Run this process's batches simulated in ``sess``, then each through the model's eval forward.

    Returns the per-batch ``logits`` (simulated), ``preds`` and ``ref`` (the eval forward's
    predictions), and (the largest logit difference, the wall seconds and the CPU seconds
    spent simulating). The first batch's eval forward runs first: the session adopts the weight
    codes it checked (:func:`tbnn.engine.weights.noting_weight_codes`). The simulated passes
    then run back to back, and the other batches' eval forwards after them, so that the
    reference does not evict the engine's data between its batches (measured: 0.1 ms of a 1.5 ms
    batch of the 64-256-256-10 network, Intel Xeon). Both passes of a batch draw from the same
    seed (``seed`` + first sample index), so rate codes see the same random numbers.
    """
    out: dict[str, list[Tensor]] = {"logits": [], "preds": [], "ref": []}
    logits: list[Tensor] = []
    max_diff, sim_seconds, cpu_seconds = 0.0, 0.0, 0.0
    starts = list(ddp.shard_items(range(0, len(xt), batch)))
    steps = [(i, True) for i in starts] + [(i, False) for i in starts[1:]]  # (first sample, simulated?)
    if progress and ddp.is_main():
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"simulate ({schedule}), then the eval forward", unit="batch", dynamic_ncols=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            refs: list[Tensor] = []
            for i, simulated in steps:
                xb = xt[i:i + batch].to(dev)
                if not simulated or not refs:  # the eval forward: the first batch's before any simulated pass
                    seed_device(seed + i, dev)
                    with noting_weight_codes() if not refs else contextlib.nullcontext() as noted:
                        refs.append(model(xb))
                    if noted is not None:  # the first one checked every layer's codes: the session adopts them
                        sess.adopt_weight_codes(noted)
                if simulated:
                    seed_device(seed + i, dev)
                    t0, c0 = time.perf_counter(), time.process_time()
                    logits.append(runner.run(xb, sess))
                    sim_seconds += time.perf_counter() - t0
                    cpu_seconds += time.process_time() - c0
                    sess.end_batch(len(xb))
        for i, sim, ref in zip(starts, logits, refs):
            max_diff = max(max_diff, _compared(xt[i:i + batch], i, sim, ref))
            out["logits"].append(sim.cpu())
            out["preds"].append(sim.argmax(1).cpu())
            out["ref"].append(ref.argmax(1).cpu())
    finally:
        model.train(was_training)
    return out, (max_diff, sim_seconds, cpu_seconds)


def _compared(xb: Tensor, i: int, logits: Tensor, ref: Tensor) -> float:
    """The largest difference of one batch's (samples from ``i``) simulated and eval-forward
    logits. Raises ``ValueError`` where either is not finite."""
    if not (bool(torch.isfinite(logits).all()) and bool(torch.isfinite(ref).all())):
        raise ValueError(f"x gives non-finite logits (NaN or infinite) on samples {i} to {i + len(xb) - 1} "
                         f"(largest |x| {float(xb.abs().max()):.3g}): the network overflows on these "
                         f"inputs; rescale x.")
    return float((logits - ref).abs().max())


def summarize(model: nn.Module, runner: Any, sess: SimulationSession, pred: Tensor, refp: Tensor,
              yt: Tensor | None, times: Sequence[float], spikes: dict[str, np.ndarray],
              arith: dict[str, Any], packed: Any, schedule: str, dt_ms: float) -> dict[str, Any]:
    """The ``simulation.json`` fields of a finished (and merged) session.

    ``times``: (largest logit difference, wall seconds, CPU seconds) of the simulation.
    """
    n = len(pred)
    max_diff, sim_seconds, cpu_seconds = times
    fan = {k: runner.synapse_counts(sess, k) for k in sess.order}  # stored as each layer's "fanout"
    ops, dense = runner.synaptic_ops(sess)
    layer_info, total_spikes, total_ops, total_dense = [], 0, 0.0, 0.0
    for k in sess.order:
        c, o, d = sess.spike_counts[k], float(ops.get(k, 0.0)), float(dense.get(k, 0.0))
        total_spikes, total_ops, total_dense = total_spikes + c, total_ops + o, total_dense + d
        nk, Tk, fo = sess.neurons[k], sess.timesteps[k], fan.get(k)
        layer_info.append({"name": k, "neurons": nk, "timesteps": Tk, "spikes": c,
                           "rate_per_step": c / (n * Tk * nk) if nk else 0.0,
                           "fanout": float(fo.mean()) if fo is not None else 0.0,
                           "synaptic_ops": o, "dense_synaptic_ops": d,
                           "analog_values_per_sample": sess.analog_values.get(k, 0.0) / n})
    storage = weight_storage_bits(model)
    steps = max(sess.timesteps.values()) if sess.timesteps else 0
    engine_rate = n / sim_seconds if sim_seconds > 0 else float("inf")
    return {
        "format_version": SIMULATION_FORMAT_VERSION,
        "model": getattr(getattr(model, "cfg", None), "model", type(model).__name__),
        "mode": schedule, "samples": n, "timesteps": steps, "dt_ms": float(dt_ms),
        "accuracy": float((pred == yt.cpu()).double().mean()) if yt is not None else None,
        "forward_agreement": float((pred == refp).double().mean()),
        "max_logit_difference": max_diff,
        "spikes_per_sample": total_spikes / n, "synaptic_ops_per_sample": total_ops / n,
        "dense_synaptic_ops_per_sample": total_dense / n,
        "energy_proxy": {"spikes_per_inference": total_spikes / n, "synaptic_ops_per_inference": total_ops / n,
                         "analog_values_per_inference": sum(sess.analog_values.values()) / n},
        "analog_values_per_sample": sum(sess.analog_values.values()) / n,
        "samples_per_second": engine_rate, "seconds": sim_seconds,
        "engine_samples_per_second": engine_rate, "engine_seconds": sim_seconds,
        "engine_cpu_seconds_per_sample": cpu_seconds / n,
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                    "cpus": os.cpu_count(), "policy": thread_policy(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
        "engine": {"low_precision": arith["low_precision"], "order": arith["order"], "reason": arith["reason"],
                   "packed_kernel": packed,
                   "layers": {name or type(mod).__name__: sess.layer_engines[id(mod)]
                              for name, mod in model.named_modules() if id(mod) in sess.layer_engines},
                   "neurons": dict(sess.neuron_engines)},
        "recorded": {"samples": int(next(iter(spikes.values())).shape[0]) if spikes else 0, "layers": list(spikes)},
        "weight_storage_bits": storage["total"], "weight_storage": storage, "layers": layer_info,
    }


def simulate_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    split: str = "test",
    limit: int | None = None,
    schedule: str = "step",
    batch: int = 256,
    dt_ms: float = 1.0,
    progress: bool = True,
    seed: int = 0,
    record_samples: int | None = None,
    record_layers: list[str] | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    _flag: str = "out",
    data: str | os.PathLike | None = None,
    spikes_only: bool = False,
    mode: str | None = None,
) -> dict[str, Any]:
    """Simulate a run folder written by ``tbnn train``; write ``simulation.json`` and ``spikes.npz`` to ``out``.

    ``spikes_only``: every neuron layer reads out with constant gains and offsets fitted on the
    training split (:func:`tbnn.nn.readout.spikes_only`), so no per-sample analog value crosses
    a layer: the run's spikes-only accuracy.

    Returns the summary dict (as written to ``simulation.json``). Refuses bad input before
    writing anything: a missing, truncated or foreign checkpoint, a config that disagrees
    with the tensors, ``limit < 1``, an unknown split or schedule, and data that are not the
    ones the run was trained on (their SHA-256 differs from ``config.json``'s
    ``train.data_sha256``). ``data``: a new path for the run's ``npz:`` / ``idx:`` data
    (moved or copied), accepted only with the same digest.
    ``out`` must be one the output policy allows (:func:`tbnn.io.files.check_target`); it is
    locked for the whole call (a second writer is refused) and written once, complete, by
    :func:`tbnn.io.files.stage_dir`. ``mode=`` is the deprecated spelling of ``schedule=``.
    """
    t_wall = time.perf_counter()
    schedule = renamed_keyword("simulate_run", "mode", "schedule", mode, schedule, "step", SIM_SCHEDULES)
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train'; got {split!r}.")
    _check_optional_int(limit, "limit")
    check_int(batch, "batch")
    dev = ddp.device_for(resolve_device(device))  # checked; cuda -> cuda:LOCAL_RANK under torchrun
    if out is not None:  # decided once, by rank 0, before the simulation
        ddp.broadcast_check(check_target, Path(out), "simulation", overwrite, _flag)
    with (stage_dir(out, "simulation", overwrite=overwrite, flag=_flag) if out is not None and ddp.is_main()
          else contextlib.nullcontext(None)) as staging:
        res = _simulate_run(run_dir, split, limit, schedule, batch, dt_ms, progress, seed, record_samples,
                            record_layers, dev, data, spikes_only)
        res.summary = {**res.summary, "wall_seconds": time.perf_counter() - t_wall}
        if staging is not None:
            res._write_files(staging)
    return res.summary


def _simulate_run(run_dir, split, limit, schedule, batch, dt_ms, progress, seed, record_samples, record_layers,
                  dev, data, spikes_only=False) -> SimulationResult:
    model, cfg = load_run(run_dir, dev)
    tcfg = cfg.get("train", {})
    if model.cfg.model == "float":
        raise ValueError("model 'float' has no spikes to simulate; simulate a tbn, ste or lif run.")
    ds = _pinned_dataset(Path(run_dir), tcfg, data)
    check_dataset(model.cfg, ds, Path(run_dir) / "config.json")
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    sim_kw = dict(schedule=schedule, batch=batch, dt_ms=dt_ms, progress=progress, seed=seed,
                  record_samples=record_samples, record_layers=record_layers)
    if spikes_only:
        from tbnn.nn.readout import spikes_only as fixed_readout

        with fixed_readout(model, ds.x_train):
            res = simulate_model(model, x, y, **sim_kw)
    else:
        res = simulate_model(model, x, y, **sim_kw)
    res.summary = {"run": str(run_dir), "split": split, "spikes_only": bool(spikes_only), **res.summary}
    return res



def _pinned_dataset(run_dir: Path, tcfg: dict[str, Any], data: str | os.PathLike | None) -> Any:
    """The run's dataset, from ``data`` when given, refused unless its SHA-256 is the recorded one."""
    from tbnn.io.datasets import DATASET_SPECS, load_dataset, parse_dataset_name

    name = tcfg.get("dataset", "digits")
    kind, path = parse_dataset_name(name)
    if data is not None:
        if path is None:
            files = ", ".join(spec.name for spec in DATASET_SPECS.values() if spec.takes_path)
            raise ValueError(f"data re-points a run trained on a file ({files}); run {run_dir} was "
                             f"trained on the built-in dataset {name}.")
        path = str(Path(data).expanduser().resolve())
        name = f"{kind}:{path}"
    elif path is not None and not Path(path).exists():
        raise ValueError(f"the data of run {run_dir}, {path}, no longer exist (moved?); pass data=PATH "
                         f"(--data PATH) to point the run at a copy with the same content.")
    ds = load_dataset(name, seed=tcfg.get("seed", 0), n_train=tcfg.get("n_train"),
                      n_test=tcfg.get("n_test"), normalize=tcfg.get("normalize", "auto"))
    want = tcfg.get("data_sha256")
    if want is None:
        warnings.warn(f"run {run_dir} records no digest of its data (written before data pinning): {name} is "
                      f"used unchecked.", stacklevel=3)
    elif ds.sha256 != want:
        where = path if path is not None else f"the built-in dataset {name}"
        raise ValueError(f"{where} no longer holds the data run {run_dir} was trained on (their SHA-256 differs "
                         f"from config.json field train.data_sha256): the file was changed or replaced"
                         + ("; pass data=PATH (--data PATH) to use an unchanged copy." if path is not None
                            else " (another scikit-learn or mnist1d version?)."))
    return ds


def simulate(model: Any, x: Any = None, labels: Any = None, **kwargs: Any) -> Any:
    """Run a network as binary spike events, step by step, recording every spike.

    ``simulate(model, x, labels=None, *, schedule="step", batch=256, dt_ms=1.0, seed=0,
    record_samples=None, record_layers=None, progress=False)`` simulates any
    ``nn.Module`` built from tbnn modules and returns a :class:`SimulationResult`;
    ``simulate(run_dir, out=None, *, split="test", limit=None, ...)`` simulates a run
    folder of ``tbnn train`` and returns the ``simulation.json`` summary (dict).

    Parameters
    ----------
    model : the network (or a run folder).
    x : inputs ``[N, ...]`` (tensor or array) as the model's ``forward`` takes them.
    labels : ``[N]`` integer classes, for ``accuracy`` (optional).
    schedule : ``step`` (event-driven, spike by spike) or ``folded`` (one product per block
        with the integer code); the same numbers either way. ``mode`` is its deprecated
        spelling.
    dt_ms : declared duration of one time step (for the analysis of the spikes).
    record_samples, record_layers : keep the spikes of only the first samples / these
        layers (bounded memory); counts always cover every sample.

    Returns
    -------
    SimulationResult (for a model) or dict (for a run folder).

    Raises
    ------
    ValueError
        Bad arguments or input, a model with no tbnn neuron, a bad run folder, data that
        changed since training, inputs that give non-finite logits.
    tbnn.core.coding.SpikeTrainError
        The model applies an operation to a spike train outside a tbnn module.

    Examples
    --------
    >>> import torch, tbnn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3))
    >>> res = tbnn.simulate(net, torch.randn(5, 8))
    >>> res.logits.shape, res.spikes["0"].shape, res.summary["forward_agreement"]
    (torch.Size([5, 3]), (5, 4, 8), 1.0)
    """
    if "mode" in kwargs:  # the deprecated spelling, warned about at the caller's line
        kwargs["schedule"] = renamed_keyword("simulate", "mode", "schedule", kwargs.pop("mode"),
                                             kwargs.get("schedule", "step"), "step", SIM_SCHEDULES)
    if isinstance(model, (str, os.PathLike)):
        if labels is not None:
            raise ValueError("simulate(run_dir, out) takes no labels: they come from the run's dataset.")
        if x is not None:
            warnings.warn("simulate(run_dir, out) passes the output folder where the inputs x go; this "
                          "spelling is deprecated: call tbnn.sim.simulate_run(run_dir, out) instead.",
                          DeprecationWarning, stacklevel=2)
        return simulate_run(model, x if x is not None else kwargs.pop("out", None), **kwargs)
    if x is None:
        raise ValueError("simulate(model, x) needs the inputs x.")
    return simulate_model(model, x, labels, **kwargs)
