r"""The latency (time-to-first-spike) code: one spike, earlier for larger values.

.. math::

    c = \min(\lfloor (T + 1) v \rfloor, T), \qquad s_t = \mathbb{1}[t = T + 1 - c]
    \ (\text{none when } c = 0), \qquad w_t = T + 1 - t .

>>> from tbnn.core.codes import get_code
>>> get_code("latency").spikes_of(torch.tensor([3, 0]), 4).int().T.tolist()
[[0, 1, 0, 0], [0, 0, 0, 0]]
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.codes.base import Code

__all__ = ["Latency"]


class Latency(Code):
    """Time-to-first-spike code (``scheme="latency"``)."""

    name = "latency"

    def step_weights(self, timesteps: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        return timesteps + 1 - torch.arange(1, timesteps + 1, dtype=dtype, device=device)

    def partial_weights(self, steps: int, timesteps: int, dtype: torch.dtype, device=None) -> Tensor:
        # a spike at step t still means the value T + 1 - t: the weights of the full code
        return self.step_weights(timesteps, dtype, device)[:steps]

    def readout_scale(self, steps: int, timesteps: int) -> float:
        return float(timesteps)

    def ste_levels(self, timesteps: int) -> tuple[float, float]:
        return float(timesteps + 1), 0.5

    def spikes_of(self, code: Tensor, timesteps: int) -> Tensor:
        t = torch.arange(1, timesteps + 1, device=code.device).view(-1, *[1] * code.dim())
        c = code.unsqueeze(0)
        return (t == timesteps + 1 - c) & (c > 0)
