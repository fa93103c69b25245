r"""The ridge read-out of the denoising affine transform (Ye et al., arXiv:2409.09245, §3).

.. math::

    g(q) = \frac{\mathrm{Cov}(x, q)}{\mathrm{Var}(q) + \lambda}\,(q - \bar q) + \bar x

with population statistics per block; the linear form is
:math:`g(q) = \langle q, x\rangle / (\langle q, q\rangle + \lambda)\, q`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.quant.blocks import block_mean, from_blocks, to_blocks
from tbnn.core.quant.spec import check_common, check_finite
from tbnn.core.validate import compute_in_float32

__all__ = ["ridge_fit", "ridge_dequantize"]


# --------------------------------------------------------------------------------------
# ridge dequantizer


def ridge_fit(
    x: Tensor, q: Tensor, valid: Tensor, n: Tensor, lam: float, affine: bool = True
) -> tuple[Tensor, Tensor]:
    """Closed-form ridge regression of ``x`` on ``q`` within each block (last axis).

    Solves ``min_{s,b} 1/(2N) ||s q + b - x||^2 + (lam/2) s^2`` (``b = 0`` for the linear
    form) and returns ``(gain, offset)`` of shape ``[..., nb, 1]`` with ``g(q) = gain*q +
    offset``::

        gain = Cov(x, q) / (Var(q) + lam),  offset = mean(x) - gain * mean(q)   (affine)
        gain = mean(q x) / (mean(q^2) + lam), offset = 0                        (linear)

    Statistics are population moments (divide by N) over the ``valid`` elements. A block
    with ``Var(q) + lam == 0`` (all codes equal, ``lam = 0``) gets ``gain = 0``: its output
    is ``mean(x)``, never NaN. Ye et al. (2024), arXiv:2409.09245, Eq. (ridge DAT).
    """
    if affine:
        qbar = block_mean(q, valid, n)
        xbar = block_mean(x, valid, n)
        qc = torch.where(valid, q - qbar, torch.zeros((), dtype=q.dtype, device=q.device))
        cov = block_mean(qc * x, valid, n)
        den = block_mean(qc * qc, valid, n) + lam
    else:
        cov = block_mean(q * x, valid, n)
        den = block_mean(q * q, valid, n) + lam
    ok = den > 0
    gain = torch.where(ok, cov / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    offset = xbar - gain * qbar if affine else torch.zeros_like(gain)
    return gain, offset


@compute_in_float32
def ridge_dequantize(
    x: Tensor,
    q: Tensor,
    lam: float = 0.01,
    dim: int = -1,
    affine: bool = True,
    block: int | None = None,
) -> Tensor:
    """Ridge dequantizer ``g(q)``: the least-squares affine (or linear) read-out of ``x`` from ``q``.

    ``g(q) = Cov(x,q)/(Var(q)+lam) * (q - mean q) + mean x`` along ``dim`` (population
    statistics), or ``mean(q x)/(mean(q^2)+lam) * q`` when ``affine=False``; over blocks of
    ``block`` elements when given (``None``: the whole axis). Differentiable in ``x`` and
    ``q`` through every statistic (Ye et al. 2024, arXiv:2409.09245, §3).

    ``lam -> 0`` with two distinct codes returns the two conditional means of ``x``;
    ``lam -> inf`` returns ``mean(x)`` (affine) or 0 (linear).
    """
    check_common(lam, block, "dat", None)
    check_finite(x, "x")
    check_finite(q, "q")
    if x.shape != q.shape:
        raise ValueError(f"q must have the shape of x {tuple(x.shape)}; got {tuple(q.shape)}.")
    dim = check_dim(x, dim)
    xb, valid, n = to_blocks(x, dim, block)
    qb, _, _ = to_blocks(q, dim, block)
    gain, offset = ridge_fit(xb, qb, valid, n, lam, affine)
    return from_blocks(gain * qb + offset, dim, x.shape[dim])


def check_dim(x: Tensor, dim: int) -> int:
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension; got a scalar.")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must lie in [{-x.dim()}, {x.dim() - 1}] for x of rank {x.dim()}; got {dim}.")
    return dim % x.dim()
