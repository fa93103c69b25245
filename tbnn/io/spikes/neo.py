"""Spike trains as Neo objects, for Elephant and other Neo-based tools."""

from __future__ import annotations

from typing import Any

import numpy as np

from tbnn.core.validate import check_dt
from tbnn.io.spikes.checks import as_stream

__all__ = ["to_neo"]


def to_neo(spikes: Any, dt_ms: float) -> list:
    """Convert boolean spikes to one ``neo.SpikeTrain`` per neuron (for Elephant).

    A spike in step ``i`` becomes a spike at time ``i * dt_ms`` ms (the start of its bin),
    with ``t_start = 0`` and ``t_stop = n_steps * dt_ms``, so that binning with
    ``bin_size = dt_ms`` recovers the array. ``[samples, T, neurons]`` input is first
    concatenated along time (stream view).

    Parameters
    ----------
    spikes : bool array ``[time]``, ``[time, neurons]`` or ``[samples, time, neurons]``
    dt_ms : float
        Duration of one step in ms (``> 0``).

    Returns
    -------
    list of neo.SpikeTrain
        One train per neuron, times in ms.
    """
    dt = check_dt(dt_ms)
    stream = as_stream(spikes)
    try:
        import neo
        import quantities as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "to_neo needs neo and quantities, which come with the bio extra: "
            "pip install tbnn[bio]"
        ) from exc
    n_steps = stream.shape[0]
    t_stop = n_steps * dt
    return [
        neo.SpikeTrain(np.flatnonzero(stream[:, i]) * dt, units=pq.ms, t_start=0.0,
                       t_stop=t_stop)
        for i in range(stream.shape[1])
    ]
