"""Training state (model, optimizer, scheduler, RNG, epoch) as one checkpoint file, and the
version-1 separate state files still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tbnn.core.deprecation import deprecated
from tbnn.core.validate import json_ready
from tbnn.io.checkpoint.tensors import (
    CHECKPOINT_NAME,
    RUN_FORMAT_VERSION,
    RUN_KIND,
    load_tensors,
    read_header,
    save_tensors,
    tensor_digest,
    tensor_version,
    verify_digest,
)
from tbnn.io.checkpoint.weights import model_config_dict
from tbnn.io.files import read_json, write_json

__all__ = ["has_checkpoint", "save_checkpoint", "load_checkpoint", "save_state", "load_state"]


# ------------------------------------------------------------------------- checkpoint


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
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


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a resumable state (either format)."""
    run_dir = Path(run_dir)
    return (run_dir / CHECKPOINT_NAME).is_file() or (run_dir / "state.json").is_file()


def save_checkpoint(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    generator: torch.Generator, meta: dict[str, Any]) -> Path:
    """Write the whole resumable state of a run as one file, atomically (one transaction).

    ``checkpoint.safetensors`` holds the model's state dict (``model.*``), the optimizer's
    tensors (``opt.*``), the RNG states (global torch, ``generator``, CUDA) and, in its
    metadata, ``meta`` (JSON: ``epoch``, ``history``, ...), the optimizer's and the
    scheduler's other state and a SHA-256 over all of it. Written under a unique temporary
    name and renamed: a kill at any instant leaves the previous checkpoint or this one.

    >>> import tempfile
    >>> net = nn.Linear(3, 2); opt = torch.optim.AdamW(net.parameters())
    >>> sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4); g = torch.Generator()
    >>> d = tempfile.mkdtemp()
    >>> _ = save_checkpoint(d, net, opt, sch, g, {"epoch": 1, "history": []})
    >>> load_checkpoint(d, net, opt, sch, g)["epoch"]
    1
    """
    run_dir = Path(run_dir)
    tensors, opt_meta = flatten_optimizer(optimizer)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().to("cpu").contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    body = {"meta": meta, "optimizer": opt_meta, "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "model_config": model_config_dict(model)}
    body_json = json.dumps(json_ready(body), sort_keys=True, allow_nan=False)
    metadata = {"kind": RUN_KIND, "format_version": str(RUN_FORMAT_VERSION), "state": body_json,
                "sha256": tensor_digest(tensors, body_json)}
    return save_tensors(run_dir / CHECKPOINT_NAME, tensors, metadata=metadata)


def load_checkpoint(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    generator: torch.Generator) -> dict[str, Any] | None:
    """Restore what :func:`save_checkpoint` wrote; returns its ``meta`` (``None``: no checkpoint).

    The header is checked against ``model`` before the tensors are read, then the checksum;
    a foreign, truncated, corrupted or mismatched file is one ``ValueError`` naming it and
    the field. Restores the model, optimizer, scheduler, ``generator`` and the global torch
    RNG (and CUDA's, where present), so training continues exactly as if never stopped.
    """
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    shapes, meta = read_header(path, "training state")
    if meta.get("kind") != RUN_KIND or "state" not in meta or "sha256" not in meta:
        raise ValueError(f"training state {path} is not a tbnn checkpoint (metadata fields kind, state, sha256).")
    tensor_version(path, "training state", meta)
    expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    for k, shape in expected.items():
        if shapes.get(k) != shape:
            raise ValueError(f"training state {path} does not match this run: tensor {k!r} has shape "
                             f"{shapes.get(k)}, the model has {shape}.")
    tensors = load_tensors(path, "training state")
    verify_digest(path, "training state", tensors, meta, meta["state"])
    try:
        body = json.loads(meta["state"])
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(unflatten_optimizer(tensors, body["optimizer"]))
        if scheduler is not None:
            scheduler.load_state_dict(body["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.generator"])
    except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"training state {path} does not match this run ({err}).") from None
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    return body["meta"]


# ------------------------------------------------------------- version 1 state files


@deprecated("tbnn.io.checkpoint.save_state", "tbnn.io.checkpoint.save_checkpoint (one atomic file)")
def save_state(run_dir: Path, epoch: int, optimizer: torch.optim.Optimizer, scheduler: Any,
               generator: torch.Generator, history: list[dict], train_seconds: float) -> None:
    """Write the version-1 resumable state (``state.safetensors`` + ``state.json``).

    Unused since runs write :func:`save_checkpoint` (one atomic file); version-1 folders are
    still read by :func:`load_state`.
    """
    tensors, opt_meta = flatten_optimizer(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    save_tensors(run_dir / "state.safetensors", tensors, metadata={"kind": RUN_KIND, "epoch": str(epoch)})
    write_json(run_dir / "state.json", {
        "kind": RUN_KIND, "epoch": epoch, "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(), "history": history, "train_seconds": train_seconds,
    })


def load_state(run_dir: Path, optimizer: torch.optim.Optimizer, scheduler: Any,
               generator: torch.Generator) -> dict[str, Any]:
    """Restore a version-1 state (optimizer, scheduler, RNG); returns ``state.json``."""
    meta = read_json(run_dir / "state.json", "training state")
    _, header = read_header(run_dir / "state.safetensors", "training state")
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND or "epoch" not in meta:
        raise ValueError(f"training state {run_dir / 'state.json'} is not a tbnn training state.")
    if str(meta["epoch"]) != header.get("epoch", ""):
        raise ValueError(f"training state in {run_dir} is inconsistent (the two state files disagree on the epoch).")
    tensors = load_tensors(run_dir / "state.safetensors", "training state")
    try:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.shuffle"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"training state in {run_dir} does not match this run ({err}).") from None
    return meta
