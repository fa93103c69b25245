"""A run folder as a target: resume, refuse or replace (:func:`check_run_target`), and
:class:`RunWriter`, which writes a run's files as one set under the run's lock, records them
in the run's manifest (:mod:`tbnn.io.files.manifest`) and never deletes a committed checkpoint."""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tbnn.io.checkpoint.runconfig import RunLock, clean_run_temps, load_run_config, write_run_config
from tbnn.io.checkpoint.state import has_checkpoint, load_checkpoint, load_state, save_checkpoint
from tbnn.io.checkpoint.tensors import CHECKPOINT_NAME, load_tensors, read_header, verify_digest
from tbnn.io.checkpoint.weights import digest_config, load_weights, save_weights, stored_config
from tbnn.io.files import (
    MANIFEST_NAME,
    foreign_entry,
    os_errors,
    read_json,
    read_sealed_json,
    register_kind,
    write_manifest,
    write_sealed_json,
)

#: Every file a run folder holds (both formats); the manifest records the ones present.
RUN_FILES = ("config.json", CHECKPOINT_NAME, "model.safetensors", "metrics.json", "state.json", "state.safetensors")


def _check_run_file(folder: Path, rel: str) -> str | None:
    """A run's file checked by its own content: ``"sealed"`` (its checksum verifies), ``"named"``
    (a version-1 file without one) or ``None`` (see :mod:`tbnn.io.files.manifest`)."""
    path = folder / rel
    if rel == "config.json":
        return "sealed" if "sha256" in load_run_config(folder) else "named"
    if rel == "metrics.json":
        return "sealed" if "sha256" in read_sealed_json(path, "metrics") else "named"
    if rel == "state.json":
        return "named" if isinstance(read_json(path, "training state"), dict) else None
    if rel in (CHECKPOINT_NAME, "model.safetensors", "state.safetensors"):
        _, meta = read_header(path, "run file")
        if "sha256" not in meta:
            return "named"
        tensors = load_tensors(path, "run file")
        if "state" in meta:  # a checkpoint: its digest covers the training state's JSON
            verify_digest(path, "training state", tensors, meta, meta["state"])
        else:  # weights: the model config and the modules' hyperparameters
            verify_digest(path, "weights", tensors, meta, digest_config(stored_config(path, meta, "weights"), meta))
        return "sealed"
    return None


register_kind("run", "config.json", _check_run_file)

__all__ = ["RUN_FILES", "checkpoint_epoch", "PY_NAMES", "CLI_NAMES", "check_run_target", "load_run_state", "RunWriter"]


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


def same_settings(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str, Any, Any] | None:
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

    * new or empty folder (tbnn's lock and temporary names ignored): ``"new"`` (also with
      ``resume``: there is nothing to resume, a new run starts and says so);
    * a folder inside another tbnn output, a file, a symbolic link, a folder holding
      anything tbnn did not write: refused (even with ``overwrite``);
    * a tbnn run: with ``overwrite``, ``"replace"`` (built beside, swapped in when complete)
      only if everything in it is tbnn's own and unchanged (its manifest, its seals);
      with ``resume``, ``"resume"`` if it is incomplete and has the same settings; without
      either, ``"new"`` only if it is this very run interrupted before its first epoch.
    """
    from tbnn.io.files import enclosing_output, enclosing_run, visible_entries

    o, r, w = names["out"], names["resume"], names["overwrite"]

    out = Path(out)
    run = enclosing_run(out.parent) if str(out.parent) else None
    if run is not None:
        raise ValueError(f"{o} {out} is inside the run directory {run}; choose a folder outside it.")
    outer = enclosing_output(out)
    if outer is not None:
        raise ValueError(f"{o} {out} is inside the tbnn {outer[1]} output {outer[0]}; tbnn never writes into "
                         f"another output: choose a folder outside it.")
    if out.is_symlink():
        raise ValueError(f"{o} {out} is a symbolic link; tbnn never replaces or moves a link: give the folder it "
                         f"points to, or another {o}.")
    if not out.exists():
        return "new"  # with resume too: nothing to resume, a new run starts (RunWriter says so)
    if not out.is_dir():
        raise ValueError(f"{o} {out} exists and is not a directory.")
    with os_errors(out, "read"):
        entries = visible_entries(out)
    if not entries:
        return "new"
    if not (out / "config.json").exists():
        first = sorted(p.name for p in entries)[0]
        raise ValueError(f"{o} {out} is not empty and holds no tbnn run ({first} is not tbnn's); choose an empty "
                         f"or new directory (tbnn never replaces files it did not write, even with {w}).")
    old = load_run_config(out)
    if overwrite:
        entry = foreign_entry(out, "run")
        if entry is not None:
            raise ValueError(f"{o} {out} holds {entry}, which tbnn did not write (or which changed since); nothing "
                             f"was replaced: move it away or choose another {o}.")
        return "replace"
    complete = (out / "metrics.json").exists()
    diff = same_settings(old, run_cfg)
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
        #: ``resume`` found no run: a new one started (said once, and in metrics.json)
        self.started_new = bool(resume) and self.mode == "new"
        self.folder = self.out
        self._created = False
        self._locks: list[RunLock] = []

    def __enter__(self) -> RunWriter:
        from tbnn.io.files import file_op, prepare_parent, temp_name

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
            self._record()
        except BaseException:
            self._discard(False)
            raise
        if self.started_new:
            warnings.warn(f"{self.names['resume']}: {out} holds no run yet; starting a new run there.", stacklevel=2)
        return self

    def _record(self) -> None:
        """Record the run's files in its manifest (what an ``overwrite`` may later replace)."""
        with os_errors(self.folder / MANIFEST_NAME):
            write_manifest(self.folder, "run", [n for n in RUN_FILES if (self.folder / n).is_file()])

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             generator: torch.Generator) -> dict[str, Any] | None:
        """Restore the run's checkpoint (either format); ``None`` when it has none."""
        return load_run_state(self.folder, model, optimizer, scheduler, generator)

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             generator: torch.Generator, meta: dict[str, Any]) -> None:
        """Commit an epoch: one atomic :func:`save_checkpoint`, then the manifest."""
        save_checkpoint(self.folder, model, optimizer, scheduler, generator, meta)
        self._record()

    def finish(self, model: nn.Module, metrics: dict[str, Any]) -> None:
        """Write the trained weights, then ``metrics.json`` (which marks the run complete)."""
        from tbnn.io.files import file_op

        if self.started_new:
            metrics = {**metrics, "started": f"new run: {self.names['resume']} found no run in {self.out}"}
        save_weights(model, self.folder / "model.safetensors")
        self._record()  # metrics.json (sealed) and a checkpoint left by a kill are own by their seals
        write_sealed_json(self.folder / "metrics.json", metrics)
        for name in (CHECKPOINT_NAME, "state.json", "state.safetensors"):
            p = self.folder / name
            if p.exists():
                with os_errors(p):
                    file_op("remove", p)
                    p.unlink()

    def _discard(self, keep: bool) -> Path | None:
        """Undo what this writer did, keeping any committed checkpoint; returns where a kept
        replacement run now lies. Only the files tbnn wrote are removed, never anything else."""
        import shutil

        from tbnn.io.files import visible_entries

        kept = None
        if self.mode == "replace" and self.folder != self.out:
            if has_checkpoint(self.folder):  # committed work of the new run: kept at a named path
                kept = self.out.with_name(f"{self.out.name}.tbnn-new-{uuid.uuid4().hex[:6]}")
                with os_errors(kept):
                    self.folder.rename(kept)
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
        elif self.mode == "new" and not keep:
            for name in (*RUN_FILES, MANIFEST_NAME):
                (self.out / name).unlink(missing_ok=True)
        for lock in self._locks:
            lock.release()
        self._locks.clear()
        if self.mode == "new" and not keep and self._created:
            try:  # only tbnn's lock and temporary names may be left: removed one by one, then the
                # folder itself (rmdir, which fails if anything appeared meanwhile)
                users = set(visible_entries(self.out))
                for p in self.out.iterdir():
                    if p not in users:
                        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                self.out.rmdir()
            except OSError:
                pass
        return kept

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from tbnn.io.files import commit_dir

        if exc_type is not None:
            # kept: an interruption, and any run that has committed a checkpoint (a full disk, a
            # lost rank, a crash); removed: a new run that met bad input or failed before its first
            # checkpoint (the same command can then simply be run again)
            committed = has_checkpoint(self.folder)
            kept = self._discard(issubclass(exc_type, KeyboardInterrupt) or committed)
            if committed and issubclass(exc_type, (ValueError, OSError)):
                where = kept if kept is not None else self.folder
                epoch = checkpoint_epoch(where)
                raise ValueError(f"{exc} The run in {where} keeps its checkpoint of epoch {epoch}; "
                                 f"{self.names['resume']} (with {self.names['out']} {where}) continues it once "
                                 f"the cause is fixed (for a full disk: once space is freed).") from None
            return
        try:
            if self.mode == "replace":
                with os_errors(self.out):
                    commit_dir(self.folder, self.out, "run", replace=True, flag=self.names["out"])
        except BaseException:
            self._discard(False)
            raise
        for lock in self._locks:
            lock.release()
        self._locks.clear()
