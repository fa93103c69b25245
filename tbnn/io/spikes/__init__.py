"""Recorded spike trains: the archive (``spikes.npz``) and the checks on spike arrays.

This module is the bottom of the analysis stack: the archive's reading and writing and the
validation of spike arrays live here, and :mod:`tbnn.analysis` and :mod:`tbnn.viz.plot` import
them. It imports nothing from the rest of tbnn but :mod:`tbnn.io.files`.

Axis convention
---------------
* **Spikes in flight** (``SpikeCode.spikes`` inside a network, snnTorch / SpikingJelly
  recordings) are **time-first**: ``[T, B, ...]``.
* **Recorded spikes** (archives, ``simulate(...).spikes``, everything in
  :mod:`tbnn.analysis` and :mod:`tbnn.viz.plot`) are **sample-first**: boolean
  ``[samples, T, neurons]``. :func:`save_time_first` converts the first into the second.

Samples are presented one after another; analysis that needs one long train per neuron
(the *stream view*, as in a recording) concatenates them in sample order
(:func:`as_stream`). A spike in step ``i`` happens at time ``i * dt_ms``.

Layout of the archive (a NumPy ``.npz``, always loaded with ``allow_pickle=False``):

==================  =========================  ==========================================
key                 dtype / shape              meaning
==================  =========================  ==========================================
``<layer name>``    bool ``[samples, T, n]``   spikes of one spiking layer, one per layer
``layer_names``     unicode ``[layers]``       layer names in network order (optional)
``labels``          int64 ``[samples]``        true class of each sample (optional)
``predictions``     int64 ``[samples]``        predicted class of each sample (optional)
``timesteps``       int64 scalar               ``T`` (optional; else from the shapes)
``dt_ms``           float64 scalar             duration of one step in ms (optional)
``tbnn_spikes_version``  int64 scalar          format version (currently 1)
``extra``: any other arrays passed as ``extra`` to :func:`save_spikes`
==================  =========================  ==========================================

A **plain archive** holds only boolean 3-D arrays (and optionally ``labels``,
``predictions``, ``timesteps``, ``dt_ms``): its layers are its 3-D boolean arrays, named by
their keys, in file order; without ``dt_ms`` the step is taken as 1 ms and
:attr:`SpikeRecord.dt_declared` is False, so reports can say so.

Also here: :func:`to_neo`, which converts boolean spike arrays into ``neo.SpikeTrain``
objects for use with Elephant (needs the ``bio`` extra).

>>> import numpy as np, tempfile, os
>>> d = tempfile.mkdtemp()
>>> np.savez(os.path.join(d, "rec.npz"), hidden=np.zeros((2, 5, 3), bool))
>>> rec = load_spikes(os.path.join(d, "rec.npz"))
>>> rec.layer_names, rec.samples, rec.timesteps, rec.dt_ms, rec.dt_declared
(['hidden'], 2, 5, 1.0, False)
"""

from __future__ import annotations

from tbnn.core.deprecation import deprecated_attributes
from tbnn.io.spikes.archive import load_spikes, save_spikes, save_time_first
from tbnn.io.spikes.checks import (
    as_stream,
    check_dt,
    check_labels,
    check_positive_int,
    check_spikes,
    to_numpy,
)
from tbnn.io.spikes.neo import to_neo
from tbnn.io.spikes.record import DEFAULT_DT_MS, SPIKES_FORMAT_VERSION, SpikeRecord

__all__ = ["DEFAULT_DT_MS", "SPIKES_FORMAT_VERSION", "SpikeRecord", "as_stream", "check_dt", "check_labels", "check_positive_int", "check_spikes", "load_spikes", "save_spikes", "save_time_first", "to_neo", "to_numpy"]

#: Deprecated names, served with a DeprecationWarning naming the new one.
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.spikes.SPIKES_FORMAT_VERSION", lambda: SPIKES_FORMAT_VERSION)})
