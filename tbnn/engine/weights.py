r"""A layer's weight as integer codes with a per-channel affine: what the engine multiplies spikes with.

A tbnn layer's weight is quantized per output channel :math:`o` (the DAT of its training,
Ye et al., arXiv:2409.09245) to integer codes :math:`Q` with a gain and an offset,

.. math::

    \hat W_{o i} = \alpha_o Q_{o i} + \gamma_o ,

and :class:`WeightCodes` holds them with what the engine derives from them once per layer
(:mod:`tbnn.engine.integer` reads them; a simulation keeps one per layer).

Quantizing a weight to codes (the DAT's per-row fit) and packing them is most of a
``simulate`` call's set-up. :func:`cached_weight_codes` keeps a layer's codes between calls
and reuses them only while the layer's weight is the same **bit for bit** (compared by
content, never by a version counter or a name) and its quantizer settings
(``weight_codes_key``) are the same; anything else quantizes afresh. The cost of a hit is one
comparison of the weight and bias with kept copies. The memory: per layer, a copy of its
weight and bias beside its codes (themselves about two weights' worth), held until the layer
is freed or :func:`clear_weight_codes` is called.

>>> import tbnn
>>> wc = weight_codes(tbnn.TBLinear(6, 2))
>>> tuple(wc.q.shape), wc.qmax
((2, 6), 1.0)
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from tbnn.core.coding import SpikeCode, step_weights
from tbnn.core.quant import quantize

__all__ = ["EngineLayer", "WeightCodes", "abs_max", "cached_weight_codes", "clear_weight_codes", "noting_weight_codes",
           "per_channel_codes", "term_dtype", "weight_codes"]


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

    # optional: ``weight_codes_key()``, a hashable of every setting besides the weight and bias
    # that ``quantize_weight_codes`` and ``operator`` read; a layer without it is quantized afresh
    # on every call.


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


#: layer -> (settings key, a bit-exact copy of its weight, its codes); entries go with their layer
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: the integer type of each element size: a tensor's bits compared as integers of its own width
#: (torch.equal on int32 is about 3x faster than on the same bytes as uint8)
_SAME_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: Tensor) -> Tensor:
    """``t``'s bits as integers (NaN, -0.0 and +0.0 told apart, as the quantizer may tell them)."""
    flat = t.detach().contiguous().reshape(-1)
    return flat.view(_SAME_WIDTH.get(flat.element_size(), torch.uint8))


def cached_weight_codes(layer: EngineLayer) -> WeightCodes:
    """:func:`weight_codes`, kept with the layer while its weight is bit-for-bit unchanged.

    The same :class:`WeightCodes` object comes back (with what the engine derived from it, such
    as the packed weight planes and the offsets' response, which holds the bias) only when the
    layer's ``weight_codes_key()`` is equal and its weight and bias have the same dtype, device,
    shape and bytes as when the codes were made; an in-place edit, a new ``load_state_dict``,
    an optimizer step or a changed ``lam`` quantizes afresh.
    A layer without ``weight_codes_key`` is never kept.

    >>> import tbnn
    >>> layer = tbnn.TBLinear(6, 2)
    >>> cached_weight_codes(layer) is cached_weight_codes(layer)
    True
    >>> with torch.no_grad():
    ...     _ = layer.weight.mul_(-1)
    >>> wc = cached_weight_codes(layer)
    >>> wc is cached_weight_codes(layer), torch.equal(wc.q, weight_codes(layer).q)
    (True, True)
    """
    settings = getattr(layer, "weight_codes_key", None)
    if settings is None:
        return weight_codes(layer)
    # the engine also keeps terms made with the bias (the offsets' response): it is compared too
    held = [t.detach() for t in (layer.weight, layer.bias) if t is not None]
    key = (settings(), layer.bias is None, *((t.dtype, t.device, tuple(t.shape)) for t in held))
    kept = _KEPT.get(layer)
    if kept is not None and kept[0] == key and all(torch.equal(k, _bits(t)) for k, t in zip(kept[1], held)):
        wc = kept[2]
    else:
        wc = weight_codes(layer)
        _KEPT[layer] = (key, [_bits(t).clone() for t in held], wc)
    noted = _NOTED.get()
    if noted is not None:
        noted[id(layer)] = wc
    return wc


#: the codes :func:`cached_weight_codes` handed out inside :func:`noting_weight_codes`, by layer id
_NOTED: ContextVar[dict | None] = ContextVar("tbnn_noted_weight_codes", default=None)


@contextlib.contextmanager
def noting_weight_codes() -> Iterator[dict[int, WeightCodes]]:
    """Collect, by ``id`` of the layer, the codes :func:`cached_weight_codes` hands out (checked by
    content) inside the block: a simulation's first eval forward checks every layer's codes, and
    the simulated passes that follow it use those instead of checking again.

    >>> import tbnn
    >>> layer = tbnn.TBLinear(6, 2)
    >>> with noting_weight_codes() as noted:
    ...     wc = cached_weight_codes(layer)
    >>> noted[id(layer)] is wc
    True
    """
    noted: dict[int, WeightCodes] = {}
    token = _NOTED.set(noted)
    try:
        yield noted
    finally:
        _NOTED.reset(token)


def clear_weight_codes() -> None:
    """Forget every kept :func:`cached_weight_codes` entry (their memory is freed with them)."""
    _KEPT.clear()


def per_channel_codes(weight: Tensor, bits: float | None, **quant_kw: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``(Q, alpha, gamma)`` of a weight quantized per output channel (``bits=None``: float weights)."""
    w2 = weight.detach().reshape(weight.shape[0], -1)
    if bits is None:
        return weight.detach(), torch.ones_like(w2[:, 0]), torch.zeros_like(w2[:, 0])
    bc = quantize(w2, bits=bits, dim=-1, **quant_kw)
    if bc.q.shape[-2] != 1:
        raise ValueError("integer-code evaluation needs weights quantized per output channel (weight_block=None).")
    return bc.codes().reshape(weight.shape), bc.gain.reshape(-1), bc.offset.reshape(-1)


@functools.cache
def _weight_sum(scheme: str, timesteps: int) -> float:
    """``sum_t |w_t|``: the largest code the spikes of a scheme can make."""
    return float(step_weights(scheme, timesteps, torch.float64).abs().sum())


def term_dtype(code: SpikeCode, wc: WeightCodes, code_max: float | None = None) -> torch.dtype:
    """The dtype that holds every integer term, and its sums over the ``T`` steps, exactly.

    A term sums at most ``per = min(block, fan-in)`` products ``|Q| |q|`` per output, and
    the step engine adds the terms of the steps with weights ``w_t``; float32 holds integers
    exactly below ``2^24``, so it is used when
    ``max(max|Q|, 1) * per * max(sum|w_t|, max|q|) < 2^24``; else float64. ``code_max``:
    ``max|q|`` when the caller has it.
    """
    per = min(code.block_size(), wc.q[0].numel())
    code_max = abs_max(code.q) if code_max is None else code_max
    qmax = max(_weight_sum(code.scheme, code.timesteps), code_max)
    return torch.float32 if max(wc.qmax, 1.0) * per * qmax < 2**24 else torch.float64
