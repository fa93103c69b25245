r"""The rate code: Bernoulli spikes with probability :math:`v` per step, :math:`w_t = 1`.

.. math::

    s_t \sim \mathrm{Bernoulli}(v), \qquad q = \sum_t s_t .

Seeded through a ``torch.Generator`` (``encode(..., seed=...)``); the spikes are stored
with the code.

>>> from tbnn.core.codes import get_code
>>> g = torch.Generator().manual_seed(0)
>>> get_code("rate").draw(torch.tensor([0.0, 1.0]), 3, g).int().T.tolist()
[[0, 0, 0], [1, 1, 1]]
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.codes.base import Code

__all__ = ["Rate"]


class Rate(Code):
    """Bernoulli rate code (``scheme="rate"``)."""

    name = "rate"
    deterministic = False

    def draw(self, v: Tensor, timesteps: int, generator: torch.Generator | None = None) -> Tensor:
        vv = v.unsqueeze(0).expand(timesteps, *v.shape)
        return torch.rand(vv.shape, generator=generator, device=v.device, dtype=v.dtype) < vv
