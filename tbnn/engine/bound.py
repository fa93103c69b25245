"""A linear layer's step current by its bound one call, batch after batch.

A simulated batch asks the engine for each layer's current from the spikes the layer before
fired, packed 64 to a word as the session records them. The first batch goes the whole way
(:func:`tbnn.engine.integer.step_current`: the engine's choice, the packed weights, the
planes, the checks) and, where it ends in the one compiled call
(:class:`tbnn.kernels.current.LinearCall`) straight from those words, keeps that call with the
layer's weight codes (:func:`keep`). Every later batch whose code has the same scheme, steps,
features, block and types runs it at once (:func:`current`): the same call on the same
operands, so the same bits, without the dozen lookups and checks around it.

>>> import torch, tbnn
>>> from tbnn.engine import integer as engine
>>> from tbnn.kernels.packed import pack_bits
>>> layer = tbnn.TBLinear(64, 3).eval()
>>> code = tbnn.TemporalBinary(4).fire(torch.randn(2, 64))
>>> words = pack_bits(code.spikes.reshape(-1, 64), None).reshape(4, 2, -1)
>>> wc = engine.weight_codes(layer)
>>> first = engine.step_current(layer, code, wc, words)   # the whole way; the call kept
>>> torch.equal(engine.step_current(layer, code, wc, words), first)
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tbnn.core.coding import SpikeCode
from tbnn.engine.precision import engine_choice

__all__ = ["current", "keep"]


def _key(code: SpikeCode) -> tuple:
    """What the whole way's decisions depend on, besides the layer's weights (kept with them)."""
    return ("bound step call", code.scheme, code.timesteps, code.q.shape[-1], code.block_size(), code.q.dtype,
            code.gain.dtype, engine_choice())


def keep(cache: dict, code: SpikeCode, call: Any, engine: str) -> None:
    """Keep ``call`` (a bound :class:`tbnn.kernels.current.LinearCall`) and the ``engine`` label it
    runs under in a layer's weight-code ``cache``, for the codes like ``code``."""
    cache[_key(code)] = (call, engine)


def current(cache: dict, code: SpikeCode, words: Tensor | None) -> Tensor | None:
    """The current (float32 ``[*lead, O]``) of ``code``'s spikes packed as ``words``
    (``[T, M, words]``) by the call :func:`keep` kept in ``cache``, or ``None`` where none was
    kept for such codes, no words were packed, or the call declines this batch."""
    kept = cache.get(_key(code)) if words is not None and words.device.type == "cpu" else None
    if kept is None:
        return None
    call, engine = kept
    gain, offset, lead = code.gain, code.offset, code.q.shape[:-1]  # (no grad here: each view would cost a dispatch)
    x = words if words.dim() == 3 else words.reshape(code.timesteps, -1, words.shape[-1])
    cur = call(x, gain.detach() if gain.requires_grad else gain, offset.detach() if offset.requires_grad else offset)
    if cur is None:
        return None
    cache["engine"] = engine  # as the whole way sets it (the eval forward may have run between)
    return cur if len(lead) == 1 else cur.reshape(*lead, cur.shape[-1])
