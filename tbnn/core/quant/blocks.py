"""Blocks of ``B`` contiguous elements along the contracted axis (padded, with a validity mask).

A block never straddles two samples, so block statistics carry no batch dependence
(Ye et al., arXiv:2409.09245, §3, "SCQ128").
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["to_blocks", "from_blocks"]


# --------------------------------------------------------------------------------------
# blocks


def to_blocks(x: Tensor, dim: int, block: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Move ``dim`` last and cut it into blocks ``[..., nb, B]``, zero-padding a ragged tail.

    Returns the blocks, a boolean ``valid`` mask ``[nb, B]`` and the float counts ``n [nb]``.
    """
    x = x.movedim(dim, -1)
    k = x.shape[-1]
    size = max(1, k if block is None else min(block, k))  # an empty axis gives zero blocks
    nb = -(-k // size)
    pad = nb * size - k
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    xb = x.reshape(*x.shape[:-1], nb, size)
    valid = (torch.arange(nb * size, device=x.device) < k).reshape(nb, size)
    n = valid.sum(-1).to(xb.dtype)
    return xb, valid, n


def from_blocks(xb: Tensor, dim: int, k: int) -> Tensor:
    return xb.reshape(*xb.shape[:-2], -1)[..., :k].movedim(-1, dim)


def block_mean(t: Tensor, valid: Tensor, n: Tensor) -> Tensor:
    """Mean over the valid elements of each block, keeping the block axis: ``[..., nb, 1]``."""
    return (t * valid).sum(-1, keepdim=True) / n.unsqueeze(-1)
