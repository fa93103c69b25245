r"""The sigma-delta code: integrate-and-fire with constant drive :math:`v` and threshold 1.

.. math::

    r_t = r_{t-1} + v - s_t, \qquad s_t = \mathbb{1}[r_{t-1} + v \ge 1], \qquad r_0 = 0,
    \qquad w_t = 1,

a first-order sigma-delta modulator (reset by subtraction): :math:`q = \lfloor T v \rfloor`
up to the rounding of the running sum. The spikes come from :func:`tbnn.core.firing.integrate_and_fire`.

>>> from tbnn.core.codes import get_code
>>> get_code("sigma_delta").draw(torch.tensor([0.5]), 4)[:, 0].int().tolist()
[0, 1, 0, 1]
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.firing import integrate_and_fire
from tbnn.core.codes.base import Code

__all__ = ["SigmaDelta"]


class SigmaDelta(Code):
    """First-order sigma-delta (``scheme="sigma_delta"``)."""

    name = "sigma_delta"
    deterministic = False

    def draw(self, v: Tensor, timesteps: int, generator: torch.Generator | None = None) -> Tensor:
        return integrate_and_fire(torch.zeros_like(v), [1.0] * timesteps, drive=v)
