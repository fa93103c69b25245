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
any mismatch is one ``ValueError`` naming the file and the field. A checksum is required in
every file of a versioned format: folders written before ``format_version`` existed (version
1: no checksums, separate state files) are still read, with a note, only when every file's
fields are version 1's (:mod:`tbnn.io.versioned`); a newer ``format_version`` is refused.

**One writer.** :class:`RunLock` (``fcntl.flock``) refuses a second process writing the
same run directory.
"""

from __future__ import annotations

from tbnn.core.deprecation import deprecated_attributes
from tbnn.io.checkpoint.runconfig import (
    RunLock,
    check_dataset,
    clean_run_temps,
    load_run_config,
    write_run_config,
)
from tbnn.io.checkpoint.runfolder import (
    CLI_NAMES,
    PY_NAMES,
    RunWriter,
    check_run_target,
    checkpoint_epoch,
    load_run_state,
)
from tbnn.io.checkpoint.state import (
    has_checkpoint,
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_state,
)
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
from tbnn.io.checkpoint.weights import (
    check_weights_header,
    digest_config,
    load_weights,
    save_weights,
    stored_config,
)

__all__ = ["RUN_KIND", "RUN_FORMAT_VERSION", "CHECKPOINT_NAME", "RunLock", "tensor_digest", "save_tensors", "load_tensors", "read_header", "save_weights", "load_weights", "check_weights_header", "save_checkpoint", "load_checkpoint", "has_checkpoint", "save_state", "load_state", "load_run_config", "write_run_config", "stored_config", "verify_digest", "tensor_version", "digest_config", "check_dataset", "clean_run_temps", "checkpoint_epoch", "check_run_target", "RunWriter", "load_run_state", "PY_NAMES", "CLI_NAMES"]

#: Deprecated names, served with a DeprecationWarning naming the new one.
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.checkpoint.RUN_FORMAT_VERSION",
                                                                  lambda: RUN_FORMAT_VERSION)})
