"""Weights of any ``nn.Module`` as one safetensors file with its config and checksum:
``save_weights`` / ``load_weights``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from tbnn.io.checkpoint.tensors import (
    RUN_FORMAT_VERSION,
    RUN_KIND,
    load_tensors,
    read_header,
    save_tensors,
    tensor_digest,
    tensor_version,
    verify_digest,
)

__all__ = ["save_weights", "stored_config", "check_weights_header", "load_weights", "module_hyperparameters", "digest_config"]


# ----------------------------------------------------------------------------- weights


def model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "cfg", None)
    return cfg.to_dict() if hasattr(cfg, "to_dict") else None


#: Attributes of tbnn modules that fix what their weights mean (read by name: io never imports nn).
HYPERPARAMETERS = ("timesteps", "scheme", "grid", "target", "lam", "block", "method", "weight_bits",
                   "weight_block", "weight_grid", "sparsity", "kw")


def _plain(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return v is None or isinstance(v, (bool, int, float, str))


def module_hyperparameters(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Hyperparameters of every tbnn module of ``model`` (``T``, grid, bits, block, ``lam``, ...),
    by module name; what :func:`save_weights` stores and :func:`load_weights` compares.

    >>> import torch
    >>> module_hyperparameters(torch.nn.Linear(2, 2))
    {}
    """
    out: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        if not type(mod).__module__.startswith("tbnn."):
            continue
        hp = {k: getattr(mod, k) for k in HYPERPARAMETERS if hasattr(mod, k) and _plain(getattr(mod, k))}
        out[name or "(model)"] = {"class": type(mod).__name__, **json.loads(json.dumps(hp))}
    return out


def digest_config(config: Any, meta: dict[str, str]) -> Any:
    """What a weights file's SHA-256 covers besides the tensors: the model config, and the
    modules' hyperparameters when the file stores them."""
    if "modules" not in meta:
        return config
    try:
        return [config, json.loads(meta["modules"])]
    except json.JSONDecodeError:
        return [config, meta["modules"]]


def check_modules(model: nn.Module, path: Path, meta: dict[str, str]) -> None:
    """Refuse a model whose tbnn modules differ from the stored ones, naming the module."""
    if "modules" not in meta:
        return
    try:
        stored = json.loads(meta["modules"])
    except json.JSONDecodeError:
        raise ValueError(f"checkpoint {path}: metadata field modules is not valid JSON.") from None
    mine = module_hyperparameters(model)
    if not isinstance(stored, dict):
        raise ValueError(f"checkpoint {path}: metadata field modules must be an object.")
    for name in sorted(set(stored) | set(mine)):
        a, b = stored.get(name), mine.get(name)
        if a == b:
            continue
        if not isinstance(a, (dict, type(None))):
            raise ValueError(f"checkpoint {path}: metadata field modules has a malformed entry {name!r}.")
        if a is None or b is None:
            raise ValueError(f"checkpoint {path} has {'no' if a is None else 'a'} tbnn module {name!r} "
                             f"({(b or a)['class']}) but this model has {'one' if a is None else 'none'}; "
                             f"build the model as it was when saved.")
        key = next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), "class")
        raise ValueError(f"checkpoint {path} was saved with module {name!r} ({a.get('class')}) {key}="
                         f"{a.get(key)!r}; this model's has {b.get(key)!r}.")


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's ``state_dict`` (parameters and buffers) as one safetensors file, atomically.

    Works for any ``nn.Module`` (the user's own class included); read it back with
    :func:`load_weights` into a model built the same way. No pickle is involved. The
    metadata holds the model's config (when it has one: ``T``, ``lam``, bits, block, grid,
    widths), the hyperparameters of each tbnn module (:func:`module_hyperparameters`; so a
    user's own model saved at ``T = 4`` is not loaded into one built with ``T = 8``) and a
    SHA-256 over the tensors and both.

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
    config = model_config_dict(model)
    meta = {"format": "pt", "kind": RUN_KIND, "format_version": str(RUN_FORMAT_VERSION),
            "config": json.dumps(config, sort_keys=True),
            "modules": json.dumps(module_hyperparameters(model), sort_keys=True)}
    meta["sha256"] = tensor_digest(tensors, digest_config(config, meta))
    return save_tensors(path, tensors, metadata=meta)


def stored_config(path: Path, meta: dict[str, str], what: str) -> Any:
    """The model config stored in a weights file's metadata (``None`` when it has none)."""
    if "config" not in meta:
        return None
    try:
        return json.loads(meta["config"])
    except json.JSONDecodeError:
        raise ValueError(f"{what} {path}: metadata field config is not valid JSON.") from None


def check_weights_header(path: str | Path, cfg_dict: dict[str, Any], expected: dict[str, tuple[int, ...]],
                         what: str = "checkpoint", config_name: str = "its config") -> dict[str, str]:
    """Check a weights file against a model config from its header alone; returns the metadata.

    ``cfg_dict`` is the model config as a dict and ``expected`` the state-dict shapes it
    implies (``tbnn.nn.runs.expected_shapes`` builds them on the ``meta`` device, so
    nothing large is allocated). Refused in one sentence naming the file and the field:
    tensors missing or unexpected, a shape the config does not imply, and (files with a
    stored config) any config field that differs from the one the weights were trained
    with (``timesteps``, ``lam``, ...).
    """
    path = Path(path)
    shapes, meta = read_header(path, what)
    tensor_version(path, what, meta)
    stored = stored_config(path, meta, what)
    if isinstance(stored, dict):
        for key in sorted(set(stored) | set(cfg_dict)):
            if stored.get(key) != cfg_dict.get(key):
                raise ValueError(
                    f"{config_name} field model.{key} is {cfg_dict.get(key)!r} but {what} {path} was "
                    f"trained with {stored.get(key)!r}; the config does not match the weights.")
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
        other than ``model.cfg``, a tbnn module whose hyperparameters (``timesteps``, grid,
        bits, block, ``lam``) differ from the stored ones, a newer ``format_version`` or a
        missing checksum (one sentence naming the file and the field or module).
    """
    path = Path(path)
    shapes, meta = read_header(path, "checkpoint")
    tensor_version(path, "checkpoint", meta)
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
    stored = stored_config(path, meta, "checkpoint")
    mine = model_config_dict(model)
    if isinstance(stored, dict) and mine is not None:
        for key in sorted(set(stored) | set(mine)):
            if stored.get(key) != mine.get(key):
                raise ValueError(f"checkpoint {path} was trained with model.{key}={stored.get(key)!r}, "
                                 f"this model has {mine.get(key)!r}.")
    check_modules(model, path, meta)
    tensors = load_tensors(path, "checkpoint")
    verify_digest(path, "checkpoint", tensors, meta, digest_config(stored, meta))
    model.load_state_dict(tensors)
    return model
