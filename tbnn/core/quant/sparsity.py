"""Sparsification as quantization that zeroes small values: M:N masks and magnitude masks."""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.quant.blocks import from_blocks, to_blocks
from tbnn.core.validate import check_int

__all__ = ["nm_mask", "magnitude_mask"]


# --------------------------------------------------------------------------------------
# sparsity masks


def nm_mask(x: Tensor, keep: int, group: int, dim: int = -1) -> Tensor:
    """Boolean mask keeping the ``keep`` largest-magnitude of every ``group`` consecutive elements.

    Groups run along ``dim``; a ragged last group keeps ``min(keep, its length)``.
    (Structured M:N sparsity, e.g. NVIDIA 2:4; Mishra et al. 2021, arXiv:2104.08378.)
    """
    group, keep = check_int(group, "group"), check_int(keep, "keep")
    if keep > group:
        raise ValueError(f"keep must not exceed group ({group}); got {keep}.")
    xb, valid, _ = to_blocks(x.detach().abs(), dim, group)
    score = torch.where(valid, xb, torch.full_like(xb, -1.0))
    idx = score.topk(min(keep, score.shape[-1]), dim=-1).indices
    mask = torch.zeros_like(valid.expand_as(xb)).scatter(-1, idx, True) & valid
    return from_blocks(mask, dim, x.shape[dim])


def magnitude_mask(x: Tensor, fraction: float, valid: Tensor) -> Tensor:
    """Mask (on blocks ``[..., nb, B]``) that zeroes the ``fraction`` smallest magnitudes per block."""
    a = x.detach().abs()
    n = valid.sum(-1, keepdim=True)
    drop = torch.floor(fraction * n)
    rank = torch.where(valid, a, torch.full_like(a, float("inf"))).argsort(-1).argsort(-1)
    return (rank >= drop) & valid
