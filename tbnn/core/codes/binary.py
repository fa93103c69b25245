r"""The binary code: an integrate-and-fire neuron with halving thresholds emits the bits of ``q``.

The membrane starts at the grid value :math:`r_0 = v \in [0, 1]` and

.. math::

    s_t = \mathbb{1}[r_{t-1} \ge 2^{-t}], \qquad r_t = r_{t-1} - 2^{-t} s_t,

so :math:`s_1 .. s_T` are the bits, most significant first, of the :math:`T`-bit code
:math:`q = \min(\lfloor 2^T v \rfloor, 2^T - 1)` and :math:`w_t = 2^{T-t}`. At :math:`T = k`
the neuron is exactly the k-bit DAT of Ye et al. (arXiv:2409.09245).

>>> from tbnn.core.codes import get_code
>>> get_code("binary").spikes_of(torch.tensor([13]), 4)[:, 0].int().tolist()
[1, 1, 0, 1]
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.codes.base import Code

__all__ = ["Binary"]


class Binary(Code):
    """The reference code of temporal binary networks (``scheme="binary"``)."""

    name = "binary"
    max_timesteps = 24  # codes below 2^24 are exact float32 integers

    def levels(self, timesteps: int) -> int:
        return 2**timesteps

    def grid_levels(self, timesteps: int) -> int:
        return 2**timesteps

    def step_weights(self, timesteps: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        t = torch.arange(1, timesteps + 1, dtype=dtype, device=device)
        return 2.0 ** (timesteps - t)

    def ste_levels(self, timesteps: int) -> tuple[float, float]:
        return float(2**timesteps), 0.5

    def spikes_of(self, code: Tensor, timesteps: int) -> Tensor:
        shifts = torch.arange(timesteps - 1, -1, -1, device=code.device).view(-1, *[1] * code.dim())
        return ((code.unsqueeze(0) >> shifts) & 1).bool()
