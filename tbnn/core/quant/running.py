r"""Statistics pooled over the samples of a batch, for grids and read-outs that do not depend
on the sample (kept as running statistics, as BatchNorm keeps its mean and variance; Ioffe &
Szegedy 2015, arXiv:1502.03167).

* :func:`block_scale`: the mean over samples and blocks of the block maximum of
  :math:`\mathrm{relu}(x)`, the scale of a rectifying grid that is the same for every sample.
* :func:`pooled_fit`: the ridge read-out of Ye et al. (arXiv:2409.09245, §3) fitted per block
  on the codes of *every* sample at once,

  .. math::

      a_b = \frac{\mathrm{Cov}_{n,i \in b}(q, t)}{\mathrm{Var}_{n,i \in b}(q) + \lambda},
      \qquad c_b = \bar t_b - a_b \bar q_b,

  with population moments over the samples :math:`n` and the features :math:`i` of block
  :math:`b`: one gain and one offset per block, so that no per-sample analog value is needed
  to read the spikes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.quant.blocks import to_blocks

__all__ = ["block_scale", "pooled_fit"]


def block_scale(x: Tensor, block: int | None) -> Tensor:
    """Mean over samples and blocks of each block's maximum of ``relu(x)`` (``x``: ``[B, F]``;
    a 0-d tensor, detached; at least ``1e-12``).

    >>> float(block_scale(torch.tensor([[1.0, 3.0, -1.0, 0.0], [2.0, 0.0, 5.0, 1.0]]), 2))
    2.5
    """
    xb, valid, _ = to_blocks(torch.relu(x.detach()), -1, block)
    top = torch.where(valid, xb, torch.zeros((), dtype=xb.dtype, device=xb.device)).amax(-1)
    return top.mean().clamp_min(1e-12)


def pooled_fit(t: Tensor, q: Tensor, block: int | None, lam: float) -> tuple[Tensor, Tensor]:
    r"""Per-block ridge read-out pooled over the samples: ``(gain, offset)``, each ``[nb]``.

    ``t`` (the target, e.g. ``relu(x)``) and ``q`` (the codes) are ``[B, F]``; gradients flow
    through every moment, as in the per-sample fit. A block whose codes are constant has
    gain 0 and outputs its mean.

    >>> q = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> g, c = pooled_fit(2 * q + 1, q, None, 0.0)
    >>> [round(float(g), 6), round(float(c), 6)]
    [2.0, 1.0]
    """
    tb, valid, n = to_blocks(t, -1, block)  # [B, nb, bs]
    qb, _, _ = to_blocks(q, -1, block)
    zero = torch.zeros((), dtype=tb.dtype, device=tb.device)
    tb, qb = torch.where(valid, tb, zero), torch.where(valid, qb, zero)
    count = n.to(tb.dtype) * tb.shape[0]  # [nb]
    tbar = tb.sum((0, 2)) / count
    qbar = qb.sum((0, 2)) / count
    dq = torch.where(valid, qb - qbar[:, None], zero)
    dt = torch.where(valid, tb - tbar[:, None], zero)
    cov = (dq * dt).sum((0, 2)) / count
    var = (dq * dq).sum((0, 2)) / count
    gain = cov / (var + lam) if lam > 0 else torch.where(var > 0, cov / var.clamp_min(1e-30), zero)
    return gain, tbar - gain * qbar
