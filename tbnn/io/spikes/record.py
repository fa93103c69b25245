"""A spike archive in memory: :class:`SpikeRecord` and the archive format's constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tbnn.core.deprecation import deprecated_attributes

__all__ = ["SPIKES_FORMAT_VERSION", "DEFAULT_DT_MS", "SpikeRecord"]


#: Version of the spike archive (``tbnn_spikes_version``); ``FORMAT_VERSION`` before (kept, deprecated).
SPIKES_FORMAT_VERSION = 1
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.spikes.SPIKES_FORMAT_VERSION",
                                                                  lambda: SPIKES_FORMAT_VERSION)})
#: Step duration assumed when an archive declares none.
DEFAULT_DT_MS = 1.0
RESERVED = ("layer_names", "labels", "predictions", "timesteps", "dt_ms", "tbnn_spikes_version")
SHAPES = {1: "[time]", 2: "[time, neurons]", 3: "[samples, time, neurons]"}


@dataclass
class SpikeRecord:
    """Contents of a spikes archive.

    Attributes
    ----------
    layers : dict[str, np.ndarray]
        Boolean spikes ``[samples, timesteps, neurons]`` per layer, in network order.
    labels, predictions : np.ndarray or None
        int64 ``[samples]``; None when the archive holds none.
    timesteps : int
        Time steps per sample.
    dt_ms : float
        Duration of one time step in milliseconds.
    extra : dict[str, np.ndarray]
        Any further arrays stored in the archive.
    path : Path or None
        Where the record was read from.
    dt_declared : bool
        False when the archive declares no ``dt_ms`` and :data:`DEFAULT_DT_MS` is used.
    """

    layers: dict[str, np.ndarray]
    labels: np.ndarray | None
    predictions: np.ndarray | None
    timesteps: int
    dt_ms: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None
    dt_declared: bool = True

    @property
    def samples(self) -> int:
        """Number of samples in the archive."""
        return int(next(iter(self.layers.values())).shape[0])

    @property
    def layer_names(self) -> list[str]:
        """Layer names in network order."""
        return list(self.layers)
