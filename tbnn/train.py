"""Training loop shared by every model kind (``tbn``, ``ste``, ``float``, ``lif``).

``train(...)`` is the Python form of ``tbnn train``: it loads a dataset offline, builds the
model from its config, trains it with AdamW and a per-epoch cosine schedule, evaluates on
the test split each epoch, and (with ``out``) writes ``config.json``,
``model.safetensors`` and ``metrics.json`` plus the resumable state, all atomically.
Deterministic for a given ``seed``; ``resume=True`` continues an interrupted run and ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .checkpoint import (
    RUN_KIND,
    load_run_config,
    load_state,
    load_weights,
    save_state,
    save_weights,
)
from .data import Dataset, load_dataset
from .fileio import write_json
from .models import ModelConfig, build_model, weight_storage_bits

__all__ = ["TrainConfig", "train", "evaluate", "default_device", "model_config_for"]


@dataclass
class TrainConfig:
    """The training recipe (part of ``config.json``)."""

    dataset: str = "digits"
    epochs: int = 20
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    normalize: str = "auto"

    def validate(self) -> None:
        for name in ("epochs", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}.")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}; got {v!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {self.seed!r}.")


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_config_for(ds: Dataset, **model_kwargs: Any) -> ModelConfig:
    """A :class:`ModelConfig` sized for a dataset (input features, image shape, classes)."""
    return ModelConfig(in_features=int(ds.input_shape[0]), image_shape=ds.image_shape,
                       n_classes=int(ds.n_classes), **model_kwargs)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` in eval mode."""
    was = model.training
    model.eval()
    correct, loss, dev = 0, 0.0, next(model.parameters()).device
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch].to(dev), y[i:i + batch].to(dev)
        logits = model(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was)
    return correct / len(x), loss / len(x)


def _run_config(model_cfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    return {"kind": RUN_KIND, "tbnn_version": __version__, "model": model_cfg.to_dict(), "train": asdict(tcfg)}


def _check_out(out: Path, run_cfg: dict[str, Any], resume: bool) -> bool:
    """Decide whether ``out`` is new (False) or a run to resume (True); refuse anything else."""
    if not out.exists():
        if resume:
            raise ValueError(f"--resume: {out} holds no run to resume.")
        return False
    if not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory.")
    if not any(out.iterdir()):
        return False
    if not (out / "config.json").exists():
        raise ValueError(f"--out {out} is not empty and holds no tbnn run; choose an empty or new directory.")
    old = load_run_config(out)
    if not resume:
        raise ValueError(f"--out {out} already holds a run; choose another directory, or pass --resume to continue it.")
    for section in ("model", "train"):
        for key in sorted(set(old.get(section, {})) | set(run_cfg[section])):
            a, b = old.get(section, {}).get(key), run_cfg[section].get(key)
            if a == b:
                continue
            raise ValueError(
                f"--resume: the run in {out} has {section} setting {key}={a!r}, this call asks for "
                f"{b!r}; resume with the same settings or choose another --out."
            )
    return (out / "state.json").exists()


def train(
    dataset: str = "digits",
    model: str = "tbn",
    out: str | Path | None = None,
    *,
    epochs: int = 20,
    batch: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    normalize: str = "auto",
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    _interrupt_at: tuple[int, int] | None = None,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Train a model and return its metrics; see ``tbnn train --help`` for the options.

    ``model_kwargs`` are :class:`~tbnn.models.ModelConfig` fields (``arch``, ``hidden``,
    ``layers``, ``timesteps``, ``weight_bits``, ``sparsity``, ``lam``, ``block``,
    ``encoding``, ...). With ``out`` the run is written there (refusing a directory that
    holds another run unless ``resume``). Returns the metrics dict, with the trained model
    under the key ``"net"`` (not written to ``metrics.json``).
    """
    tcfg = TrainConfig(dataset, epochs, batch, lr, weight_decay, seed, n_train, n_test, normalize)
    tcfg.validate()
    ds = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test, normalize=normalize)
    mcfg = model_config_for(ds, model=model, **model_kwargs)
    run_cfg = _run_config(mcfg, tcfg)
    out_dir = Path(out) if out is not None else None
    resuming = _check_out(out_dir, run_cfg, resume) if out_dir is not None else False

    dev = torch.device(device) if device is not None else default_device()
    torch.manual_seed(seed)
    net = build_model(mcfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    start_epoch, train_seconds = 0, 0.0
    if resuming:
        assert out_dir is not None
        meta = load_state(out_dir, opt, sched, gen)
        load_weights(out_dir / "model.safetensors", net)
        start_epoch, history, train_seconds = int(meta["epoch"]), list(meta["history"]), float(meta["train_seconds"])
    elif out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "config.json", run_cfg)

    x_tr, y_tr = ds.x_train, ds.y_train
    bar = _progress(range(start_epoch, epochs), progress, f"train {model} on {ds.name}", epochs, start_epoch)
    for epoch in bar:
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        tot_loss, tot_correct = 0.0, 0
        for b, i in enumerate(range(0, len(perm), batch)):
            if _interrupt_at is not None and (epoch, b) == tuple(_interrupt_at):
                raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}, batch {b}")
            idx = perm[i:i + batch]
            xb, yb = x_tr[idx].to(dev), y_tr[idx].to(dev)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged: the loss is {loss.item()} at epoch {epoch + 1}.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(idx)
            tot_correct += int((logits.argmax(1) == yb).sum())
        sched.step()
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        test_acc, test_loss = evaluate(net, ds.x_test, ds.y_test)
        rec = {"epoch": epoch + 1, "loss": tot_loss / len(x_tr), "train_accuracy": tot_correct / len(x_tr),
               "test_accuracy": test_acc, "test_loss": test_loss, "seconds": seconds}
        history.append(rec)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['train_accuracy']:.3f}", test=f"{test_acc:.3f}")
        if out_dir is not None:
            save_state(out_dir, epoch + 1, opt, sched, gen, history, train_seconds)
            save_weights(out_dir / "model.safetensors", net)

    train_acc, _ = evaluate(net, ds.x_train, ds.y_train)
    test_acc, test_loss = evaluate(net, ds.x_test, ds.y_test)
    storage = weight_storage_bits(net)
    metrics: dict[str, Any] = {
        "dataset": ds.name, "model": model, "test_accuracy": test_acc, "test_loss": test_loss,
        "train_accuracy": train_acc, "epochs": epochs, "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(1, len(history)), "history": history,
        "weight_storage_bits": storage["total"], "weight_storage": storage,
        "parameters": sum(p.numel() for p in net.parameters()), "device": str(dev), "seed": seed,
    }
    if out_dir is not None:
        if not history:  # resumed a finished run: nothing new was trained
            save_weights(out_dir / "model.safetensors", net)
        write_json(out_dir / "metrics.json", metrics)
    metrics["net"] = net
    return metrics


def _progress(it: range, enabled: bool, desc: str, total: int, initial: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, initial=initial, unit="epoch", dynamic_ncols=True)


def train_fields() -> list[str]:
    """Names of the :class:`TrainConfig` fields."""
    return [f.name for f in fields(TrainConfig)]
