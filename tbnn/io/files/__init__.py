"""Safe file output: atomic writes, one writer per folder, and one policy for output folders.

* :func:`atomic_write` writes a file under a unique tbnn-owned temporary name in the
  destination's folder, ``fsync``-s it and ``os.replace``-s it onto the final name (atomic on
  POSIX), then ``fsync``-s the folder: a kill at any instant leaves the old file or the new
  one, never a mixture.
* :class:`FolderLock` (``fcntl.flock`` on a lock file) lets one process write a folder; a
  second writer is refused in one sentence.
* :func:`stage_dir` is the single owner of every output folder (train's replacement,
  simulate, analyze, demo, ``SimulationResult.save``, the simulations' scripts): it checks
  the target, locks it, stages the output privately, records what it wrote in a sealed
  manifest (:mod:`tbnn.io.files.manifest`) and moves it in; ``overwrite=True`` replaces only
  an output that is all tbnn's own and unchanged, and nothing tbnn did not write is ever
  deleted. :func:`stage_file` is the same for a figure (its record sealed inside the PNG).
* Every operating-system error (full disk, read-only mount, dangling link, name too long)
  becomes one ``ValueError`` sentence naming the path (:func:`os_errors`).

Every file operation first calls :data:`FAULT_HOOK` (when set) with the operation's name and
path; the tests use it to kill a writer at every step or to inject a full disk.
"""

from __future__ import annotations

from tbnn.io.files.atomic import (
    FAULT_HOOK,
    MAX_JSON_BYTES,
    OUTPUT_MARKERS,
    atomic_write,
    clean_stale_temps,
    file_op,
    fsync_dir,
    is_temp_name,
    os_error_sentence,
    os_errors,
    temp_name,
)
from tbnn.io.files.jsonfile import (
    canonical_json,
    file_sha256,
    json_digest,
    json_safe,
    read_json,
    read_sealed_json,
    seal_json,
    write_json,
    write_sealed_json,
)
from tbnn.io.files.lock import FolderLock
from tbnn.io.files.manifest import (
    KINDS,
    MANIFEST_NAME,
    foreign_entry,
    output_owner,
    png_record,
    read_manifest,
    register_kind,
    seal_png,
    write_manifest,
)
from tbnn.io.files.outputs import (
    check_target,
    commit_dir,
    enclosing_output,
    enclosing_run,
    output_dir,
    output_file,
    output_kind,
    prepare_parent,
    stage_dir,
    stage_file,
    swap_in,
    visible_entries,
)

__all__ = ["FAULT_HOOK", "prepare_parent", "canonical_json", "json_digest", "seal_json", "read_sealed_json", "write_sealed_json", "MAX_JSON_BYTES", "OUTPUT_MARKERS", "FolderLock", "atomic_write", "write_json", "json_safe", "read_json", "fsync_dir", "file_op", "os_errors", "os_error_sentence", "swap_in", "temp_name", "visible_entries", "is_temp_name", "clean_stale_temps", "output_kind", "enclosing_run", "file_sha256", "output_dir", "output_file",
           "KINDS", "MANIFEST_NAME", "foreign_entry", "output_owner", "png_record", "read_manifest", "register_kind",
           "seal_png", "write_manifest", "check_target", "commit_dir", "enclosing_output", "stage_dir", "stage_file"]
