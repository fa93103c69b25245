"""Receptive fields of a convolution, once per read-out block: the rows the packed engine counts.

A convolution's read-out blocks cut the flat input ``[C * spatial]`` into runs of ``block``
features, and a receptive field may span several; the DAT's per-block terms ``N_b`` of an
output position are the convolution of the input with every feature outside block ``b``
cleared. :func:`receptive_fields` lays each field out once per block (features outside the
block cleared), so that one AND + popcount row per output position gives every ``N_b``
(:func:`tbnn.engine.integer.step_current`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tbnn.core.coding import SpikeCode
from tbnn.engine.weights import EngineLayer

__all__ = ["conv_geometry", "receptive_fields"]


def conv_geometry(layer: EngineLayer, code: SpikeCode) -> tuple[tuple[int, ...], tuple[int, ...],
                                                                  tuple[int, ...]] | None:
    """``(kernel_size, stride, padding)`` of a convolution the packed engine runs (zero padding given
    as integers, one group, no dilation; its input's shape known), else ``None``."""
    ks, st, pad = (getattr(layer, a, None) for a in ("kernel_size", "stride", "padding"))
    if code.shape is None or ks is None or st is None or isinstance(pad, str) or pad is None:
        return None
    if getattr(layer, "groups", 1) != 1 or any(d != 1 for d in getattr(layer, "dilation", (1,))):
        return None
    ks, st, pad = (tuple(int(v) for v in (t if isinstance(t, tuple) else (t,))) for t in (ks, st, pad))
    nd = len(code.shape) - 2  # [B, C, *spatial]
    return (ks, st, pad) if nd in (1, 2) and len(ks) == len(st) == len(pad) == nd else None


def receptive_fields(bits: Tensor, code: SpikeCode, geometry: tuple, nb: int) -> tuple[Tensor, tuple[int, ...]]:
    """The receptive fields of 0/1 planes ``bits`` ``[J, M, F]`` through a convolution, once per
    read-out block with the features outside the block cleared: bool ``[J, M * L, nb * C * K]``
    (``L`` output positions; block ``b``'s copy of a field at ``b * C * K``), and the output's
    spatial shape. The same fields the convolution's sliding window sums (zero padding)."""
    ks, st, pad = geometry
    j, m, f = bits.shape
    masks = code.block_masks(torch.bool)  # [nb, F]
    x = (bits.unsqueeze(1) & masks.view(1, nb, 1, f)).reshape(j * nb * m, *code.shape[1:])  # [J nb M, C, *sp]
    x = F.pad(x, [p for q in reversed(pad) for p in (q, q)])
    for d, (k, s_) in enumerate(zip(ks, st)):
        x = x.unfold(2 + d, k, s_)  # [.., C, *out, *k]
    nd = len(ks)
    out = tuple(x.shape[2:2 + nd])
    c = x.shape[1]
    # [J, nb, M, C, *out, *k] -> [J, M, *out, nb, C, *k]
    x = x.reshape(j, nb, m, c, *out, *ks)
    order = [0, 2, *range(4, 4 + nd), 1, 3, *range(4 + nd, 4 + 2 * nd)]
    return x.permute(*order).reshape(j, -1, nb * c * math.prod(ks)), out
