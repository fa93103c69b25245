"""Grid maps onto integer codes, ``q = u + sg(round_clip(u) - u)``, and the per-block affine
read-out record :class:`BlockCodes` (``x^ = gain * q + offset``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tbnn.core.quant.blocks import block_mean, from_blocks
from tbnn.core.quant.spec import TINY

__all__ = ["BlockCodes", "affine_codes", "dequantize", "grid_range"]


# --------------------------------------------------------------------------------------
# quantization


@dataclass
class BlockCodes:
    """A quantized tensor as integer codes and a per-block affine read-out.

    ``x^ = gain * q + offset`` on blocks ``[..., nb, B]`` of the axis ``dim`` (moved last).
    ``q`` holds integer values and carries the straight-through residual gradient.
    """

    q: Tensor
    gain: Tensor
    offset: Tensor
    valid: Tensor
    n: Tensor
    dim: int
    length: int

    def dequantize(self) -> Tensor:
        """The dequantized tensor, shaped like the input."""
        return from_blocks(self.gain * self.q + self.offset, self.dim, self.length)

    def codes(self) -> Tensor:
        """The integer codes, shaped like the input (detached)."""
        return from_blocks(self.q.detach(), self.dim, self.length)


def grid_range(xb: Tensor, valid: Tensor, n: Tensor, grid: str, levels: int) -> tuple[Tensor, Tensor]:
    """Detached ``(lo, hi)`` of the affine grid for each block (``[..., nb, 1]``).

    ``minmax``: block min and max; ``meanstd``: mean ± c·std with ``c = 1`` for 1 bit and 2
    otherwise (the 1-bit threshold is then the block mean); ``rectify``: ``0`` and the block
    maximum (clipped at a tiny positive value); ``unit``: ``0`` and ``1``.
    """
    xb = xb.detach()
    if grid == "unit":
        hi = torch.ones_like(xb[..., :1])
        return torch.zeros_like(hi), hi
    if grid == "minmax":
        lo = torch.where(valid, xb, torch.full_like(xb, float("inf"))).amin(-1, keepdim=True)
        hi = torch.where(valid, xb, torch.full_like(xb, float("-inf"))).amax(-1, keepdim=True)
    elif grid == "meanstd":
        mu = block_mean(xb, valid, n)
        sd = block_mean(torch.where(valid, xb - mu, torch.zeros_like(xb)) ** 2, valid, n).sqrt()
        c = 1.0 if levels == 2 else 2.0
        lo, hi = mu - c * sd, mu + c * sd
    else:  # rectify
        hi = torch.where(valid, xb, torch.full_like(xb, float("-inf"))).amax(-1, keepdim=True)
        hi = hi.clamp_min(TINY)
        lo = torch.zeros_like(hi)
    hi = torch.where(hi > lo, hi, lo + 1.0)  # a constant block: every code 0, never 0/0
    return lo, hi


def affine_codes(xb: Tensor, lo: Tensor, hi: Tensor, levels: int, clip_grad: bool = False) -> Tensor:
    """``q = u + sg(code - u)`` on the affine grid, ``code = min(floor(L v), L - 1)``.

    ``v = clip((x - lo)/(hi - lo), 0, 1)`` and ``u = L (x - lo)/(hi - lo) - 1/2`` is the
    continuous grid coordinate whose gradient passes through (clipped to the grid when
    ``clip_grad``, the hardtanh STE). With ``L = 2^T`` and ``lo = 0`` these codes are
    exactly the bits, most significant first, of an integrate-and-fire neuron with
    halving thresholds started at ``v``.
    """
    span = hi - lo
    v = ((xb - lo) / span).clamp(0.0, 1.0)
    code = torch.floor(v.detach() * levels).clamp_max(levels - 1)
    u = (xb - lo) / span * levels - 0.5
    if clip_grad:
        u = u.clamp(-0.5, levels - 0.5)
    return u + (code - u).detach()


def dequantize(codes: BlockCodes) -> Tensor:
    """Map :class:`BlockCodes` back to real values: ``gain * q + offset`` per block."""
    return codes.dequantize()
