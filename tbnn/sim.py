"""Spiking inference: run a trained network as binary events and record every spike.

``simulate(run_dir, ...)`` loads ``config.json`` + ``model.safetensors`` (never pickle) and
runs the test (or train) split in one of two modes:

* ``step`` (event-driven): layer by layer, time step by time step. Each layer keeps its
  weights as integer codes ``Q`` with a per-channel affine ``W^ = alpha Q + gamma`` (the
  DAT of its training) and accumulates, for every step ``t``, ``w_t * Q (a * s_t)``: only
  presynaptic neurons that spiked at ``t`` add their column of codes, scaled by their
  block's read-out gain ``a``. The rank-1 corrections of the matmul shortcut (Ye et al.
  2024, arXiv:2409.09245) are added once. Hidden neurons then integrate that current and
  fire by the integrate-and-fire rule with halving thresholds (reset by subtraction), one
  step at a time (:func:`tbnn.coding.if_binary_run`).
* ``folded``: the training-time forward pass with ``T`` folded into the batch.

The simulated predictions are compared with the model's eval-mode forward pass on every
sample (``forward_agreement``). snnTorch ``lif`` runs are simulated by their own per-step
loop, with the same random input spikes as the reference pass.

Outputs: ``simulation.json`` (accuracy, agreement, spikes and synaptic operations per
sample, throughput, per-layer counts, weight storage) and ``spikes.npz`` (one boolean
``[samples, T, neurons]`` array per spiking layer; see :mod:`tbnn.spikefile`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import load_run_config, load_weights
from .coding import SpikeCode, if_binary_run
from .data import load_dataset
from .fileio import write_json
from .layers import _TBConv, _TBLayer, conv_fanout
from .models import ModelConfig, TBNet, build_model, weight_storage_bits
from .quant import _to_blocks, grid_range, quantize
from .spikefile import save_spikes

__all__ = ["SIM_MODES", "WeightCodes", "load_run", "simulate", "weight_codes", "step_current", "neuron_fire", "fanout"]

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
    load_weights(run_dir / "model.safetensors", model)
    return model.to(device).eval(), cfg


# --------------------------------------------------------------------------------------
# event-driven engine (TBN / STE networks)


@dataclass
class WeightCodes:
    """A layer's weight as integer codes with a per-channel affine: ``W^ = alpha * Q + gamma``.

    ``w_hat`` is that weight in floats, ``ones`` an all-ones kernel with one output channel
    (its response is the same for every output channel: the rank-1 correction).
    """

    q: Tensor
    alpha: Tensor
    gamma: Tensor
    w_hat: Tensor
    ones: Tensor


def weight_codes(layer: _TBLayer) -> WeightCodes:
    """Quantize a layer's weight once for inference (per output channel)."""
    w2 = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    if layer.weight_bits is None:
        q, alpha, gamma = w2, torch.ones(w2.shape[0]), torch.zeros(w2.shape[0])
    else:
        bc = quantize(w2, bits=layer.weight_bits, method=layer.method, block=layer.weight_block,
                      lam=layer.lam, dim=-1, sparsity=layer.sparsity, grid=layer.weight_grid)
        if bc.q.shape[-2] != 1:
            raise ValueError("the step engine needs weights quantized per output channel (weight_block=None).")
        q, alpha, gamma = bc.codes(), bc.gain.reshape(-1), bc.offset.reshape(-1)
    q = q.reshape(layer.weight.shape)
    shape = (-1, *[1] * (q.dim() - 1))
    w_hat = alpha.view(shape) * q + gamma.view(shape)
    return WeightCodes(q, alpha, gamma, w_hat, torch.ones(1, *q.shape[1:], dtype=q.dtype))


def step_current(layer: _TBLayer, code: SpikeCode, wc: WeightCodes | None = None) -> Tensor:
    """Input current of ``layer`` accumulated step by step from ``code``'s spikes.

    ``I = alpha * sum_t w_t L_Q(a s_t) + gamma * sum_t w_t L_1(a s_t) + L_W^(c) + b`` where
    ``L_Q`` is the layer's operator with the integer weight codes, ``L_1`` with an all-ones
    kernel (the rank-1 correction, one output channel), ``a``/``c`` the per-block read-out of
    the input code. Equals the layer's training-time output to float rounding. ``wc``: the
    layer's :func:`weight_codes`, computed once per simulation (else here).
    """
    wc = wc if wc is not None else weight_codes(layer)
    spikes = code.spikes.to(code.q.dtype)  # [T, B, F]
    g, o = code.feature_gain()
    wt = code.weights
    acc_q, acc_1 = 0.0, 0.0
    for t in range(spikes.shape[0]):
        inp = code.unflatten(spikes[t] * g)  # silent inputs contribute exactly nothing
        acc_q = acc_q + wt[t] * layer._op(inp, wc.q, None)
        acc_1 = acc_1 + wt[t] * layer._op(inp, wc.ones, None)
    const = layer._op(code.unflatten(o), wc.w_hat, layer.bias)
    bshape = (1, -1, *[1] * (wc.q.dim() - 2))
    return wc.alpha.view(bshape) * acc_q + wc.gamma.view(bshape) * acc_1 + const


def neuron_fire(neuron: nn.Module, current: Tensor) -> SpikeCode:
    """Fire a layer of :class:`~tbnn.neurons.TemporalBinary` neurons from their input current.

    Binary scheme: each membrane starts at its grid value ``r_0 = v`` and runs ``T`` steps of
    the integrate-and-fire rule with halving thresholds; the read-out is the ridge fit of
    the block's target on the emitted code. Other schemes use the neuron's own encoder.
    """
    if neuron.scheme != "binary":
        return neuron(current)
    x = current.flatten(1)
    xb, valid, n = _to_blocks(x, -1, neuron.block)
    lo, hi = grid_range(xb, valid, n, neuron.grid, 2**neuron.timesteps)
    v = ((xb - lo) / (hi - lo)).clamp(0.0, 1.0)
    v = v.reshape(x.shape[0], -1)[:, : x.shape[1]]
    spikes = if_binary_run(v, neuron.timesteps)  # [T, B, F], one step at a time
    target = torch.relu(x) if neuron.target == "relu" else x
    code = SpikeCode.from_spikes(spikes, "binary", target=target, lam=neuron.lam, block=neuron.block)
    if neuron.method != "dat":  # the STE read-out: the fixed inverse grid map
        levels = 2**neuron.timesteps
        gain = (hi - lo) / levels
        code = replace(code, gain=gain, offset=lo + 0.5 * gain)
    return replace(code, shape=tuple(current.shape))


def _tbn_step(model: TBNet, x: Tensor, wcs: list[WeightCodes]) -> tuple[Tensor, dict[str, SpikeCode]]:
    """Event-driven forward pass of a TBN; ``wcs``: weight codes of its layers and read-out."""
    x = x.reshape(x.shape[0], *model.cfg.input_shape)
    codes = {"input": neuron_fire(model.encoder, x)}
    h = codes["input"]
    for i, (layer, norm, neuron) in enumerate(zip(model.layers, model.norms, model.neurons)):
        h = neuron_fire(neuron, norm(step_current(layer, h, wcs[i])))
        codes[f"hidden{i + 1}"] = h
    return step_current(model.readout, replace(h, shape=None), wcs[-1]), codes


def fanout(model: nn.Module, name: str) -> Tensor:
    """Synaptic targets of each neuron of spiking layer ``name`` (flattened per sample)."""
    names = model.layer_names
    i = names.index(name)
    nxt = model.layers[i] if i < len(model.layers) else model.readout
    shape = model.cfg.input_shape if i == 0 else model.specs[i - 1]["out_shape"]
    if isinstance(nxt, _TBConv):
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
    with torch.no_grad():
        step = isinstance(model, TBNet) and mode == "step"
        wcs = [weight_codes(m) for m in (*model.layers, model.readout)] if step else []
        if step:
            _tbn_step(model, x[:batch], wcs)  # warm-up on one batch: lazy initialisation is not simulation time
        else:
            model(x[:batch], mode="folded" if isinstance(model, TBNet) else None, record=True)
        for i in it:
            xb = x[i:i + batch]
            torch.manual_seed(seed + i)
            ref = model(xb)
            torch.manual_seed(seed + i)
            t0 = time.perf_counter()
            if step:
                logits, codes = _tbn_step(model, xb, wcs)
                spikes = {k: c.spikes for k, c in codes.items()}
            else:
                logits, codes = model(xb, mode="folded" if isinstance(model, TBNet) else None, record=True)
                spikes = {k: (c.spikes if isinstance(c, SpikeCode) else c) for k, c in codes.items()}
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
        "accuracy": float((pred == y).float().mean()),
        "forward_agreement": float((pred == refp).float().mean()),
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
