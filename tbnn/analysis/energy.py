"""Energy accounting of a recorded run: spikes and synaptic operations per inference.

The energy of event-driven hardware scales with the number of spikes and of synaptic
operations (one per spike and target synapse); see Merolla et al. 2014, Science 345:668
and Davies et al. 2018, IEEE Micro 38:82.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from tbnn.analysis import sparseness as sp
from tbnn.io.files import file_sha256
from tbnn.io.versioned import SIMULATION_V1_FIELDS, SIMULATION_VERSION, read_versioned_json
from tbnn.io.spikes import SpikeRecord

__all__ = ["energy_accounting", "read_simulation", "simulation_fanout"]


def read_simulation(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``simulation.json`` (or the one in a folder); None if absent.

    The file must carry its checksum (``sha256``) and, when a ``spikes.npz`` lies beside
    it, the archive's (``spikes_sha256``), which is checked here, before the archive is
    parsed; a ``format_version`` newer than this tbnn's is refused; a file without one is
    read (with a note) only when its fields are version 1's (:mod:`tbnn.io.versioned`).

    Raises
    ------
    ValueError
        If it exists but is not a JSON object, fails or lacks its checksum, or its archive
        does not match ``spikes_sha256``.

    >>> read_simulation("/nonexistent-folder") is None
    True
    """
    path = Path(path)
    if path.is_dir():
        path = path / "simulation.json"
    if not path.is_file():
        return None
    data, version = read_versioned_json(path, "simulation", SIMULATION_VERSION, SIMULATION_V1_FIELDS)
    spikes = path.parent / "spikes.npz"
    want = data.get("spikes_sha256")
    if want is None and version >= 2 and spikes.exists():
        raise ValueError(f"{spikes} lies beside {path}, which records no spikes_sha256: the archive was added, or "
                         "the field removed, after tbnn wrote the pair.")
    if want is not None and not spikes.is_file():
        raise ValueError(f"{path} records spikes_sha256 but {spikes} is missing.")
    if want is not None and file_sha256(spikes) != want:
        raise ValueError(f"{spikes} does not match {path} (field spikes_sha256): the archive was changed or "
                         "replaced after tbnn wrote the pair.")
    for key in ("samples", "timesteps"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{path} field {key} must be an integer >= 1; got {v!r}.")
    for key in ("accuracy", "forward_agreement"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
            raise ValueError(f"{path} field {key} must be a number in [0, 1]; got {v!r}.")
    return data


def simulation_fanout(sim: dict[str, Any] | None) -> dict[str, float]:
    """Mean fan-out of each layer named in ``simulation.json``'s ``layers`` list (finite,
    ``>= 0``); ``{}`` without simulation.json.

    >>> simulation_fanout({"layers": [{"name": "h", "fanout": 5}]})
    {'h': 5.0}
    """
    out: dict[str, float] = {}
    if not sim or not isinstance(sim.get("layers"), list):
        return out
    for entry in sim["layers"]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            f = entry.get("fanout")
            if isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) \
                    and f >= 0:
                out[entry["name"]] = float(f)
    return out


def energy_accounting(rec: SpikeRecord, sim: dict[str, Any] | None) -> dict[str, Any]:
    r"""Energy proxy of every layer of an archive, per inference (per sample).

    Spikes come from the archive; synaptic operations from the simulator's exact per-layer
    count when ``simulation.json`` describes the same samples, else spikes times the
    layer's mean fan-out, :math:`\mathrm{SOP} = \sum_l n_l\, f_l` (the synaptic-operation
    count used for neuromorphic energy estimates, Merolla et al. 2014, Science 345:668),
    else unknown (None).

    Returns
    -------
    dict
        ``source``, ``spikes_per_sample``, ``synaptic_ops_per_sample`` and ``layers``
        (name -> ``neurons``, ``spikes_per_sample``, ``spikes_per_neuron_per_sample``,
        ``fanout``, ``synaptic_ops_per_sample``, ``synaptic_ops_source``).

    Examples
    --------
    >>> import numpy as np
    >>> from tbnn.io.spikes import SpikeRecord
    >>> rec = SpikeRecord({"h": np.ones((2, 3, 4), bool)}, None, None, 3, 1.0)
    >>> e = energy_accounting(rec, {"layers": [{"name": "h", "fanout": 10}]})
    >>> e["spikes_per_sample"], e["synaptic_ops_per_sample"]
    (12.0, 120.0)
    """
    fan = simulation_fanout(sim)
    energy = sp.energy_proxy(rec.layers, fan)
    exact: dict[str, float] = {}
    if sim and sim.get("samples") == rec.samples and isinstance(sim.get("layers"), list):
        for entry in sim["layers"]:
            if isinstance(entry, dict) and entry.get("name") in rec.layers:
                ops = entry.get("synaptic_ops")
                if isinstance(ops, (int, float)) and not isinstance(ops, bool) \
                        and math.isfinite(ops) and ops >= 0:
                    exact[entry["name"]] = float(ops) / rec.samples
    total: float | None = 0.0
    for name, e in energy["layers"].items():
        if name in exact:
            e["synaptic_ops_per_sample"] = exact[name]
            e["synaptic_ops_source"] = "simulation.json (exact count)"
        elif e["synaptic_ops_per_sample"] is not None:
            e["synaptic_ops_source"] = "spikes x fanout from simulation.json"
        else:
            e["synaptic_ops_source"] = None
        ops = e["synaptic_ops_per_sample"]
        total = None if (total is None or ops is None) else total + ops
    energy["synaptic_ops_per_sample"] = total
    energy["source"] = ("spikes from the archive; synaptic operations from simulation.json"
                        if fan or exact else
                        "spikes from the archive; no simulation.json fanout, so synaptic "
                        "operations are unknown")
    return energy
