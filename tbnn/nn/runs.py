"""A finished run folder read back as a model: its config checked, its weights verified.

The files themselves (config schema, safetensors header, checksums) are read by
:mod:`tbnn.io.checkpoint`, which knows nothing of models; this module adds what needs the
built-in models: the state-dict shapes a config implies and the model config itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tbnn.io.checkpoint import (
    check_weights_header,
    digest_config,
    has_checkpoint,
    load_run_config,
    load_tensors,
    stored_config,
    verify_digest,
)
from tbnn.nn.models import ModelConfig, build_model

__all__ = ["expected_shapes", "read_run"]


def expected_shapes(model_cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict a model config implies, without allocating it (meta device)."""
    with torch.device("meta"):
        model = build_model(model_cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], Any, dict[str, torch.Tensor]]:
    """Read a finished run safely: ``(config, ModelConfig, state_dict)``.

    Order of checks: ``config.json`` (schema, types, checksum); its model config; the
    weights' header against that config (names, shapes, stored hyperparameters) before
    anything large is allocated; both files of one format version (a config without its
    checksum beside sealed weights is refused); then the tensors and their checksum. The model is then
    built with ``build_model(mcfg).load_state_dict(state)``.
    """
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
    meta = check_weights_header(weights, mcfg.to_dict(), expected_shapes(mcfg), "checkpoint", str(path))
    sealed_config, sealed_weights = "format_version" in cfg, "format_version" in meta
    if sealed_config != sealed_weights:  # one folder, one format: a checksum removed from one file
        raise ValueError(f"{path if sealed_weights else weights} has no format_version or checksum but "
                         f"{weights if sealed_weights else path} was written by format version 2: its checksum "
                         f"was removed or damaged, so the run cannot be trusted.")
    tensors = load_tensors(weights, "checkpoint")
    verify_digest(weights, "checkpoint", tensors, meta, digest_config(stored_config(weights, meta, "checkpoint"), meta))
    return cfg, mcfg, tensors
