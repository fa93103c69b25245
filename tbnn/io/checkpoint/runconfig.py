"""A run's ``config.json``: schema, types and checksum; the dataset check against it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tbnn.io.checkpoint.tensors import RUN_FORMAT_VERSION, RUN_KIND
from tbnn.io.files import (
    FolderLock,
    clean_stale_temps,
    os_errors,
    read_json,
    write_sealed_json,
)
from tbnn.io.versioned import check_sealed

__all__ = ["RunLock", "write_run_config", "load_run_config", "check_dataset", "clean_run_temps"]


# ---------------------------------------------------------------------- run config


#: Top-level fields of ``config.json`` and their types.
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,), "format_version": (int,), "tbnn_version": (str,), "model": (dict,),
    "train": (dict,), "sha256": (str,),
}
#: Top-level fields of a version-1 ``config.json`` (written before checksums).
V1_FIELDS = ("kind", "tbnn_version", "model", "train")
#: Fields of the ``train`` section and their types (``None`` allowed where listed).
TRAIN_FIELDS: dict[str, tuple[type, ...]] = {
    "dataset": (str,), "epochs": (int,), "batch": (int,), "lr": (int, float),
    "weight_decay": (int, float), "seed": (int,), "n_train": (int, type(None)),
    "n_test": (int, type(None)), "normalize": (str,), "rate_target": (int, float, type(None)),
    "rate_weight": (int, float, type(None)), "input_rate_target": (int, float, type(None)),
    "data_sha256": (str, type(None)),
}


class RunLock(FolderLock):
    """Exclusive writer lock on a run directory (see :class:`tbnn.io.files.FolderLock`)."""


def write_run_config(run_dir: str | Path, cfg: dict[str, Any]) -> Path:
    """Write ``config.json`` with ``format_version`` and its ``sha256``."""
    cfg = {**cfg, "kind": RUN_KIND, "format_version": RUN_FORMAT_VERSION}
    return write_sealed_json(Path(run_dir) / "config.json", cfg)


def type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a run directory (schema, types, checksum).

    Refused in one sentence naming the file and the field: not a tbnn run, an unknown
    field, a field of the wrong type, a ``format_version`` newer than this tbnn, a missing
    or mismatched checksum. A config without ``format_version`` is read as version 1 (no
    checksum, with a note) only when its fields are version 1's
    (:func:`tbnn.io.versioned.check_sealed`).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} does not exist.")
    path = run_dir / "config.json"
    if not path.exists() and (run_dir / "simulation.json").is_file():
        raise ValueError(f"{run_dir} is a simulation folder (it holds simulation.json); simulate takes the run "
                         f"folder it came from (the one with config.json and model.safetensors).")
    cfg = read_json(path, "run config")
    if not isinstance(cfg, dict) or cfg.get("kind") != RUN_KIND or "model" not in cfg:
        raise ValueError(f"{path} is not a tbnn run config (field kind must be {RUN_KIND!r}, field model present).")
    check_sealed(cfg, path, "run config", RUN_FORMAT_VERSION, V1_FIELDS)
    unknown = sorted(set(cfg) - set(RUN_FIELDS))
    if unknown:
        raise ValueError(f"{path} has unknown field {unknown[0]!r}; allowed: {', '.join(RUN_FIELDS)}.")
    for key, types in RUN_FIELDS.items():
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], types)):
            raise ValueError(f"{path} field {key} must be {type_names(types)}; got {type(cfg[key]).__name__}.")
    version = cfg.get("format_version", 1)
    if not 1 <= version <= RUN_FORMAT_VERSION:
        raise ValueError(f"{path} field format_version is {version}; this tbnn reads versions 1 to "
                         f"{RUN_FORMAT_VERSION} (a newer tbnn wrote it?).")
    train = cfg.get("train", {})
    unknown = sorted(set(train) - set(TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"{path} has unknown field train.{unknown[0]}; allowed: {', '.join(TRAIN_FIELDS)}.")
    for key, types in TRAIN_FIELDS.items():
        if key in train and (isinstance(train[key], bool) or not isinstance(train[key], types)):
            raise ValueError(f"{path} field train.{key} must be {type_names(types)}; got {train[key]!r}.")
    return cfg


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
