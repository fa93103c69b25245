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
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
from .userdata import as_training_data, check_logits

__all__ = ["FORMAT_VERSION", "TrainConfig", "default_device", "evaluate", "fit", "model_config_for", "train"]

#: Version of the run-folder layout; folders without the field (version 1) are still read.
FORMAT_VERSION = 2


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
def evaluate(model: nn.Module, data: Any, y: Tensor | None = None, batch: int = 512) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` in eval mode.

    ``data``: ``x`` with labels ``y``, or anything :func:`tbnn.fit` takes as data.
    """
    d = as_training_data((data, y) if y is not None else data, "test")
    was = model.training
    model.eval()
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    correct, loss, n = 0, 0.0, 0
    for xb, yb in d.batches(batch):
        xb, yb = xb.to(dev), yb.to(dev)
        logits = model(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
        n += len(yb)
    model.train(was)
    return correct / n, loss / n


def _run_config(model_cfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    return {"kind": RUN_KIND, "format_version": FORMAT_VERSION, "tbnn_version": __version__,
            "model": model_cfg.to_dict(), "train": asdict(tcfg)}


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


def fit(
    model: nn.Module,
    train: Any,
    test: Any = None,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch: int = 64,
    seed: int = 0,
    weight_decay: float = 0.0,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    desc: str | None = None,
    run_config: dict[str, Any] | None = None,
    _interrupt_at: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    r"""Train any ``nn.Module`` on the user's data with the recipe of ``tbnn train``.

    Minimises ``loss`` (default: cross-entropy on the logits) with AdamW and a per-epoch
    cosine schedule, :math:`\eta_e = \tfrac{\eta}{2}(1 + \cos(\pi e / E))`, evaluating on
    ``test`` after every epoch; a progress bar shows epoch, loss and accuracy.
    Deterministic for a given ``seed`` (it seeds torch's global generator and the shuffling).

    Parameters
    ----------
    model : the network; for a temporal binary network, built from tbnn modules
        (:class:`~tbnn.neurons.TemporalBinary`, :class:`~tbnn.layers.TBLinear`, ...), whose
        gradients flow through the denoising affine transform (Ye et al., arXiv:2409.09245).
    train, test : ``(x, y)`` tensors or numpy arrays (``y`` integer class labels), a
        ``torch.utils.data.Dataset`` of ``(x, y)`` pairs or a ``DataLoader`` (used as is).
    epochs, lr, batch, seed, weight_decay : the recipe (``batch`` ignored for a DataLoader).
    loss : ``loss(logits, y) -> scalar``; e.g. cross-entropy plus an activity penalty.
    out : a run folder to write (``config.json``, ``model.safetensors``, ``metrics.json``
        and the resumable state); nothing is written without it.
    resume : continue the incomplete run in ``out``.
    device : where to train (default: where the model's parameters are).

    Returns
    -------
    The per-epoch history: one dict per epoch with ``epoch``, ``loss``,
    ``train_accuracy``, ``test_accuracy`` and ``test_loss`` (``None`` without ``test``),
    and ``seconds``.

    Raises
    ------
    ValueError
        Bad data (shapes, dtypes, NaN / inf, negative or non-integer labels) or a bad
        recipe value, before anything is written.
    FloatingPointError
        The loss became NaN or infinite (training diverged).

    Examples
    --------
    >>> import torch, tbnn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(tbnn.TemporalBinary(4, grid="minmax"), tbnn.TBLinear(8, 3))
    >>> x, y = torch.randn(60, 8), torch.randint(0, 3, (60,))
    >>> hist = tbnn.fit(net, (x, y), epochs=2, batch=20, progress=False)
    >>> [h["epoch"] for h in hist]
    [1, 2]
    """
    tcfg = TrainConfig(epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay, seed=seed)
    tcfg.validate()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a callable loss(logits, y); got {type(loss).__name__}.")
    train_data = as_training_data(train, "train")
    test_data = as_training_data(test, "test") if test is not None else None
    loss_fn = loss if loss is not None else F.cross_entropy
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        cfg = run_config if run_config is not None else _custom_run_config(model, tcfg)
        resuming = _check_out(out_dir, cfg, resume)
    else:
        resuming = False
        if resume:
            raise ValueError("resume=True needs out= (the run folder to continue).")

    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    model.to(dev)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    start_epoch, train_seconds = 0, 0.0
    if resuming:
        assert out_dir is not None
        meta = load_state(out_dir, opt, sched, gen)
        load_weights(model, out_dir / "model.safetensors")
        start_epoch, history, train_seconds = int(meta["epoch"]), list(meta["history"]), float(meta["train_seconds"])
    elif out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "config.json", cfg)

    bar = _progress(range(start_epoch, epochs), progress, desc or f"fit {type(model).__name__}", epochs, start_epoch)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for b, (xb, yb) in enumerate(train_data.batches(batch, gen)):
            if _interrupt_at is not None and (epoch, b) == tuple(_interrupt_at):
                raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}, batch {b}")
            xb, yb = xb.to(dev), yb.to(dev)
            logits = model(xb)
            if b == 0 and epoch == start_epoch:
                check_logits(logits, yb)
            value = loss_fn(logits, yb)
            if not torch.isfinite(value):
                raise FloatingPointError(f"training diverged: the loss is {value.item()} at epoch {epoch + 1}.")
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            tot_loss += value.item() * len(yb)
            tot_correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
        sched.step()
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        test_acc, test_loss = evaluate(model, test_data) if test_data is not None else (None, None)
        rec = {"epoch": epoch + 1, "loss": tot_loss / max(seen, 1), "train_accuracy": tot_correct / max(seen, 1),
               "test_accuracy": test_acc, "test_loss": test_loss, "seconds": seconds}
        history.append(rec)
        if hasattr(bar, "set_postfix"):
            post = {"loss": f"{rec['loss']:.3f}", "acc": f"{rec['train_accuracy']:.3f}"}
            if test_acc is not None:
                post["test"] = f"{test_acc:.3f}"
            bar.set_postfix(**post)
        if out_dir is not None:
            save_state(out_dir, epoch + 1, opt, sched, gen, history, train_seconds)
            save_weights(model, out_dir / "model.safetensors")
    if out_dir is not None:
        if not history[start_epoch:]:  # resumed a finished run: nothing new was trained
            save_weights(model, out_dir / "model.safetensors")
        write_json(out_dir / "metrics.json", _fit_metrics(history, train_seconds, epochs, seed, dev))
    return history


def _fit_metrics(history: list[dict[str, Any]], train_seconds: float, epochs: int, seed: int,
                 dev: torch.device) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {"test_accuracy": last.get("test_accuracy"), "test_loss": last.get("test_loss"),
            "train_accuracy": last.get("train_accuracy"), "epochs": epochs, "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(1, len(history)), "history": history,
            "device": str(dev), "seed": seed}


def _custom_run_config(model: nn.Module, tcfg: TrainConfig) -> dict[str, Any]:
    """``config.json`` of a :func:`fit` run on a user's model (rebuilt by the user's own class)."""
    cls = type(model)
    train_cfg = {k: v for k, v in asdict(tcfg).items() if k in ("epochs", "batch", "lr", "weight_decay", "seed")}
    return {"kind": RUN_KIND, "format_version": FORMAT_VERSION, "tbnn_version": __version__,
            "model": {"class": f"{cls.__module__}.{cls.__qualname__}",
                      "parameters": sum(p.numel() for p in model.parameters())},
            "train": train_cfg}


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
    """Train a built-in model on a named dataset and return its metrics (``tbnn train``).

    Loads the dataset offline (:func:`tbnn.data.load_dataset`: ``digits``, ``mnist1d``,
    ``npz:PATH``, ``idx:PATH``, ``synthetic``), builds the model from its config and runs
    :func:`fit`. ``model_kwargs`` are :class:`~tbnn.models.ModelConfig` fields (``arch``,
    ``hidden``, ``layers``, ``timesteps``, ``weight_bits``, ``sparsity``, ``lam``,
    ``block``, ``encoding``, ...). With ``out`` the run is written there (refusing a
    directory that holds another run unless ``resume``). Returns the metrics dict, with the
    trained model under the key ``"net"`` (not written to ``metrics.json``).
    """
    tcfg = TrainConfig(dataset, epochs, batch, lr, weight_decay, seed, n_train, n_test, normalize)
    tcfg.validate()
    ds = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test, normalize=normalize)
    mcfg = model_config_for(ds, model=model, **model_kwargs)
    run_cfg = _run_config(mcfg, tcfg)
    if out is not None:
        _check_out(Path(out), run_cfg, resume)  # refuse before building anything
    dev = torch.device(device) if device is not None else default_device()
    torch.manual_seed(seed)
    net = build_model(mcfg).to(dev)
    history = fit(net, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test), epochs=epochs, lr=lr, batch=batch,
                  seed=seed, weight_decay=weight_decay, out=out, resume=resume, progress=progress, device=dev,
                  desc=f"train {model} on {ds.name}", run_config=run_cfg, _interrupt_at=_interrupt_at)
    train_seconds = sum(h["seconds"] for h in history)
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
    if out is not None:
        write_json(Path(out) / "metrics.json", metrics)
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
