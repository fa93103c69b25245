"""Spiking inference: run a trained network as binary events and record every spike.

``simulate(run_dir, ...)`` loads ``config.json`` + ``model.safetensors`` (never pickle) and
runs the test (or train) split in one of two modes:

* ``step`` (event-driven): layer by layer, time step by time step. Each layer keeps its
  weights as integer codes ``Q`` with a per-channel affine ``W^ = alpha Q + gamma`` (the
  DAT of its training) and accumulates, for every step ``t`` and input block ``b``, the
  integer sum ``w_t Q (s_t m_b)``: only presynaptic neurons that spiked at ``t`` add their
  column of codes. The block read-out gains and the rank-1 corrections of the matmul
  shortcut (Ye et al. 2024, arXiv:2409.09245) are applied once. Hidden neurons then fire
  by the integrate-and-fire rule with halving thresholds (reset by subtraction), one step
  at a time (:func:`tbnn.coding.if_binary_step`).
* ``folded``: the same integer arithmetic with the ``T`` steps folded into the batch.

The integer sums are exact (bfloat16 products where every partial sum is an integer of
magnitude <= 256, float32 sums below 2^24, else float64), so both modes reproduce the
model's eval-mode forward pass (which uses the same integer-code evaluation) bit for bit;
the simulated predictions are compared with it on every sample (``forward_agreement``).
snnTorch ``lif`` runs are simulated by their own per-step loop with the same random input
spikes as the reference pass (drawn from a generator forked from the global one, which is
left as it was), so for them agreement checks only that the loop is deterministic.

Outputs: ``simulation.json`` (accuracy, agreement, spikes and synaptic operations per
sample, throughput, per-layer counts, weight storage) and ``spikes.npz`` (one boolean
``[samples, T, neurons]`` array per spiking layer; see :mod:`tbnn.spikefile`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import load_run_config, load_weights
from .coding import SpikeCode, if_binary_step
from .data import load_dataset
from .fileio import write_json
from .layers import WeightCodes, TBConv, TBLayer, conv_fanout
from .models import ModelConfig, TBNet, build_model, weight_storage_bits
from .quant import to_blocks, grid_range
from .spikefile import save_spikes

__all__ = ["SIM_MODES", "load_run", "simulate", "step_current", "neuron_fire", "fanout"]

SIM_MODES: tuple[str, ...] = ("step", "folded")


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its run directory (eval mode) and return it with its config."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    try:
        mcfg = ModelConfig.from_dict(cfg["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir / 'config.json'} holds an invalid model config: {err}") from None
    model = build_model(mcfg)
    load_weights(model, run_dir / "model.safetensors")
    return model.to(device).eval(), cfg


# --------------------------------------------------------------------------------------
# event-driven engine (TBN / STE networks)


def step_current(layer: TBLayer, code: SpikeCode, wc: WeightCodes | None = None, folded: bool = False) -> Tensor:
    """Input current of ``layer`` from ``code``'s spikes, accumulated over time steps.

    For every step ``t`` the integer terms ``N_b += w_t L_Q(s_t m_b)`` (only inputs that
    spiked at ``t`` add their column of weight codes) and ``S_b += w_t L_1(s_t m_b)`` are
    accumulated exactly (integers in float32, or float64 where float32 could round; see
    :meth:`~tbnn.layers.TBLayer.term_dtype`), then combined once with the read-out gains and
    the rank-1 corrections (:meth:`~tbnn.layers.TBLayer.combine`). ``folded=True`` computes
    all steps in one op on ``[T*B, ...]``. Either way the result equals the layer's eval
    forward pass bit for bit. ``wc``: the layer's weight codes, made once per simulation.
    """
    wc = wc if wc is not None else layer.weight_codes()
    spikes = code.spikes  # [T, B, F] bool
    if folded:
        wt = code.weights.to(layer.term_dtype(code, wc))  # float32 where it holds every sum exactly
        T, B = spikes.shape[:2]
        n, s = layer.integer_terms(spikes.reshape(T * B, -1), code, wc)  # [nb, T*B, ...]
        nb = n.shape[0]
        n = torch.matmul(wt, n.reshape(nb, T, -1)).reshape(nb, B, *n.shape[2:])
        s = torch.matmul(wt, s.reshape(nb, T, -1)).reshape(nb, B, *s.shape[2:])
    else:
        n = s = None
        for t, w in enumerate(code.weights.tolist()):
            nt, st = layer.integer_terms(spikes[t], code, wc)
            if n is None:
                n, s = nt.mul_(w), st.mul_(w)
            else:
                n.add_(nt, alpha=w)
                s.add_(st, alpha=w)
    return layer.combine(n, s, code, wc)


def neuron_fire(neuron: nn.Module, current: Tensor) -> SpikeCode:
    """Fire a layer of :class:`~tbnn.neurons.TemporalBinary` neurons from their input current.

    Binary scheme: each membrane starts at its grid value ``r_0 = v`` and runs ``T`` steps of
    the integrate-and-fire rule with halving thresholds (:func:`tbnn.coding.if_binary_step`);
    the emitted spikes are checked against the neuron's closed form (their weighted sum must
    be its code), whose read-out gains are used, and kept in the returned code (``raw``).
    Other schemes use the neuron's own encoder.
    """
    code = neuron(current)
    if neuron.scheme != "binary":
        return code
    x = current.flatten(1)
    xb, valid, n = to_blocks(x, -1, neuron.block)
    lo, hi = grid_range(xb, valid, n, neuron.grid, 2**neuron.timesteps)
    v = ((xb - lo) / (hi - lo)).clamp(0.0, 1.0).reshape(x.shape[0], -1)[:, : x.shape[1]]
    T = neuron.timesteps
    w = code.weights.tolist()
    fired = torch.empty(T, *v.shape, dtype=torch.bool, device=v.device)  # [T, B, F]
    r, q = v, torch.zeros_like(v)
    for t in range(1, T + 1):  # the integrate-and-fire rule, one step at a time
        s, r = if_binary_step(r, t)
        fired[t - 1] = s
        q.add_(s, alpha=w[t - 1])
    # the spikes equal the bits of the code iff their weighted sum is the code (binary
    # expansions are unique), which is cheaper to check than expanding the code into bits
    if not torch.equal(q, code.q.detach().to(q.dtype)):
        raise RuntimeError("integrate-and-fire spikes differ from the neuron's code; please report this.")
    return replace(code, raw=fired)  # the emitted spikes, kept (not re-derived from the code)


def _tbn_sim(model: TBNet, x: Tensor, wcs: list[WeightCodes], folded: bool) -> tuple[Tensor, dict[str, SpikeCode]]:
    """Spiking forward pass of a TBN; ``wcs``: weight codes of its layers and read-out."""
    x = x.reshape(x.shape[0], *model.cfg.input_shape)
    codes = {"input": neuron_fire(model.encoder, x)}
    h = codes["input"]
    for i, (layer, norm, neuron) in enumerate(zip(model.layers, model.norms, model.neurons)):
        h = neuron_fire(neuron, norm(step_current(layer, h, wcs[i], folded)))
        codes[f"hidden{i + 1}"] = h
    return step_current(model.readout, replace(h, shape=None), wcs[-1], folded), codes


def fanout(model: nn.Module, name: str) -> Tensor:
    """Synaptic targets of each neuron of spiking layer ``name`` (flattened per sample)."""
    names = model.layer_names
    i = names.index(name)
    nxt = model.layers[i] if i < len(model.layers) else model.readout
    shape = model.cfg.input_shape if i == 0 else model.specs[i - 1]["out_shape"]
    if isinstance(nxt, TBConv):
        return nxt.fanout(tuple(shape)).flatten()
    if isinstance(nxt, nn.Conv1d | nn.Conv2d):
        return conv_fanout(lambda x, w: nxt._conv_forward(x, w, None), nxt.weight.shape, tuple(shape)).flatten()
    out_features = nxt.out_features
    return torch.full((int(np.prod(shape)),), float(out_features))


# --------------------------------------------------------------------------------------
# the command


def simulate(
    run_dir: str | Path,
    out: str | Path | None = None,
    split: str = "test",
    limit: int | None = None,
    mode: str = "step",
    batch: int = 256,
    dt_ms: float = 1.0,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate a trained run as spikes; write ``simulation.json`` and ``spikes.npz`` to ``out``.

    Returns the summary dict (as written to ``simulation.json``). Refuses bad input before
    writing anything: a missing, truncated or foreign checkpoint, a config that disagrees
    with the tensors, ``limit < 1``, an unknown split or mode.
    """
    if mode not in SIM_MODES:
        raise ValueError(f"mode must be one of {', '.join(SIM_MODES)}; got {mode!r}.")
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train'; got {split!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an integer >= 1; got {limit!r}.")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1; got {batch!r}.")
    if not (isinstance(dt_ms, (int, float)) and dt_ms > 0 and np.isfinite(dt_ms)):
        raise ValueError(f"dt_ms must be a finite number > 0; got {dt_ms!r}.")
    model, cfg = load_run(run_dir)
    tcfg = cfg.get("train", {})
    if model.cfg.model == "float":
        raise ValueError("model 'float' has no spikes to simulate; simulate a tbn, ste or lif run.")
    ds = load_dataset(tcfg.get("dataset", "digits"), seed=tcfg.get("seed", 0), n_train=tcfg.get("n_train"),
                      n_test=tcfg.get("n_test"), normalize=tcfg.get("normalize", "auto"))
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    names = model.layer_names
    rec: dict[str, list[np.ndarray]] = {n: [] for n in names}
    preds, ref_preds = [], []
    max_diff = 0.0
    sim_seconds = 0.0
    it = range(0, len(x), batch)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"simulate ({mode})", unit="batch", dynamic_ncols=True)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        tbn = isinstance(model, TBNet)
        folded = mode == "folded"
        wcs = [m.weight_codes() for m in (*model.layers, model.readout)] if tbn else []
        if tbn:
            _tbn_sim(model, x[:batch], wcs, folded)  # warm-up: lazy initialisation is not simulation
        else:
            model(x[:batch], record=True)
        for i in it:
            xb = x[i:i + batch]
            torch.manual_seed(seed + i)
            ref = model(xb)
            torch.manual_seed(seed + i)
            t0 = time.perf_counter()
            if tbn:
                logits, codes = _tbn_sim(model, xb, wcs, folded)
                spikes = {k: c.spikes for k, c in codes.items()}
            else:  # snnTorch LIF: its own per-step loop
                logits, spikes = model(xb, record=True)
            sim_seconds += time.perf_counter() - t0
            max_diff = max(max_diff, float((logits - ref).abs().max()))
            preds.append(logits.argmax(1))
            ref_preds.append(ref.argmax(1))
            for k in names:
                rec[k].append(spikes[k].reshape(spikes[k].shape[0], spikes[k].shape[1], -1).transpose(0, 1).numpy())
    pred = torch.cat(preds)
    refp = torch.cat(ref_preds)
    layers_np = {k: np.concatenate(v).astype(bool) for k, v in rec.items()}
    n = len(x)
    T = model.cfg.timesteps
    layer_info, total_spikes, total_ops = [], 0, 0.0
    for k in names:
        arr = layers_np[k]
        fo = fanout(model, k).numpy()
        count = int(arr.sum())
        ops = float((arr.sum(axis=(0, 1)) * fo).sum())
        total_spikes += count
        total_ops += ops
        layer_info.append({"name": k, "neurons": int(arr.shape[2]), "spikes": count,
                           "rate_per_step": count / (n * T * arr.shape[2]), "fanout": float(fo.mean()),
                           "synaptic_ops": ops})
    storage = weight_storage_bits(model)
    summary = {
        "run": str(run_dir), "model": model.cfg.model, "mode": mode, "split": split,
        "samples": n, "timesteps": T, "dt_ms": float(dt_ms),
        "accuracy": float((pred == y).double().mean()),
        "forward_agreement": float((pred == refp).double().mean()),
        "max_logit_difference": max_diff,
        "spikes_per_sample": total_spikes / n, "synaptic_ops_per_sample": total_ops / n,
        "energy_proxy": {"spikes_per_inference": total_spikes / n, "synaptic_ops_per_inference": total_ops / n},
        "samples_per_second": n / sim_seconds if sim_seconds > 0 else float("inf"),
        "seconds": sim_seconds, "weight_storage_bits": storage["total"], "weight_storage": storage,
        "layers": layer_info,
    }
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a directory.")
        out.mkdir(parents=True, exist_ok=True)
        save_spikes(out / "spikes.npz", layers_np, labels=y.numpy(), predictions=pred.numpy(), timesteps=T,
                    dt_ms=float(dt_ms))
        write_json(out / "simulation.json", summary)
    return summary
