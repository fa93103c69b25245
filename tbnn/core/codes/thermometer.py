r"""The thermometer code: the first :math:`c` steps spike.

.. math::

    c = \min(\lfloor (T + 1) v \rfloor, T), \qquad s_t = \mathbb{1}[t \le c], \qquad w_t = 1 .

>>> from tbnn.core.codes import get_code
>>> get_code("thermometer").spikes_of(torch.tensor([2]), 4)[:, 0].int().tolist()
[1, 1, 0, 0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.codes.base import Code

__all__ = ["Thermometer"]


class Thermometer(Code):
    """Unary code, spikes first (``scheme="thermometer"``)."""

    name = "thermometer"

    def ste_levels(self, timesteps: int) -> tuple[float, float]:
        return float(timesteps + 1), 0.5

    def spikes_of(self, code: Tensor, timesteps: int) -> Tensor:
        t = torch.arange(1, timesteps + 1, device=code.device).view(-1, *[1] * code.dim())
        return t <= code.unsqueeze(0)
