"""Checkpoints: safetensors for tensors, JSON for everything else; never pickle.

A run directory holds::

    config.json          what was trained and how (model config, training recipe, dataset)
    model.safetensors    the weights (and BatchNorm buffers) of the last finished epoch
    metrics.json         accuracy, timing and the per-epoch history
    state.safetensors    optimizer moments and RNG states, for --resume
    state.json           epoch, optimizer hyper-parameters, scheduler state, history

Every file is written atomically (:mod:`tbnn.fileio`), the state files before the weights
and metrics are committed, so an interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from .fileio import atomic_write, read_json, write_json

__all__ = [
    "RUN_KIND",
    "save_tensors",
    "load_tensors",
    "save_weights",
    "load_weights",
    "save_state",
    "load_state",
    "load_run_config",
]

RUN_KIND = "tbnn-run"


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write tensors to a safetensors file atomically (contiguous CPU copies)."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda fh: fh.write(save(flat, metadata=metadata)))


def load_tensors(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file is one ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file ({err}).") from None


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's ``state_dict`` (parameters and buffers) as one safetensors file, atomically.

    Works for any ``nn.Module`` (the user's own class included); read it back with
    :func:`load_weights` into a model built the same way. No pickle is involved.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> net = torch.nn.Linear(3, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> _ = save_weights(net, path)
    >>> twin = load_weights(torch.nn.Linear(3, 2), path)
    >>> bool(torch.equal(twin.weight, net.weight))
    True
    """
    return save_tensors(path, model.state_dict(), metadata={"format": "pt", "kind": RUN_KIND})


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by :func:`save_weights` into ``model`` and return it.

    Raises
    ------
    ValueError
        A missing, truncated or foreign file, or tensors whose names or shapes do not
        match ``model`` (one sentence naming the file and the first mismatch).
    """
    tensors = load_tensors(path, "checkpoint")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(
            f"checkpoint {path} does not match its config: missing tensors {missing[:4]}, "
            f"unexpected tensors {extra[:4]}."
        )
    for k, v in expected.items():
        if tensors[k].shape != v.shape:
            raise ValueError(
                f"checkpoint {path} does not match its config: tensor {k!r} has shape "
                f"{tuple(tensors[k].shape)}, the config implies {tuple(v.shape)}."
            )
    model.load_state_dict(tensors)
    return model


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{name}"] = val
            else:
                scalars.setdefault(str(idx), {})[name] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = val
    for idx, sc in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(sc)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_state(run_dir: Path, epoch: int, optimizer: torch.optim.Optimizer, scheduler: Any,
               generator: torch.Generator, history: list[dict], train_seconds: float) -> None:
    """Write the resumable training state (``state.safetensors`` + ``state.json``)."""
    tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    save_tensors(run_dir / "state.safetensors", tensors, metadata={"kind": RUN_KIND, "epoch": str(epoch)})
    write_json(run_dir / "state.json", {
        "kind": RUN_KIND, "epoch": epoch, "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(), "history": history, "train_seconds": train_seconds,
    })


def load_state(run_dir: Path, optimizer: torch.optim.Optimizer, scheduler: Any,
               generator: torch.Generator) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG states; returns ``state.json`` (epoch, history)."""
    meta = read_json(run_dir / "state.json", "training state")
    tensors = load_tensors(run_dir / "state.safetensors", "training state")
    if meta.get("kind") != RUN_KIND or "epoch" not in meta:
        raise ValueError(f"training state {run_dir / 'state.json'} is not a tbnn training state.")
    if str(meta["epoch"]) != load_tensors_metadata_epoch(run_dir / "state.safetensors"):
        raise ValueError(f"training state in {run_dir} is inconsistent (the two state files disagree on the epoch).")
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise ValueError(f"training state in {run_dir} does not match this run ({err}).") from None
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    return meta


def load_tensors_metadata_epoch(path: Path) -> str:
    """The ``epoch`` recorded in a safetensors file's metadata ('' when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return (fh.metadata() or {}).get("epoch", "")


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} does not exist.")
    cfg = read_json(run_dir / "config.json", "run config")
    if not isinstance(cfg, dict) or cfg.get("kind") != RUN_KIND or "model" not in cfg:
        raise ValueError(f"{run_dir / 'config.json'} is not a tbnn run config.")
    return cfg
