"""Checkpoints and run directories: safetensors for tensors, JSON for everything else; never pickle.

A run directory (``format_version`` 2) holds::

    config.json              what was trained and how (model config, recipe, dataset), sealed
    checkpoint.safetensors   the resumable state of the last finished epoch, as ONE file:
                             weights, optimizer moments, RNG states, epoch, scheduler, history
    model.safetensors        the trained weights, with the model config in their metadata
    metrics.json             accuracy, timing and the per-epoch history (written last: a run
                             without it is incomplete and can be resumed)
    .tbnn.lock               the writer's lock (empty)

**One transaction per epoch.** The whole resumable state is one file, written under a
unique temporary name, fsync-ed and renamed onto ``checkpoint.safetensors``: a kill at any
instant leaves the previous epoch's complete state or the new one, so ``--resume`` after
any kill ends with the same weights, bit for bit, as an uninterrupted run.

**Integrity.** Every file carries a SHA-256: ``config.json`` and ``metrics.json`` over their
own canonical JSON (the field ``sha256``); the safetensors files in their metadata over
their tensors (names, dtypes, shapes, bytes) *and* the model config that fixes their
meaning (``T``, ``lam``, bits, block, grid, widths). Readers check the header (names,
shapes, sizes) against the config before anything large is allocated, then the checksum;
any mismatch is one ``ValueError`` naming the file and the field. Folders written before
``format_version`` existed (version 1: no checksums, separate state files) are still read.

**One writer.** :class:`RunLock` (``fcntl.flock``) refuses a second process writing the
same run directory.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from .fileio import (
    FolderLock,
    atomic_write,
    canonical_json,
    clean_stale_temps,
    json_safe,
    os_errors,
    read_json,
    read_sealed_json,
    write_json,
    write_sealed_json,
)

__all__ = [
    "RUN_KIND",
    "FORMAT_VERSION",
    "CHECKPOINT_NAME",
    "RunLock",
    "tensor_digest",
    "save_tensors",
    "load_tensors",
    "read_header",
    "save_weights",
    "load_weights",
    "check_weights_header",
    "save_checkpoint",
    "load_checkpoint",
    "has_checkpoint",
    "save_state",
    "load_state",
    "load_run_config",
    "write_run_config",
    "read_run",
    "check_dataset",
    "clean_run_temps",
    "checkpoint_epoch",
    "check_run_target",
    "RunWriter",
    "load_run_state",
    "PY_NAMES",
    "CLI_NAMES",
]

RUN_KIND = "tbnn-run"
#: Layout of a run directory: 1 = separate state files, no checksums; 2 = one checkpoint
#: file, checksums, ``format_version`` in ``config.json``.
FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.safetensors"

#: Top-level fields of ``config.json`` and their types.
_RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,), "format_version": (int,), "tbnn_version": (str,), "model": (dict,),
    "train": (dict,), "sha256": (str,),
}
#: Fields of the ``train`` section and their types (``None`` allowed where listed).
_TRAIN_FIELDS: dict[str, tuple[type, ...]] = {
    "dataset": (str,), "epochs": (int,), "batch": (int,), "lr": (int, float),
    "weight_decay": (int, float), "seed": (int,), "n_train": (int, type(None)),
    "n_test": (int, type(None)), "normalize": (str,), "rate_target": (int, float, type(None)),
    "rate_weight": (int, float, type(None)),
}


class RunLock(FolderLock):
    """Exclusive writer lock on a run directory (see :class:`tbnn.fileio.FolderLock`)."""


# ----------------------------------------------------------------------------- digests


def tensor_digest(tensors: dict[str, torch.Tensor], config: Any = None) -> str:
    """SHA-256 (hex) over tensors (names, dtypes, shapes, bytes, in name order) and ``config``.

    ``config`` (any JSON value) is the hyperparameters that fix the tensors' meaning; a
    change to either changes the digest.

    >>> a = {"w": torch.ones(2, 3)}
    >>> tensor_digest(a, {"T": 4}) == tensor_digest({"w": torch.ones(2, 3)}, {"T": 4})
    True
    >>> tensor_digest(a, {"T": 4}) == tensor_digest(a, {"T": 5})
    False
    """
    h = hashlib.sha256()
    h.update(canonical_json(config))
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(canonical_json([name, str(t.dtype), list(t.shape)]))
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- tensor files


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write tensors to a safetensors file atomically (contiguous CPU copies)."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda fh: fh.write(save(flat, metadata=metadata)))


def read_header(path: str | Path, what: str = "checkpoint") -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, read from its header only.

    Nothing but the header is read, so this is cheap whatever the file's size; a missing,
    truncated or foreign file is one ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file ({err}).") from None
    return shapes, meta


def load_tensors(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file is one ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file ({err}).") from None


def _verify_digest(path: Path, what: str, tensors: dict[str, torch.Tensor], meta: dict[str, str],
                   config: Any) -> None:
    want = meta.get("sha256")
    if want is None:
        return  # format version 1: no checksum
    if tensor_digest(tensors, config) != want:
        raise ValueError(f"{what} {path} fails its checksum (metadata field sha256): its tensors or the "
                         f"configuration stored with them were changed or corrupted after tbnn wrote it.")


# ----------------------------------------------------------------------------- weights


def _model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "cfg", None)
    return cfg.to_dict() if hasattr(cfg, "to_dict") else None


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's ``state_dict`` (parameters and buffers) as one safetensors file, atomically.

    Works for any ``nn.Module`` (the user's own class included); read it back with
    :func:`load_weights` into a model built the same way. No pickle is involved. The
    metadata holds the model's config (when it has one: ``T``, ``lam``, bits, block, grid,
    widths) and a SHA-256 over the tensors and that config.

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
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    config = _model_config_dict(model)
    meta = {"format": "pt", "kind": RUN_KIND, "format_version": str(FORMAT_VERSION),
            "config": json.dumps(config, sort_keys=True), "sha256": tensor_digest(tensors, config)}
    return save_tensors(path, tensors, metadata=meta)


def _expected_shapes(model_cfg: Any) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict a model config implies, without allocating it (meta device)."""
    from .models import build_model

    with torch.device("meta"):
        model = build_model(model_cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _stored_config(path: Path, meta: dict[str, str], what: str) -> Any:
    if "config" not in meta:
        return None
    try:
        return json.loads(meta["config"])
    except json.JSONDecodeError:
        raise ValueError(f"{what} {path}: metadata field config is not valid JSON.") from None


def check_weights_header(path: str | Path, model_cfg: Any, what: str = "checkpoint",
                         config_name: str = "its config") -> dict[str, str]:
    """Check a weights file against a model config from its header alone; returns the metadata.

    Refused in one sentence naming the file and the field: tensors missing or unexpected,
    a shape the config does not imply, and (files with a stored config) any config field
    that differs from the one the weights were trained with (``timesteps``, ``lam``, ...).
    Nothing large is allocated: the expected shapes come from a model built on the
    ``meta`` device.
    """
    path = Path(path)
    shapes, meta = read_header(path, what)
    stored = _stored_config(path, meta, what)
    cfg_dict = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    if isinstance(stored, dict):
        for key in sorted(set(stored) | set(cfg_dict)):
            if stored.get(key) != cfg_dict.get(key):
                raise ValueError(
                    f"{config_name} field model.{key} is {cfg_dict.get(key)!r} but {what} {path} was "
                    f"trained with {stored.get(key)!r}; the config does not match the weights.")
    expected = _expected_shapes(model_cfg)
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{what} {path} does not match {config_name}: missing tensors {missing[:4]}, "
            f"unexpected tensors {extra[:4]}.")
    for k, shape in expected.items():
        if shapes[k] != shape:
            raise ValueError(
                f"{what} {path} does not match {config_name}: tensor {k!r} has shape "
                f"{shapes[k]}, the config (field model) implies {shape}.")
    return meta


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by :func:`save_weights` into ``model`` and return it.

    The header (names, shapes, the stored config) is checked before the tensors are read,
    then the checksum.

    Raises
    ------
    ValueError
        A missing, truncated, foreign or corrupted file (checksum), tensors whose names or
        shapes do not match ``model``, or a stored config (``timesteps``, ``lam``, ...)
        other than ``model.cfg`` (one sentence naming the file and the field).
    """
    path = Path(path)
    shapes, meta = read_header(path, "checkpoint")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        raise ValueError(
            f"checkpoint {path} does not match its config: missing tensors {missing[:4]}, "
            f"unexpected tensors {extra[:4]}."
        )
    for k, v in expected.items():
        if shapes[k] != tuple(v.shape):
            raise ValueError(
                f"checkpoint {path} does not match its config: tensor {k!r} has shape "
                f"{shapes[k]}, the config implies {tuple(v.shape)}."
            )
    stored = _stored_config(path, meta, "checkpoint")
    mine = _model_config_dict(model)
    if isinstance(stored, dict) and mine is not None:
        for key in sorted(set(stored) | set(mine)):
            if stored.get(key) != mine.get(key):
                raise ValueError(f"checkpoint {path} was trained with model.{key}={stored.get(key)!r}, "
                                 f"this model has {mine.get(key)!r}.")
    tensors = load_tensors(path, "checkpoint")
    _verify_digest(path, "checkpoint", tensors, meta, stored)
    model.load_state_dict(tensors)
    return model


# ------------------------------------------------------------------------- checkpoint


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
    tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().to("cpu").contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    body = {"meta": meta, "optimizer": opt_meta, "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "model_config": _model_config_dict(model)}
    body_json = json.dumps(json_safe(body), sort_keys=True, allow_nan=False)
    metadata = {"kind": RUN_KIND, "format_version": str(FORMAT_VERSION), "state": body_json,
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
    expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    for k, shape in expected.items():
        if shapes.get(k) != shape:
            raise ValueError(f"training state {path} does not match this run: tensor {k!r} has shape "
                             f"{shapes.get(k)}, the model has {shape}.")
    tensors = load_tensors(path, "training state")
    _verify_digest(path, "training state", tensors, meta, meta["state"])
    try:
        body = json.loads(meta["state"])
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(_unflatten_optimizer(tensors, body["optimizer"]))
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


def save_state(run_dir: Path, epoch: int, optimizer: torch.optim.Optimizer, scheduler: Any,
               generator: torch.Generator, history: list[dict], train_seconds: float) -> None:
    """Write the version-1 resumable state (``state.safetensors`` + ``state.json``).

    Kept for compatibility; new runs use :func:`save_checkpoint` (one atomic file).
    """
    tensors, opt_meta = _flatten_optimizer(optimizer)
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
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.shuffle"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"training state in {run_dir} does not match this run ({err}).") from None
    return meta


# ---------------------------------------------------------------------- run config


def write_run_config(run_dir: str | Path, cfg: dict[str, Any]) -> Path:
    """Write ``config.json`` with ``format_version`` and its ``sha256``."""
    cfg = {**cfg, "kind": RUN_KIND, "format_version": FORMAT_VERSION}
    return write_sealed_json(Path(run_dir) / "config.json", cfg)


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a run directory (schema, types, checksum).

    Refused in one sentence naming the file and the field: not a tbnn run, an unknown
    field, a field of the wrong type, a ``format_version`` newer than this tbnn, a checksum
    mismatch. A config without ``format_version`` is version 1 (no checksum).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} does not exist.")
    path = run_dir / "config.json"
    cfg = read_sealed_json(path, "run config")
    if cfg.get("kind") != RUN_KIND or "model" not in cfg:
        raise ValueError(f"{path} is not a tbnn run config (field kind must be {RUN_KIND!r}, field model present).")
    unknown = sorted(set(cfg) - set(_RUN_FIELDS))
    if unknown:
        raise ValueError(f"{path} has unknown field {unknown[0]!r}; allowed: {', '.join(_RUN_FIELDS)}.")
    for key, types in _RUN_FIELDS.items():
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], types)):
            raise ValueError(f"{path} field {key} must be {_type_names(types)}; got {type(cfg[key]).__name__}.")
    version = cfg.get("format_version", 1)
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path} field format_version is {version}; this tbnn reads versions 1 to "
                         f"{FORMAT_VERSION} (a newer tbnn wrote it?).")
    train = cfg.get("train", {})
    unknown = sorted(set(train) - set(_TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"{path} has unknown field train.{unknown[0]}; allowed: {', '.join(_TRAIN_FIELDS)}.")
    for key, types in _TRAIN_FIELDS.items():
        if key in train and (isinstance(train[key], bool) or not isinstance(train[key], types)):
            raise ValueError(f"{path} field train.{key} must be {_type_names(types)}; got {train[key]!r}.")
    return cfg


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], Any, dict[str, torch.Tensor]]:
    """Read a finished run safely: ``(config, ModelConfig, state_dict)``.

    Order of checks: ``config.json`` (schema, types, checksum); its model config; the
    weights' header against that config (names, shapes, stored hyperparameters) before
    anything large is allocated; then the tensors and their checksum. The model is then
    built with ``build_model(mcfg).load_state_dict(state)``.
    """
    from .models import ModelConfig

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    path = run_dir / "config.json"
    if "class" in cfg["model"]:
        raise ValueError(f"{run_dir} holds a custom model ({cfg['model']['class']}) trained by tbnn.fit; build it "
                         f"with its own class, tbnn.load_weights(model, path), then tbnn.simulate(model, x).")
    try:
        mcfg = ModelConfig.from_dict(cfg["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} field model is invalid: {err}") from None
    weights = run_dir / "model.safetensors"
    if not weights.exists() and has_checkpoint(run_dir) and not (run_dir / "metrics.json").exists():
        raise ValueError(f"run {run_dir} is incomplete (no model.safetensors yet); finish it with "
                         f"tbnn train ... --resume.")
    meta = check_weights_header(weights, mcfg, "checkpoint", str(path))
    tensors = load_tensors(weights, "checkpoint")
    _verify_digest(weights, "checkpoint", tensors, meta, _stored_config(weights, meta, "checkpoint"))
    return cfg, mcfg, tensors


def check_dataset(cfg: Any, ds: Any, config_path: str | Path = "config.json") -> None:
    """Refuse a dataset whose shape no longer matches the model config (features, image, classes)."""
    checks = (("in_features", int(math.prod(ds.input_shape)), "features per sample"),
              ("n_classes", int(ds.n_classes), "classes"))
    for field, have, what in checks:
        want = getattr(cfg, field)
        if want != have:
            raise ValueError(f"{config_path} field model.{field} is {want} but the dataset {ds.name} now has "
                             f"{have} {what}; the weights cannot be applied to it.")
    img = tuple(ds.image_shape) if ds.image_shape is not None else None
    if cfg.image_shape is not None and img is not None and tuple(cfg.image_shape) != img:
        raise ValueError(f"{config_path} field model.image_shape is {list(cfg.image_shape)} but the dataset "
                         f"{ds.name} has images of shape {list(img)}.")


def clean_run_temps(run_dir: str | Path) -> list[Path]:
    """Remove temporary files left in a run directory by killed writers (call under :class:`RunLock`)."""
    with os_errors(run_dir):
        return clean_stale_temps(run_dir, all_of_them=True)


# ------------------------------------------------------------------ run directories


def checkpoint_epoch(run_dir: str | Path) -> int:
    """The epoch of the checkpoint in ``run_dir`` (0 when there is none or it is unreadable)."""
    run_dir = Path(run_dir)
    try:
        if (run_dir / CHECKPOINT_NAME).is_file():
            _, meta = read_header(run_dir / CHECKPOINT_NAME, "training state")
            return int(json.loads(meta["state"])["meta"]["epoch"])
        if (run_dir / "state.json").is_file():
            return int(read_json(run_dir / "state.json", "training state")["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0
    return 0


def _same_settings(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str, Any, Any] | None:
    """The first ``(section, key, old, new)`` where two run configs differ, or ``None``."""
    for section in ("model", "train"):
        a_sec, b_sec = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a_sec) | set(b_sec)):
            if a_sec.get(key) != b_sec.get(key):
                return section, key, a_sec.get(key), b_sec.get(key)
    return None


#: How messages name the options: the Python parameters, or (``CLI_NAMES``) the flags.
PY_NAMES: dict[str, str] = {"out": "out", "resume": "resume=True", "overwrite": "overwrite=True"}
CLI_NAMES: dict[str, str] = {"out": "--out", "resume": "--resume", "overwrite": "--overwrite"}


def check_run_target(out: str | Path, run_cfg: dict[str, Any], resume: bool = False,
                     overwrite: bool = False, names: dict[str, str] | None = None) -> str:
    """See :func:`_check_run_target`; operating-system errors become one sentence naming ``out``."""
    with os_errors(out, "use"):
        return _check_run_target(out, run_cfg, resume, overwrite, names or PY_NAMES)


def _check_run_target(out: str | Path, run_cfg: dict[str, Any], resume: bool, overwrite: bool,
                      names: dict[str, str]) -> str:
    """How a training run may write ``out``: ``"new"``, ``"resume"`` or ``"replace"``; else refuse.

    * new or empty folder (tbnn's lock and temporary names ignored): ``"new"``
      (``resume`` refused: nothing to resume);
    * a folder inside another run directory, a file, a dangling link, a folder holding
      files tbnn did not write: refused (even with ``overwrite``);
    * a tbnn run: with ``overwrite``, ``"replace"`` (built beside, swapped in when complete);
      with ``resume``, ``"resume"`` if it is incomplete and has the same settings; without
      either, ``"new"`` only if it is this very run interrupted before its first epoch.
    """
    from .fileio import enclosing_run, visible_entries

    o, r, w = names["out"], names["resume"], names["overwrite"]

    out = Path(out)
    run = enclosing_run(out.parent) if str(out.parent) else None
    if run is not None:
        raise ValueError(f"{o} {out} is inside the run directory {run}; choose a folder outside it.")
    if out.is_symlink() and not out.exists():
        raise ValueError(f"{o} {out} is a dangling symbolic link; choose another {o}.")
    if not out.exists():
        if resume:
            raise ValueError(f"{r}: {out} holds no run to resume.")
        return "new"
    if not out.is_dir():
        raise ValueError(f"{o} {out} exists and is not a directory.")
    with os_errors(out, "read"):
        entries = visible_entries(out)
    if not entries:
        if resume:
            raise ValueError(f"{r}: {out} holds no run to resume.")
        return "new"
    if not (out / "config.json").exists():
        raise ValueError(f"{o} {out} is not empty and holds no tbnn run; choose an empty or new directory "
                         f"(tbnn never replaces files it did not write, even with {w}).")
    old = load_run_config(out)
    if overwrite:
        return "replace"
    complete = (out / "metrics.json").exists()
    diff = _same_settings(old, run_cfg)
    if resume:
        if diff is not None:
            section, key, a, b = diff
            raise ValueError(f"{r}: the run in {out} has {section} setting {key}={a!r}, this call asks for "
                             f"{b!r}; resume with the same settings or choose another {o}.")
        if complete:
            raise ValueError(f"{r}: the run in {out} is already complete (it has metrics.json); nothing to "
                             f"resume. Choose another {o}, or pass {w} to train it again.")
        return "resume"
    if complete:
        raise ValueError(f"{o} {out} already holds a run; choose another directory, or pass {w} to "
                         f"replace it.")
    epoch = checkpoint_epoch(out)
    if diff is None and epoch == 0 and not has_checkpoint(out):
        return "new"  # this same run, stopped before its first epoch ended: start it again
    raise ValueError(f"{o} {out} already holds a run, interrupted after epoch {epoch}; pass {r} to "
                     f"continue it, {w} to start it again, or choose another directory.")


def load_run_state(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   generator: torch.Generator) -> dict[str, Any] | None:
    """Restore a run's resumable state, either format (``checkpoint.safetensors``, or the
    version-1 ``state.json`` + ``state.safetensors`` + ``model.safetensors``); returns its
    meta (``epoch``, ``history``, ``train_seconds``), ``None`` when there is none. Reads only."""
    run_dir = Path(run_dir)
    meta = load_checkpoint(run_dir, model, optimizer, scheduler, generator)
    if meta is None and (run_dir / "state.json").is_file():  # format version 1
        state = load_state(run_dir, optimizer, scheduler, generator)
        load_weights(model, run_dir / "model.safetensors")
        meta = {"epoch": int(state["epoch"]), "history": list(state["history"]),
                "train_seconds": float(state["train_seconds"])}
    return meta


class RunWriter:
    """Writes one training run into ``out`` under the output policy; a context manager.

    ``mode`` comes from :func:`check_run_target`. ``folder`` is where to write: ``out``
    itself (new run, resume), or for ``"replace"`` a tbnn-owned folder beside it that is
    swapped onto ``out`` when the run is complete (the old run stays whole until then).
    The run directory is locked (:class:`RunLock`) while the writer is open.

    On leaving with an error: an interrupted run (``KeyboardInterrupt``), or one that
    crashed (a lost process or device) after committing an epoch, stays resumable; a new
    run that diverged, met bad input or failed before its first checkpoint is removed, so
    the same command can be run again; a replacement is discarded and the old run left as
    it was.
    """

    def __init__(self, out: str | Path, run_cfg: dict[str, Any], resume: bool = False,
                 overwrite: bool = False, names: dict[str, str] | None = None) -> None:
        self.out = Path(out)
        self.run_cfg = run_cfg
        self.names = names or PY_NAMES
        self.mode = check_run_target(self.out, run_cfg, resume, overwrite, self.names)
        self.folder = self.out
        self._created = False
        self._locks: list[RunLock] = []

    def __enter__(self) -> RunWriter:
        from .fileio import file_op, prepare_parent, temp_name

        out = self.out
        with os_errors(out):
            prepare_parent(out)
            if not out.exists():
                file_op("mkdir", out)
                out.mkdir()
                self._created = True
        self._locks.append(RunLock(out, flag=self.names["out"]).acquire())
        try:
            self.mode = check_run_target(out, self.run_cfg, self.mode == "resume", self.mode == "replace", self.names)
            clean_run_temps(out)
            if self.mode == "replace":
                self.folder = temp_name(out, "new")
                with os_errors(self.folder):
                    file_op("mkdir", self.folder)
                    self.folder.mkdir()
            if self.mode != "resume":
                write_run_config(self.folder, self.run_cfg)
            elif "sha256" not in load_run_config(out):  # a version-1 run continues as version 2
                write_run_config(out, {k: v for k, v in load_run_config(out).items() if k in ("model", "train",
                                                                                              "tbnn_version")})
        except BaseException:
            self._discard(False)
            raise
        return self

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             generator: torch.Generator) -> dict[str, Any] | None:
        """Restore the run's checkpoint (either format); ``None`` when it has none."""
        return load_run_state(self.folder, model, optimizer, scheduler, generator)

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             generator: torch.Generator, meta: dict[str, Any]) -> None:
        """Commit an epoch: one atomic :func:`save_checkpoint`."""
        save_checkpoint(self.folder, model, optimizer, scheduler, generator, meta)

    def finish(self, model: nn.Module, metrics: dict[str, Any]) -> None:
        """Write the trained weights, then ``metrics.json`` (which marks the run complete)."""
        from .fileio import file_op

        save_weights(model, self.folder / "model.safetensors")
        write_sealed_json(self.folder / "metrics.json", metrics)
        for name in (CHECKPOINT_NAME, "state.json", "state.safetensors"):
            p = self.folder / name
            if p.exists():
                with os_errors(p):
                    file_op("remove", p)
                    p.unlink()

    def _discard(self, interrupted: bool) -> None:
        import shutil

        if self.mode == "replace" and self.folder != self.out:
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.mode == "new" and not interrupted:
            if self._created:
                shutil.rmtree(self.out, ignore_errors=True)
            else:
                for name in ("config.json", CHECKPOINT_NAME, "model.safetensors", "metrics.json"):
                    (self.out / name).unlink(missing_ok=True)
        for lock in self._locks:
            lock.release()
        self._locks.clear()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from .fileio import swap_in

        if exc_type is not None:
            # kept (resumable): an interruption, or a crash (a lost rank, a lost device) after an
            # epoch was committed; removed: a new run that diverged, met bad input, or failed
            # before its first checkpoint (the same command can then simply be run again)
            keep = issubclass(exc_type, KeyboardInterrupt) or (
                not issubclass(exc_type, (FloatingPointError, ValueError, TypeError))
                and has_checkpoint(self.folder))
            self._discard(keep)
            return
        try:
            if self.mode == "replace":
                with os_errors(self.out):
                    swap_in(self.folder, self.out, replace=True)
        except BaseException:
            self._discard(False)
            raise
        for lock in self._locks:
            lock.release()
        self._locks.clear()
