r"""A layer's weight as integer codes with a per-channel affine: what the engine multiplies spikes with.

A tbnn layer's weight is quantized per output channel :math:`o` (the DAT of its training,
Ye et al., arXiv:2409.09245) to integer codes :math:`Q` with a gain and an offset,

.. math::

    \hat W_{o i} = \alpha_o Q_{o i} + \gamma_o ,

and :class:`WeightCodes` holds them with what the engine derives from them once per layer
(:mod:`tbnn.engine.integer` reads them; a simulation keeps one per layer).

>>> import tbnn
>>> wc = weight_codes(tbnn.TBLinear(6, 2))
>>> tuple(wc.q.shape), wc.qmax
((2, 6), 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from tbnn.core.quant import quantize

__all__ = ["EngineLayer", "WeightCodes", "abs_max", "per_channel_codes", "weight_codes"]


def abs_max(t: Tensor) -> float:
    """``max|t|`` in one pass (0 for an empty tensor).

    >>> abs_max(torch.tensor([1.0, -3.0, 2.0]))
    3.0
    """
    if not t.numel():
        return 0.0
    lo, hi = torch.aminmax(t.detach())
    return float(torch.maximum(-lo, hi))


class EngineLayer(Protocol):
    """What the engine needs of a layer (``tbnn.nn.layers.TBLayer`` provides it)."""

    weight: torch.nn.Parameter
    bias: torch.nn.Parameter | None
    weight_bits: float | None
    sparsity: str | float | None
    is_linear: bool

    def operator(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor: ...

    def quantize_weight_codes(self) -> tuple[Tensor, Tensor, Tensor]: ...


@dataclass
class WeightCodes:
    """A layer's weight as integer codes with a per-channel affine: ``W^ = alpha * Q + gamma``.

    ``w_hat`` is that weight in floats; ``ones`` an all-ones kernel with one output channel
    (its response is the same for every output channel: the rank-1 correction); ``exists``
    the 0/1 synapses that exist (a sparse layer's zero codes are pruned synapses; every
    weight of an affine grid exists, its code 0 included); ``qmax`` the largest ``|Q|``
    when the codes are integers (``inf`` for float weights); ``cache`` the block-dependent
    tensors derived from them (per dtype and input layout), made on first use.
    """

    q: Tensor
    alpha: Tensor
    gamma: Tensor
    w_hat: Tensor
    ones: Tensor
    exists: Tensor
    qmax: float = math.inf
    cache: dict = field(default_factory=dict, repr=False, compare=False)


def weight_codes(layer: EngineLayer) -> WeightCodes:
    """The layer's weight as :class:`WeightCodes` (no gradient).

    >>> import tbnn
    >>> wc = weight_codes(tbnn.TBLinear(6, 2))
    >>> sorted(set(wc.q.flatten().tolist())), wc.qmax
    ([0.0, 1.0], 1.0)
    """
    q, alpha, gamma = layer.quantize_weight_codes()
    shape = (-1, *[1] * (q.dim() - 1))
    w_hat = (alpha.view(shape) * q).add_(gamma.view(shape))  # alpha Q + gamma, one buffer
    qmax = abs_max(q) if q.numel() and torch.equal(q, torch.round(q)) else math.inf
    # every weight of a dense layer exists: ones as a view (fanout sums it), no weight-sized buffer
    exists = (q != 0).to(q.dtype) if layer.sparsity is not None else torch.ones((), dtype=q.dtype,
                                                                                   device=q.device).expand_as(q)
    ones = torch.ones(1, *q.shape[1:], dtype=q.dtype, device=q.device)
    return WeightCodes(q, alpha, gamma, w_hat, ones, exists, qmax)


def per_channel_codes(weight: Tensor, bits: float | None, **quant_kw: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``(Q, alpha, gamma)`` of a weight quantized per output channel (``bits=None``: float weights)."""
    w2 = weight.detach().reshape(weight.shape[0], -1)
    if bits is None:
        return weight.detach(), torch.ones_like(w2[:, 0]), torch.zeros_like(w2[:, 0])
    bc = quantize(w2, bits=bits, dim=-1, **quant_kw)
    if bc.q.shape[-2] != 1:
        raise ValueError("integer-code evaluation needs weights quantized per output channel (weight_block=None).")
    return bc.codes().reshape(weight.shape), bc.gain.reshape(-1), bc.offset.reshape(-1)
