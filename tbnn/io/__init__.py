"""Layer 1, files: everything tbnn reads or writes, and nothing about models.

:mod:`~tbnn.io.files` (atomic writes, locks, output folders, sealed JSON),
:mod:`~tbnn.io.checkpoint` (safetensors, checksums, training state, run folders),
:mod:`~tbnn.io.spikes` (spike archives), :mod:`~tbnn.io.datasets` and
:mod:`~tbnn.io.cache` (datasets by name, offline), :mod:`~tbnn.io.userdata` (a user's
tensors, arrays and loaders), :mod:`~tbnn.io.recording` (a user's recordings). Imports only
:mod:`tbnn.core`.
"""
