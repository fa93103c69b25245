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
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch.utils.data import DataLoader

from tbnn import __version__
from tbnn.parallel import distributed as ddp
from tbnn.io.checkpoint import RUN_FORMAT_VERSION, RUN_KIND, RunWriter, check_run_target, load_run_state
from tbnn.io.datasets import Dataset, load_dataset
from tbnn.runtime.device import default_device, resolve_device, seed_device
from tbnn.nn.models import ModelConfig, build_model, weight_storage_bits
from tbnn.nn.neurons import TemporalBinary
from tbnn.nn.regularize import ActivityRegularizer, fraction_active
from tbnn.io.userdata import as_training_data, check_logits
from tbnn.core.deprecation import deprecated, deprecated_attributes
from tbnn.core.validate import check_fraction, check_int, check_number

__all__ = ["TrainConfig", "check_sparsity", "default_device", "evaluate", "fit", "model_config_for", "train"]
#: ``FORMAT_VERSION`` (the run folder's), once re-exported here: deprecated.
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.checkpoint.RUN_FORMAT_VERSION",
                                                                  lambda: RUN_FORMAT_VERSION)})


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
    rate_target: float | None = None
    rate_weight: float | None = None
    input_rate_target: float | None = None
    data_sha256: str | None = None  # the data's identity by content (Dataset.sha256), checked by simulate

    def validate(self) -> None:
        check_int(self.epochs, "epochs")
        check_int(self.batch, "batch")
        check_number(self.lr, "lr")
        check_number(self.weight_decay, "weight_decay", inclusive=True)
        check_int(self.seed, "seed", minimum=0)
        for key in ("rate_target", "input_rate_target"):
            if getattr(self, key) is not None:
                check_fraction(getattr(self, key), key)
        if self.rate_weight is not None and self.rate_target is None:
            raise ValueError("rate_weight needs rate_target (the activity the penalty pushes toward).")
        if self.input_rate_target is not None and self.rate_target is None:
            raise ValueError("input_rate_target needs rate_target (the input is controlled beside the hidden "
                             "layers).")


def model_config_for(ds: Dataset, **model_kwargs: Any) -> ModelConfig:
    """A :class:`ModelConfig` sized for a dataset (input features, image shape, classes)."""
    return ModelConfig(in_features=int(ds.input_shape[0]), image_shape=ds.image_shape,
                       n_classes=int(ds.n_classes), **model_kwargs)


@torch.no_grad()
def evaluate(model: nn.Module, data: Any, y: Tensor | None = None, batch: int = 256,
             seed: int = 0) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` in eval mode.

    ``data``: ``x`` with labels ``y``, or anything :func:`tbnn.fit` takes as data. Random
    spike codes (``rate``) draw as :func:`tbnn.simulate` does with the same ``batch`` and
    ``seed`` (torch seeded with ``seed + i`` before the batch that starts at sample ``i``;
    the global random state is restored afterwards), so ``tbnn train`` and ``tbnn simulate``
    report the same accuracy.
    """
    d = as_training_data((data, y) if y is not None else data, "test")
    was = model.training
    model.eval()
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    correct, loss, n = 0, 0.0, 0
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        for xb, yb in d.batches(batch):
            seed_device(seed + n, dev)
            xb, yb = xb.to(dev), yb.to(dev)
            logits = model(xb)
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += len(yb)
    model.train(was)
    return correct / n, loss / n


def _run_config(model_cfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    return {"kind": RUN_KIND, "format_version": RUN_FORMAT_VERSION, "tbnn_version": __version__,
            "model": model_cfg.to_dict(), "train": asdict(tcfg)}


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
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    desc: str | None = None,
    run_config: dict[str, Any] | None = None,
    rate_target: float | None = None,
    input_rate_target: float | None = None,
    _interrupt_at: tuple[int, int] | None = None,
    _metrics: Callable[[nn.Module, list[dict[str, Any]], float], dict[str, Any]] | None = None,
    _names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    r"""Train any ``nn.Module`` on the user's data with the recipe of ``tbnn train``.

    Minimises ``loss`` (default: cross-entropy on the logits) with AdamW and a per-epoch
    cosine schedule, :math:`\eta_e = \tfrac{\eta}{2}(1 + \cos(\pi e / E))`, evaluating on
    ``test`` after every epoch; a progress bar shows epoch, loss and accuracy.
    Deterministic for a given ``seed`` (it seeds torch's global generator and the shuffling).

    Parameters
    ----------
    model : the network; for a temporal binary network, built from tbnn modules
        (:class:`~tbnn.nn.neurons.TemporalBinary`, :class:`~tbnn.nn.layers.TBLinear`, ...), whose
        gradients flow through the denoising affine transform (Ye et al., arXiv:2409.09245).
    train, test : ``(x, y)`` tensors or numpy arrays (``y`` integer class labels), a
        ``torch.utils.data.Dataset`` of ``(x, y)`` pairs or a ``DataLoader`` (used as is).
    epochs, lr, batch, seed, weight_decay : the recipe (``batch`` ignored for a DataLoader).
    loss : ``loss(logits, y) -> scalar``; e.g. cross-entropy plus an activity penalty.
    out : a run folder to write (``config.json``, ``model.safetensors``, ``metrics.json``;
        while training, ``checkpoint.safetensors``: the last finished epoch's whole state,
        written as one atomic file); nothing is written without it. A folder holding
        anything else is refused; a run there is refused unless ``resume`` or
        ``overwrite``. One process at a time may write it (a lock).
    resume : continue the incomplete run in ``out`` (same settings); ends with the same
        weights, bit for bit, as an uninterrupted run, however the run was stopped.
    overwrite : replace the run in ``out``: the new run is built beside it and swapped in
        only when complete (the old one stays whole until then).
    device : ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (default: where the model's
        parameters are); refused in one sentence when this torch build lacks it.
    rate_target : ``P``: rate-control every hidden layer toward ``P`` active per step
        (:class:`tbnn.nn.regularize.ActivityRegularizer` around ``loss``): homeostatic thresholds
        and a Lagrange multiplier per layer. The model's hidden neurons need adaptive thresholds
        (``adaptive_threshold`` ``"layer"``, recommended, or ``"neuron"``); the thresholds are model
        buffers, saved with the weights and the checkpoints, and the multipliers are saved in the
        checkpoints (so is the state of an ``ActivityRegularizer`` given as ``loss``).
    input_rate_target : ``Q`` (with ``rate_target``): rate-control the input encoder toward ``Q``
        active per step too, by its grid headroom (``model.encoder`` must have one:
        ``ModelConfig(input_headroom=1)``; :func:`tbnn.nn.homeostasis.step_headroom`).

    A last mini-batch of a single sample is skipped (BatchNorm cannot normalise one
    sample in training mode); a ``batch`` larger than the training set is one batch.
    A run that diverges or fails (not an interruption) leaves no folder behind, so the
    same call can be made again; an interrupted one (Ctrl-C, a kill) can be resumed.

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
    tcfg = TrainConfig(epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay, seed=seed,
                       rate_target=rate_target, input_rate_target=input_rate_target)
    tcfg.validate()
    if not isinstance(train, DataLoader):  # a DataLoader's own batches are split as they come
        ddp.check_batch(batch)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a callable loss(logits, y); got {type(loss).__name__}.")
    train_data = as_training_data(train, "train")
    test_data = as_training_data(test, "test") if test is not None else None
    for what, d in (("train", train_data), ("test", test_data)):
        if d is not None and _is_empty(d):
            raise ValueError(f"{what} holds no samples (an empty DataLoader or Dataset); fit needs at least one.")
    loss_fn = loss if loss is not None else F.cross_entropy
    controller = None
    if rate_target is not None:
        if isinstance(loss, ActivityRegularizer):
            raise ValueError("give rate_target or an ActivityRegularizer as loss, not both.")
        controller = ActivityRegularizer(model, rate_target, base=loss_fn, input_target=input_rate_target)
        loss_fn = controller
    if resume and out is None:
        raise ValueError("resume=True needs out= (the run folder to continue).")
    if overwrite and resume:
        raise ValueError("resume and overwrite exclude each other: continue the run, or start it again.")
    params = list(model.parameters())
    dev = resolve_device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    dev = ddp.device_for(dev)
    ddp.setup(dev)  # under torchrun: join the job (gloo / nccl)
    writer, mode = None, None
    if out is not None:
        cfg = run_config if run_config is not None else _custom_run_config(model, tcfg)
        # decided once, by rank 0, before anything is written; only rank 0 writes (and locks)
        mode = ddp.broadcast_check(check_run_target, Path(out), cfg, resume, overwrite, _names)
        if ddp.is_main():
            writer = RunWriter(out, cfg, resume=resume, overwrite=overwrite, names=_names)
        ddp.broadcast_check(_open_writer, writer)
    try:
        history = _fit_loop(model, train_data, test_data, loss_fn, tcfg, dev, writer, mode,
                            Path(out) if out is not None else None, progress,
                            desc or f"fit {type(model).__name__}", _interrupt_at, _metrics)
    except BaseException as err:
        if writer is not None:
            writer.__exit__(type(err), err, err.__traceback__)
        raise
    finally:
        if controller is not None:
            controller.remove()
    if writer is not None:
        writer.__exit__(None, None, None)
    return history


def _is_empty(data: Any) -> bool:
    try:
        return len(data) == 0
    except TypeError:  # an iterable dataset without a length: found out in the first epoch
        return False


def _watch_rectify(model: nn.Module) -> Any:
    """A hook that says, once, when the first :class:`TemporalBinary` of ``model`` (the one fed by
    the data) uses the ``rectify`` grid and silences more than 10 % of its inputs (the negative ones)."""
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, TemporalBinary)), None)
    if first is None or first[1].grid != "rectify":
        return None
    name, mod = first

    def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
        handle.remove()
        x = args[0] if args else None
        if isinstance(x, Tensor) and x.is_floating_point() and x.numel():
            frac = float((x.detach() < 0).float().mean())
            if frac > 0.1:
                warnings.warn(f"the first TemporalBinary ({name or 'the model'}) uses grid='rectify', which silences "
                              f"every negative input: {frac:.0%} of its inputs in the first batch are negative; "
                              f"for standardised data use grid='minmax'.", stacklevel=2)

    handle = mod.register_forward_pre_hook(hook)
    return handle


def _open_writer(writer: RunWriter | None) -> None:
    if writer is not None:
        writer.__enter__()


def _fit_loop(model, train_data, test_data, loss_fn, tcfg, dev, writer, mode, out_dir, progress, desc,
              interrupt_at, extra_metrics) -> list[dict[str, Any]]:
    epochs, batch, seed = tcfg.epochs, tcfg.batch, tcfg.seed
    model.to(dev)
    opt, sched, gen, start_epoch, history, train_seconds = _optimizer_state(model, tcfg, mode, out_dir, loss_fn)
    n_train = len(train_data)
    if isinstance(loss_fn, ActivityRegularizer) and loss_fn.total_steps is None and n_train:
        loss_fn.set_total_steps(epochs * -(-n_train // batch))  # the share the target is annealed over
    labels = train_data.tensors[1] if train_data.tensors is not None else None
    single = ddp.world_size() == 1
    # under torchrun: synchronised BatchNorm and DDP (both no-ops in one process)
    synced = ddp.convert_sync_batchnorm(model, dev)
    net = ddp.wrap(model, dev)

    bar = _progress(range(start_epoch, epochs), progress and ddp.is_main(), desc, epochs, start_epoch)
    watch = _watch_rectify(model) if ddp.is_main() else None
    for epoch in bar:
        ddp.seed_epoch(seed, epoch)
        t0 = time.perf_counter()
        model.train()
        totals = _train_epoch(net, train_data, loss_fn, opt, gen, dev, batch=batch, epoch=epoch,
                              check_labels=epoch == start_epoch, labels=labels if single else None,
                              single=single, interrupt_at=interrupt_at)
        sched.step()
        if watch is not None:
            watch.remove()
            watch = None
        tot_loss, tot_correct, seen = ddp.all_sum(*totals)
        if seen == 0:
            raise ValueError("train yielded no batch in an epoch (an empty DataLoader or Dataset); fit needs "
                             "at least one sample.")
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        rec = _epoch_record(model, test_data, epoch, tot_loss, tot_correct, seen, seconds)
        history.append(rec)
        _show_epoch(bar, rec)
        if writer is not None:
            state = {"epoch": epoch + 1, "history": history, "train_seconds": train_seconds, "samples": n_train}
            if isinstance(loss_fn, ActivityRegularizer):
                state["rate_control"] = loss_fn.state_dict()
            writer.save(model, opt, sched, gen, state)
    ddp.revert_sync_batchnorm(synced)
    if writer is not None:
        metrics = _fit_metrics(history, train_seconds, epochs, seed, dev)
        if extra_metrics is not None:
            metrics.update(extra_metrics(model, history, train_seconds))
        writer.finish(model, metrics)
    return history


def _optimizer_state(model: nn.Module, tcfg: TrainConfig, mode: str | None, out_dir: Path | None, loss_fn: Any):
    """AdamW, its per-epoch cosine schedule and the shuffling generator, seeded; with
    ``mode="resume"`` restored from the run's checkpoint, and with them the rate
    controller's multipliers when ``loss_fn`` is an :class:`ActivityRegularizer`. Returns ``(optimizer, scheduler,
    generator, first epoch, history so far, training seconds so far)``."""
    torch.manual_seed(tcfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tcfg.epochs)
    gen = torch.Generator().manual_seed(tcfg.seed)
    history: list[dict[str, Any]] = []
    start_epoch, train_seconds = 0, 0.0
    if mode == "resume":  # every rank reads the same state; rank 0 alone writes
        meta = load_run_state(out_dir, model, opt, sched, gen)
        if meta is not None:
            start_epoch, history = int(meta["epoch"]), list(meta["history"])
            train_seconds = float(meta.get("train_seconds", 0.0))
            if isinstance(loss_fn, ActivityRegularizer) and "rate_control" in meta:
                loss_fn.load_state_dict(meta["rate_control"])  # the multipliers (the thresholds are buffers)
    return opt, sched, gen, start_epoch, history, train_seconds


def _train_epoch(net, train_data, loss_fn, opt, gen, dev, *, batch: int, epoch: int, check_labels: bool,
                 labels: Tensor | None, single: bool,
                 interrupt_at: tuple[int, int] | None) -> tuple[float, int, int]:
    """One pass over this rank's shard of the training data: ``(summed loss, correct, seen)``.

    ``check_labels``: refuse bad labels on the first batch (``labels``: all of them, known in
    one process; else each rank's batch)."""
    tot_loss, tot_correct, seen = 0.0, 0, 0
    for b, (xb, yb, weight) in enumerate(ddp.shard_batches(train_data, batch, gen)):
        if interrupt_at is not None and (epoch, b) == tuple(interrupt_at):
            raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}, batch {b}")
        if single and len(yb) == 1 and b > 0:
            continue  # a last batch of one sample: BatchNorm cannot normalise it
        xb, yb = xb.to(dev), yb.to(dev)
        logits = net(xb)
        if b == 0 and check_labels:  # every rank's labels, refused on all
            ddp.check_all(check_logits, logits, labels if labels is not None else yb)
        value = loss_fn(logits, yb)
        if not torch.isfinite(value):
            raise FloatingPointError(f"training diverged: the loss is {value.item()} at epoch {epoch + 1} "
                                     f"(try a smaller lr).")
        opt.zero_grad(set_to_none=True)
        (value * weight if weight != 1.0 else value).backward()
        opt.step()
        tot_loss += value.item() * len(yb)
        tot_correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
    return tot_loss, tot_correct, seen


def _epoch_record(model: nn.Module, test_data: Any, epoch: int, tot_loss: float, tot_correct: int,
                  seen: int, seconds: float) -> dict[str, Any]:
    """The history entry of an epoch, evaluated on ``test_data`` (if any); refuses weights or a
    test loss that are no longer finite."""
    test_acc, test_loss = evaluate(model, test_data) if test_data is not None else (None, None)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()) or (
            test_loss is not None and not math.isfinite(test_loss)):
        raise FloatingPointError(f"training diverged: the weights or the test loss are no longer finite after "
                                 f"epoch {epoch + 1} (try a smaller lr).")
    return {"epoch": epoch + 1, "loss": tot_loss / max(seen, 1), "train_accuracy": tot_correct / max(seen, 1),
            "test_accuracy": test_acc, "test_loss": test_loss, "seconds": seconds}


def _show_epoch(bar: Any, rec: dict[str, Any]) -> None:
    """Loss and accuracies of the epoch just finished on the progress bar (if shown)."""
    if hasattr(bar, "set_postfix"):
        post = {"loss": f"{rec['loss']:.3f}", "acc": f"{rec['train_accuracy']:.3f}"}
        if rec["test_accuracy"] is not None:
            post["test"] = f"{rec['test_accuracy']:.3f}"
        bar.set_postfix(**post)


def check_sparsity(model: nn.Module, sparsity: Any, name: str = "sparsity") -> None:
    """Refuse an ``M:N`` pattern that prunes nothing (``M >= N``) or groups more weights than a layer has inputs.

    >>> from tbnn.nn.models import ModelConfig, build_model
    >>> check_sparsity(build_model(ModelConfig(hidden=16, sparsity="2:4")), "2:4")
    >>> check_sparsity(build_model(ModelConfig(hidden=16, sparsity="2:32")), "2:32")
    Traceback (most recent call last):
    ValueError: sparsity 'M:N' groups N=32 weights, more than layer layers.1 has inputs (16); choose N <= 16.
    """
    from tbnn.nn.layers import TBLayer
    from tbnn.core.quant import parse_sparsity

    sp = parse_sparsity(sparsity)
    if not isinstance(sp, tuple):
        return
    keep, group = sp
    if keep >= group:
        raise ValueError(f"{name} 'M:N' must keep fewer weights than it groups (M < N; {keep}:{group} prunes "
                         f"nothing); got {sparsity!r}.")
    for mod_name, mod in model.named_modules():
        if isinstance(mod, TBLayer) and getattr(mod, "sparsity", None) is not None:
            fan_in = mod.weight[0].numel()
            if group > fan_in:
                raise ValueError(f"{name} 'M:N' groups N={group} weights, more than layer {mod_name} has inputs "
                                 f"({fan_in}); choose N <= {fan_in}.")


def _fit_metrics(history: list[dict[str, Any]], train_seconds: float, epochs: int, seed: int,
                 dev: torch.device) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {"test_accuracy": last.get("test_accuracy"), "test_loss": last.get("test_loss"),
            "train_accuracy": last.get("train_accuracy"), "epochs": epochs, "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(1, len(history)), "history": history,
            "device": str(dev), "seed": seed, "processes": ddp.world_size()}


def _custom_run_config(model: nn.Module, tcfg: TrainConfig) -> dict[str, Any]:
    """``config.json`` of a :func:`fit` run on a user's model (rebuilt by the user's own class)."""
    cls = type(model)
    train_cfg = {k: v for k, v in asdict(tcfg).items() if k in ("epochs", "batch", "lr", "weight_decay", "seed")}
    for key in ("rate_target", "input_rate_target"):
        if getattr(tcfg, key) is not None:
            train_cfg[key] = getattr(tcfg, key)
    return {"kind": RUN_KIND, "format_version": RUN_FORMAT_VERSION, "tbnn_version": __version__,
            "model": {"class": f"{cls.__module__}.{cls.__qualname__}",
                      "parameters": sum(p.numel() for p in model.parameters())},
            "train": train_cfg}


def _rate_control(reg: ActivityRegularizer) -> dict[str, Any]:
    """``metrics.json``'s ``rate_control``: the controllers' settings and end state."""
    out: dict[str, Any] = {}
    if reg.controls:
        out = {"target": reg.target, "step": reg.step, "step_schedule": reg.step_schedule,
               "thresholds": reg.thresholds(), "anneal": reg.anneal, "total_steps": reg.total_steps,
               "multiplier_leak": reg.multiplier_leak, "multiplier_step": reg.multiplier_step,
               "multipliers": dict(reg.multipliers)}
    if reg.input_target is not None:
        out.update(input_target=reg.input_target, input_headroom=float(reg.encoder.headroom))
    return out


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
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    rate_target: float | None = None,
    rate_weight: float | None = None,
    input_rate_target: float | None = None,
    _interrupt_at: tuple[int, int] | None = None,
    _names: dict[str, str] | None = None,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Train a built-in model on a named dataset and return its metrics (``tbnn train``).

    Loads the dataset offline (:func:`tbnn.io.datasets.load_dataset`; the names are those of
    the dataset registry, :data:`tbnn.io.datasets.DATASETS`), builds the model from its config and runs
    :func:`fit`. ``model_kwargs`` are :class:`~tbnn.nn.models.ModelConfig` fields (``arch``,
    ``hidden``, ``layers``, ``timesteps``, ``weight_bits``, ``first_layer_bits``, ``sparsity``,
    ``lam``, ``block``, ``encoding``, ``beta``, ``threshold``, ...). With ``out`` the run is written
    there under the rules of :func:`fit` (``resume``, ``overwrite``, one writer, one atomic
    checkpoint per epoch). ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (default:
    CUDA when present). A ``batch`` larger than the training split is one batch (with a
    warning). Returns the metrics dict, with the trained model under the key ``"net"``
    (not written to ``metrics.json``).

    ``rate_target`` / ``rate_weight`` (``P``, ``W``): train with the activity regulariser
    (:class:`tbnn.nn.regularize.ActivityRegularizer`), loss = cross-entropy + ``W`` (A - P)^2
    with A the fraction of hidden neurons active per step; ``rate_target`` alone: homeostatic
    thresholds (one per layer unless ``adaptive_threshold`` says otherwise) and a Lagrange
    multiplier per layer, no weight to tune. The metrics then hold ``fraction_active`` per hidden
    layer on the test split (and ``rate_control``: the thresholds and multipliers).
    ``input_rate_target`` (``Q``, with ``rate_target``): the input encoder is rate-controlled toward
    ``Q`` by its grid headroom (``input_headroom`` 1 to start with unless given;
    :func:`tbnn.nn.homeostasis.step_headroom`).
    """
    tcfg = TrainConfig(dataset, epochs, batch, lr, weight_decay, seed, n_train, n_test, normalize,
                       rate_target, rate_weight, input_rate_target)
    tcfg.validate()
    ddp.check_batch(batch)
    if rate_target is not None and model not in ("tbn", "ste"):
        raise ValueError(f"rate_target needs a temporal binary model (tbn or ste); got model {model!r}.")
    if rate_target is not None and rate_weight is None:  # the target alone: thresholds and multipliers
        model_kwargs.setdefault("adaptive_threshold", "layer")
    if input_rate_target is not None:  # the encoder's gain is what the input controller moves
        model_kwargs.setdefault("input_headroom", 1.0)
    dev = ddp.device_for(resolve_device(device))
    ds = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test, normalize=normalize)
    tcfg.data_sha256 = ds.sha256
    mcfg = model_config_for(ds, model=model, **model_kwargs)
    run_cfg = _run_config(mcfg, tcfg)
    ddp.setup(dev)  # under torchrun: join the job
    if out is not None:  # refuse before building anything
        ddp.broadcast_check(check_run_target, Path(out), run_cfg, resume, overwrite, _names)
    if batch > ds.n_train:
        warnings.warn(f"batch {batch} is larger than the training split ({ds.n_train} samples): each epoch is one "
                      f"batch of {ds.n_train}.", stacklevel=2)
    torch.manual_seed(seed)
    net = build_model(mcfg)
    check_sparsity(net, mcfg.sparsity)
    net = net.to(dev)
    reg = (ActivityRegularizer(net, rate_target, rate_weight, input_target=input_rate_target)
           if rate_target is not None else None)
    final: dict[str, Any] = {}

    def summary(net: nn.Module, history: list[dict[str, Any]], train_seconds: float) -> dict[str, Any]:
        train_acc, _ = evaluate(net, ds.x_train, ds.y_train)
        test_acc, test_loss = evaluate(net, ds.x_test, ds.y_test)
        storage = weight_storage_bits(net)
        final.update({
            "dataset": ds.name, "model": model, "test_accuracy": test_acc, "test_loss": test_loss,
            "train_accuracy": train_acc, "epochs": epochs, "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(1, len(history)), "history": history,
            "weight_storage_bits": storage["total"], "weight_storage": storage,
            "parameters": sum(p.numel() for p in net.parameters()), "device": str(dev), "seed": seed,
            "processes": ddp.world_size(),
        })
        if reg is not None:
            final["fraction_active"] = fraction_active(net, reg, ds.x_test)
            if reg.controls or reg.input_target is not None:
                final["rate_control"] = _rate_control(reg)
        return final

    try:
        history = fit(net, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test), epochs=epochs, lr=lr, batch=batch,
                      seed=seed, weight_decay=weight_decay, loss=reg, out=out, resume=resume, overwrite=overwrite,
                      progress=progress, device=dev, desc=f"train {model} on {ds.name}", run_config=run_cfg,
                      _interrupt_at=_interrupt_at, _metrics=summary, _names=_names)
        metrics = dict(final) if final else summary(net, history, sum(h["seconds"] for h in history))
    finally:
        if reg is not None:
            reg.remove()
    metrics["net"] = net
    return metrics


def _progress(it: range, enabled: bool, desc: str, total: int, initial: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, initial=initial, unit="epoch", dynamic_ncols=True)


@deprecated("tbnn.train.trainer.train_fields", "[f.name for f in dataclasses.fields(TrainConfig)]")
def train_fields() -> list[str]:
    """Names of the :class:`TrainConfig` fields (unused in tbnn)."""
    return [f.name for f in fields(TrainConfig)]
