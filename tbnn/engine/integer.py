r"""The exact integer-code engine: how a tbnn layer turns spikes into input current.

A layer's weight is held as integer codes :math:`Q` with a per-output-channel affine
:math:`\hat W = \alpha Q + \gamma` (the DAT of its training), and its input as a spike code
read out per block :math:`b` as :math:`\hat x = a_b q + c_b` (Ye et al., arXiv:2409.09245).
With :math:`m_b` the 0/1 mask of block :math:`b`, :math:`L_Q` the layer's operator (matmul
or convolution) with the codes and :math:`L_1` with an all-ones kernel, the input current
is the matmul shortcut of the paper,

.. math::

    I = \sum_b a_b\,(\alpha N_b + \gamma S_b) + c_b\,(\alpha L_Q(m_b) + \gamma L_1(m_b)) + \text{bias},
    \qquad N_b = L_Q(q\,m_b),\quad S_b = L_1(q\,m_b).

:math:`N_b` and :math:`S_b` are sums of integer products, so they are *exact* in a
floating type that holds them (float32 below :math:`2^{24}`), and because a spike code is
linear in its spikes, :math:`q = \sum_t w_t s_t`, they can be accumulated step by step from
the spikes that occurred (:func:`step_current`, the event-driven simulator) or computed
once from the code (:func:`exact`, the eval forward pass and the time-folded simulator):
the integers are the same, so the currents are equal bit for bit.

Arithmetic type: the integer products run in a type that is exact for them. float32 is
always exact here (sums below :math:`2^{24}`); int8 (``torch._int_mm``, int32 sums; CPU) is
exact when every code and input lies within :math:`\pm 127`; bfloat16 is exact when every
partial sum is an integer of magnitude :math:`\le 256`. The low-precision types are chosen
from the CPU's features, the same in every process (int8 where it has int8 dot-product
units: AVX-512 VNNI, AVX-VNNI or AMX-INT8; bfloat16 where it has bf16 units: AVX-512 BF16
or AMX-BF16; CPUs without them run these types several times slower than float32), unless
the user ran :func:`calibrate`, which times the types and stores its order with the CPU's
name and the versions; that order is then used on the same CPU and versions.
:func:`arithmetic` reports the choice and why; ``TBNN_MATMUL_DTYPE`` (``auto``,
``float32``, ``bfloat16``, ``int8``) or :func:`set_matmul_dtype` overrides it.

Packed engine: for layers with integer weight codes on a CPU, the same ``N_b`` and ``S_b``
come from bit planes packed 64 per word by AND + popcount (:mod:`tbnn.kernels`, compiled), as
int32 (a convolution's receptive fields once per read-out block, :mod:`tbnn.engine.receptive`).
With float32 gains the kernel adds ``sum_b a_b N_b`` in :func:`combine`'s block order (each
exact product and each sum rounded once); for linear layers it writes the current,
``float32(rest + alpha sum_b a_b N_b)``, the rest added in :func:`combine`'s one order
(:func:`tbnn.kernels.packed.rest_reference`), its operands made in the same call
(:mod:`tbnn.kernels.current`; each checked once per process). It runs where the kernel is
available (``auto``); ``TBNN_ENGINE`` (``auto``, ``packed``, ``dense``) or :func:`set_engine`
forces one; :func:`engine_path` says which ran.

Layers (``tbnn.nn.layers``) call :func:`exact` in eval mode; the simulator calls
:func:`step_current`; :func:`fanout` counts each input's synapses for the synaptic-operation
counts.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tbnn.core.coding import SpikeCode, step_weights
from tbnn.engine.precision import (
    ENGINES,
    MATMUL_DTYPES,
    arithmetic,
    arithmetic_available,
    calibrate,
    calibration_path,
    engine_choice,
    int8_product,
    product_type,
    set_engine,
    set_matmul_dtype,
    stored_calibration,
)
from tbnn.engine import bound
from tbnn.engine.receptive import conv_geometry, receptive_fields
from tbnn.engine.synapses import conv_fanout, fanout, spike_sums
from tbnn.engine.weights import (
    EngineLayer,
    WeightCodes,
    abs_max,
    cached_weight_codes,
    clear_weight_codes,
    per_channel_codes,
    term_dtype,
    weight_codes,
)
from tbnn.kernels import neuron as kernel_neuron
from tbnn.kernels.current import LinearCall, lhs_reference
from tbnn.kernels import packed as kernels

__all__ = ["WeightCodes", "EngineLayer", "weight_codes", "cached_weight_codes", "clear_weight_codes",
    "per_channel_codes", "term_dtype", "integer_terms", "combine", "exact", "step_current", "step_terms",
    "fanout", "spike_sums", "conv_fanout", "arithmetic", "set_matmul_dtype", "arithmetic_available",
    "MATMUL_DTYPES", "ENGINES", "set_engine", "engine_choice", "engine_path", "packed_kernel", "calibrate",
    "calibration_path", "stored_calibration"]



# --------------------------------------------------------------------------------------
# integer terms


def _blocked_codes(wc: WeightCodes, code: SpikeCode, dtype: torch.dtype) -> Tensor:
    """Linear layers: the codes as ``[nb, bs, out + 1]`` blocks along the input (tail zero-padded),
    with a last column of ones, whose product is the row sum ``S_b``."""
    f, bs = code.q.shape[-1], code.block_size()
    key = ("blocked", f, bs, dtype)
    if key not in wc.cache:
        nb = -(-f // bs)
        qt = wc.q.reshape(wc.q.shape[0], -1).t()
        qt = torch.cat([qt, torch.ones_like(qt[:, :1])], 1).to(dtype)
        wc.cache[key] = F.pad(qt, (0, 0, 0, nb * bs - f)).reshape(nb, bs, -1).contiguous()
    return wc.cache[key]


def _block_products(q: Tensor, codes: Tensor, dtype: torch.dtype) -> Tensor:
    """``[M, nb, bs] x [nb, bs, k] -> [nb, M, k]`` per block: exact integers in ``dtype``, or in
    int32 from int8 operands when ``dtype`` is float32 (every sum then lies below :math:`2^{24}`).

    int8 operands go through the int8 product with int32 sums, one per block (it is 2-D);
    the others through one batched product.
    """
    if codes.dtype != torch.int8:
        return torch.bmm(q.transpose(0, 1), codes).to(dtype)
    n = torch.empty(codes.shape[0], q.shape[0], codes.shape[-1], dtype=torch.int32, device=q.device)
    for b in range(codes.shape[0]):
        int8_product(q[:, b], codes[b], out=n[b])
    return n if dtype == torch.float32 else n.to(dtype)


def _packed_weights(layer: EngineLayer, code: SpikeCode, wc: WeightCodes, device: torch.device):
    """The packed weight planes for the packed engine and the implementation to run, or ``None``
    (dense products); the decision is kept in ``wc.cache["engine"]`` (:func:`engine_path`)."""
    choice = engine_choice()
    if choice == "dense":
        wc.cache["engine"] = "dense (forced)"
        return None, None
    why = ("not on a CPU" if device.type != "cpu" else "float weights" if not math.isfinite(wc.qmax) else None)
    if not layer.is_linear and why is None:  # a convolution runs only compiled, with float32 gains
        why = ("a convolution with string padding, groups or dilation" if conv_geometry(layer, code) is None
               else "a convolution whose read-out gains are not float32" if code.gain.dtype != torch.float32
               else None)
    if why is None and (choice == "auto" or not layer.is_linear) and kernels.kernel() is None:
        why = "no compiled kernel"
    if why is not None:
        _runs_dense(wc, why)
        return None, None
    key = ("packed", code.q.shape[-1], code.block_size())
    if key not in wc.cache:
        if layer.is_linear:
            wc.cache[key] = kernels.pack_weights(wc.q.reshape(wc.q.shape[0], -1), code.block_size())
        else:  # a convolution: the kernel's codes once per read-out block, each block one patch long
            nb = -(-code.q.shape[-1] // code.block_size())
            patch = wc.q.reshape(wc.q.shape[0], -1)
            wc.cache[key] = kernels.pack_weights(patch.repeat(1, nb), patch.shape[1])
    impl = "c" if kernels.kernel() is not None else "torch"
    wc.cache["engine"] = f"packed ({kernels.kernel_path()})" if impl == "c" else "packed (torch reference)"
    return wc.cache[key], impl


def packed_kernel() -> str | None:
    """The packed kernel's dispatch path (built now if needed), or ``None`` when it does not run
    (no compiler, or the engine forced ``dense``); call it before timing a run: it also runs the
    compiled neuron's once-per-process checks (:func:`tbnn.kernels.neuron.ready`)."""
    if engine_choice() == "dense":
        return None
    path = kernels.kernel_path()
    kernel_neuron.ready()
    return path


def engine_path(wc: WeightCodes) -> str:
    """Which engine the layer of ``wc`` last ran: ``packed (<cpu path>)``, ``packed (torch reference)``
    or ``dense (<why>)``; ``unused`` before its first current."""
    return wc.cache.get("engine", "unused")


def _packed_planes(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes, weights: list | None,
                   words: Tensor | None = None):
    """``(pw, impl, planes, lead)`` of the packed engine for input ``q``, or ``None`` where it does not
    run. ``weights``: ``q`` is spikes ``[T, ..., F]`` with these step weights; ``words``: those spikes
    already packed as one block (``[T, M, words]``), used where ``pw``'s blocks lay them out alike.
    Raises ``ValueError`` for an input it cannot pack (not non-negative integers). A linear layer's
    rows; a convolution runs packed in :func:`_packed_conv_current` or not at all."""
    if not layer.is_linear:  # refused or failed there (and said why), or not asked: steps not integers
        if not wc.cache.get("engine", "").startswith("dense ("):
            _runs_dense(wc, "a convolution's spike steps with non-integer weights")
        return None
    pw, impl = _packed_weights(layer, code, wc, q.device)
    if pw is None:
        return None
    f = q.shape[-1]
    lead = q.shape[1:-1] if weights is not None else q.shape[:-1]
    if weights is not None and words is not None and impl == "c" and kernels.same_words(pw.block, f):
        planes = kernels.Planes(None, tuple(int(w) for w in weights), words.reshape(q.shape[0], -1, words.shape[-1]),
                                pw.block, f)
    elif weights is not None:
        planes = kernels.step_planes(q.reshape(q.shape[0], -1, f), weights)
    else:
        qf = q.detach().reshape(-1, f)
        planes = kernels.code_planes(qf, pw.block) if impl == "c" else kernels.bit_planes(qf)
    return pw, impl, planes, lead


def _runs_dense(wc: WeightCodes, why: str) -> None:
    """The packed engine does not run this layer, for ``why``: refused when it was forced
    (``TBNN_ENGINE=packed``), else the dense engine runs and :func:`engine_path` says why."""
    if engine_choice() == "packed":
        raise ValueError(f"TBNN_ENGINE=packed cannot run this layer ({why}); use auto or dense.")
    wc.cache["engine"] = f"dense ({why})"


def _packed_failed(wc: WeightCodes, err: ValueError) -> None:
    """An input the packed engine cannot take: refused when it was forced, else the dense engine runs."""
    if engine_choice() == "packed":
        raise err
    wc.cache["engine"] = "dense (input not non-negative integers, or sums beyond int32)"


def _packed_conv_current(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes,
                         weights: list | None) -> Tensor | None:
    """A convolution's current by the packed engine, or ``None`` where it does not run: each output
    position's receptive field once per read-out block (:mod:`tbnn.engine.receptive`), counted by
    AND + popcount with ``sum_b a_b N_b`` fused in, then :func:`combine`'s steps. ``q``: spikes
    ``[T, M, F]`` with step ``weights``, or the integer code ``[M, F]`` (its binary digits). The
    terms are the dense engine's integers, so the current is its bits."""
    try:
        pw, _ = _packed_weights(layer, code, wc, q.device)  # compiled, where it runs (else it says why)
        if pw is None:
            return None
        if weights is not None:
            bits, coefs = (q if q.dtype == torch.bool else q != 0), tuple(int(w) for w in weights)
            if q.dtype != torch.bool and not bool(((q == 0) | (q == 1)).all()):
                raise ValueError("spikes must be 0 or 1 for the packed engine.")
        else:
            planes = kernels.bit_planes(q.detach())
            bits, coefs = planes.bits, planes.coefs
        f, nb, geometry = code.q.shape[-1], -(-code.q.shape[-1] // code.block_size()), conv_geometry(layer, code)
        a = _gains(code, nb, [1] * (len(code.shape) - 2))
        words = []
        for plane in bits.reshape(len(coefs), -1, f):  # one plane at a time: its fields are nb-fold
            patches, out = receptive_fields(plane.unsqueeze(0), code, geometry, nb)
            words.append(kernels.pack_bits(patches[0], pw.block))
        rows = words[0].shape[0]
        x = kernels.packed_rows(kernels.Planes(None, coefs, torch.stack(words), pw.block, pw.k), pw)  # [J, M L, w]
        m = rows // math.prod(out)
        gains = a.reshape(nb, m, 1).expand(nb, m, math.prod(out)).reshape(nb, rows)
        cur, s = kernels.block_readout(x, kernels.coef_tensor(coefs), pw, gains.contiguous())
    except ValueError as err:
        _packed_failed(wc, err)
        return None
    cur = cur[:, :pw.out].reshape(m, -1, pw.out).transpose(1, 2).reshape(m, pw.out, *out)  # [M, O, *out] float64
    return _combine(layer, None, s.reshape(nb, m, 1, *out), code, wc, cur.contiguous(), a)


def _packed_terms(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes,
                  weights: list | None = None, gains: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
    """``N_b``, ``S_b`` (int32, ``[nb, *lead, out]`` and ``[nb, *lead, 1]``) by the packed engine, or
    ``None`` where it does not run. ``weights``: ``q`` is spikes ``[T, ..., F]`` with these step weights.
    ``gains`` (``[nb, rows]``): return ``sum_b gains_b N_b`` (float64 ``[*lead, out]``) instead of ``N_b``."""
    try:
        found = _packed_planes(layer, q, code, wc, weights)
        if found is None:
            return None
        pw, impl, planes, lead = found
        if gains is not None:
            cur, s = kernels.row_readout(planes, pw, gains, impl)
            return cur.reshape(*lead, cur.shape[-1]), s.reshape(s.shape[0], *lead, 1)
        n, s = kernels.row_terms(planes, pw, impl)
    except ValueError as err:
        _packed_failed(wc, err)
        return None
    return n.reshape(n.shape[0], *lead, n.shape[-1]), s.reshape(s.shape[0], *lead, 1)


def _packed_current(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes, weights: list | None,
                    words: Tensor | None = None) -> Tensor | None:
    """A linear layer's current by the kernel with :func:`combine`'s last step fused in, in one call
    (:class:`tbnn.kernels.current.LinearCall`) or from operands made in torch
    (:func:`tbnn.kernels.packed.block_current`); ``None`` where neither runs. :func:`combine`'s
    numbers (checked once per process, :func:`_current_fusion_ok`)."""
    try:
        found = _packed_planes(layer, q, code, wc, weights, words)
        if found is None or found[1] != "c":
            return None
        pw, _, planes, lead = found
        x, (rhs, bias) = kernels.packed_rows(planes, pw), _linear_rhs(layer, code, wc)
        call = wc.cache.get(key := ("one call", planes.coefs, pw.k, pw.block), False)  # bound once, kept with the codes
        if call is False:
            call = wc.cache[key] = LinearCall.bind(planes.coefs, pw, rhs, bias, _affine64(wc)[0])
        cur = None if call is None else call(x, code.gain.detach(), code.offset.detach())
        if cur is not None and weights is not None and planes.bits is None:  # from the recorded words: kept
            bound.keep(wc.cache, code, call, wc.cache["engine"])
        if cur is None:  # the same operands made in torch (the reference the one call is checked against)
            coefs, al = kernels.coef_tensor(planes.coefs), _affine64(wc)[0]
            gains, lhs = lhs_reference(code.gain.detach(), code.offset.detach(), kernels.block_sums(x, coefs, pw))
            cur = kernels.block_current(x, coefs, pw, gains, lhs, rhs, bias, al)
    except ValueError as err:
        _packed_failed(wc, err)
        return None
    return None if cur is None else cur.reshape(*lead, cur.shape[-1])


def integer_terms(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor]:
    r"""Per input block ``b``: ``N_b = L_Q(q m_b)`` and ``S_b = L_1(q m_b)``, ``[nb, *out]``.

    ``q`` is a code or a spike matrix ``[..., F]`` (flat features; 0/1 floats or bool).
    Every value is an exact integer, returned in :func:`term_dtype` (or in int32 from the
    int8 products when that is float32: every sum lies below :math:`2^{24}`), so per-step
    sums of these terms equal the terms of the summed code bit for bit.

    Linear layers: one product per block of a ``[M, nb, bs]`` view, in the fastest type of
    :func:`arithmetic` exact for it (int8, int32 sums, when every code and input is within
    :math:`\pm 127`; bfloat16 when ``max|Q| * per * max|q| <= 256``, every partial sum an
    integer its float32 accumulator holds); ``S_b``: a column of ones appended to the codes.
    Convolutions: one op on the masked copies stacked in the batch. Where the packed engine
    runs (see the module), the same integers by AND + popcount of bit planes, as int32.
    """
    terms = _packed_terms(layer, q, code, wc)
    if terms is not None:
        return terms
    f, bs = q.shape[-1], code.block_size()
    nb = -(-f // bs)
    lead = q.shape[:-1]
    is_code = q is code.q
    q = q.detach()
    if q.dtype == torch.bool:
        q, top = q.view(torch.uint8), 1.0  # 0/1 bytes: int8 as they are; floats faster than from bool
        dtype = term_dtype(code, wc)
    else:
        top = abs_max(q)
        dtype = term_dtype(code, wc, top if is_code else None)
    if layer.is_linear:
        mm = product_type(q.device, max(wc.qmax, 1.0), top, min(bs, f)) or dtype  # (1: the ones column)
        if mm == torch.int8:
            qd = q.view(torch.int8) if q.dtype == torch.uint8 else q.to(torch.int8)
        else:
            qd = q.to(mm)
        if nb * bs != f:
            qd = F.pad(qd, (0, nb * bs - f))
        qv = qd.reshape(-1, nb, bs)  # [M, nb, bs]
        ns = _block_products(qv, _blocked_codes(wc, code, mm), dtype)  # [nb, M, out + 1]: N_b, then S_b
        n, s = ns[..., :-1], ns[..., -1:]
        return n.reshape(nb, *lead, n.shape[-1]), s.reshape(nb, *lead, 1)
    qd = q.to(dtype)
    masks = code.block_masks(dtype).view(nb, *[1] * len(lead), f)
    x = code.unflatten((qd.unsqueeze(0) * masks).reshape(-1, f))  # [nb * M, ...]
    n, s = layer.operator(x, wc.q.to(dtype), None), layer.operator(x, wc.ones.to(dtype), None)
    return n.reshape(nb, *lead, *n.shape[1:]), s.reshape(nb, *lead, *s.shape[1:])


def _mask_terms(layer: EngineLayer, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor]:
    """``r_b = L_Q(m_b)`` and ``k_b = L_1(m_b)`` (float64, ``[nb, 1, *out]``), cached per input layout."""
    key = ("masks", code.q.shape[-1], code.block_size(), code.shape[1:] if code.shape is not None else None)
    if key not in wc.cache:
        if layer.is_linear and math.isfinite(wc.qmax):  # a block's mask sums its integer codes: exact
            f, bs = code.q.shape[-1], code.block_size()
            nb = -(-f // bs)
            q = wc.q.reshape(wc.q.shape[0], -1)
            q = (F.pad(q, (0, nb * bs - f)) if nb * bs != f else q).reshape(-1, nb, bs)
            r = q.sum(-1, dtype=torch.float64).t().unsqueeze(1)  # [nb, 1, out]
            k = code.block_masks(torch.float64).sum(-1).view(nb, 1, 1)
        else:
            x = code.unflatten(code.block_masks(torch.float64))
            r = layer.operator(x, wc.q.to(torch.float64), None).unsqueeze(1)
            k = layer.operator(x, wc.ones.to(torch.float64), None).unsqueeze(1)
        wc.cache[key] = (r, k)
    return wc.cache[key]


def _offset_terms(layer: EngineLayer, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor | None]:
    """``alpha r_b + gamma k_b`` (float64, ``[nb, prod(out)]``) and the bias over the same outputs, cached."""
    key = ("offsets", code.q.shape[-1], code.block_size(), code.shape[1:] if code.shape is not None else None)
    if key not in wc.cache:
        r, k = _mask_terms(layer, code, wc)
        shape = (-1, *[1] * (r.dim() - 3))
        f64 = torch.float64
        const = (wc.alpha.to(f64).view(shape) * r + wc.gamma.to(f64).view(shape) * k).squeeze(1)
        bias = None
        if layer.bias is not None:
            bias = layer.bias.detach().to(f64).view(shape).expand(const.shape[1:]).reshape(-1)
        wc.cache[key] = (const.reshape(const.shape[0], -1), bias)
    return wc.cache[key]


def combine(layer: EngineLayer, n: Tensor | None, s: Tensor, code: SpikeCode, wc: WeightCodes,
            cur: Tensor | None = None) -> Tensor:
    """The input current from the integer terms (the matmul shortcut of Ye et al.; see the module).

    In float64 (so every engine's terms give the same rounding): the sums over blocks
    ``sum_b a_b N_b`` and ``sum_b a_b S_b`` come first (the products of a float32 gain and an
    integer below :math:`2^{24}` are exact), then the per-channel ``alpha`` and ``gamma``
    once, and the offsets' response ``sum_b c_b (alpha r_b + gamma k_b) + bias``. For a
    linear layer ``gamma sum_b a_b S_b`` is rank one, so it joins the offsets in one small
    product, and the result is ``alpha sum_b a_b N_b`` plus that, rounded once to the
    code's type as it is written. ``cur``: ``sum_b a_b N_b`` already summed in that order
    (the packed engine's fused read-out, :func:`tbnn.kernels.packed.block_readout`); ``n``
    is not used then.
    """
    return _combine(layer, n, s, code, wc, cur, None)


def _combine(layer: EngineLayer, n: Tensor | None, s: Tensor, code: SpikeCode, wc: WeightCodes,
             cur: Tensor | None, a: Tensor | None) -> Tensor:
    """:func:`combine`; ``a``: the gains (:func:`_gains`) when the caller has them."""
    f64 = torch.float64
    nb, extra = s.shape[0], [1] * (s.dim() - 3)
    a = _gains(code, nb, extra) if a is None else a
    al, ga = (t.view(-1, *extra) for t in _affine64(wc))
    if cur is None:
        cur = n[0] * a[0]  # float64
        for b in range(1, nb):
            cur.addcmul_(n[b], a[b])
    if not extra:  # linear: [c_b..., sa] @ [const_b...; gamma] + bias, then + alpha * cur
        rest = _linear_rest(layer, s, code, wc, a)
        out = torch.empty_like(cur, dtype=code.q.dtype)  # the last float64 sum is rounded as it is written
        return torch.addcmul(rest, cur, al, out=out)
    c = code.offset.detach().to(f64).squeeze(-1).transpose(0, 1).reshape(nb, -1)  # [nb, B]
    const, bias = _offset_terms(layer, code, wc)  # [nb, out...] and [out...] flat
    sa = (a * s).sum(0)  # [B, 1, ...]
    out = torch.empty_like(cur, dtype=code.q.dtype)
    cur.mul_(al).addcmul_(sa, ga)
    offsets = torch.addmm(bias, c.t(), const) if bias is not None else c.t() @ const
    return torch.add(cur, offsets.view(cur.shape), out=out)


def _affine64(wc: WeightCodes) -> tuple[Tensor, Tensor]:
    """The per-channel ``alpha`` and ``gamma`` in float64 (cached)."""
    return wc.cache.get("affine64") or wc.cache.setdefault("affine64", (wc.alpha.double(), wc.gamma.double()))


def _linear_rest_terms(layer: EngineLayer, s: Tensor, code: SpikeCode, wc: WeightCodes,
                       a: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(lhs, rhs, bias)`` of a linear layer's current less ``alpha sum_b a_b N_b``: ``bias +
    sum_b c_b (alpha r_b + gamma k_b) + gamma sum_b a_b S_b`` is ``bias + lhs @ rhs`` with ``lhs =
    [c_b..., sa]`` (float64 ``[B, nb + 1]``) and ``rhs = [const_b...; gamma]`` (``s``: ``S_b``
    ``[nb, B, 1]``; ``a``: :func:`_gains`)."""
    nb = s.shape[0]
    c = code.offset.detach().to(torch.float64).squeeze(-1).reshape(-1, nb)  # [B, nb]
    sa = (a * s).sum(0)  # [B, 1]
    return torch.cat([c, sa], 1), *_linear_rhs(layer, code, wc)


def _linear_rhs(layer: EngineLayer, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor | None]:
    """``rhs = [const_b...; gamma]`` (float64 ``[nb + 1, out]``) and the bias of :func:`_linear_rest_terms`, cached."""
    const, bias = _offset_terms(layer, code, wc)  # [nb, out] and [out]
    key = ("offsets and gamma", code.q.shape[-1], code.block_size())  # linear: no input layout
    if key not in wc.cache:
        wc.cache[key] = torch.cat([const, _affine64(wc)[1].view(1, -1)], 0)
    return wc.cache[key], bias


def _linear_rest(layer: EngineLayer, s: Tensor, code: SpikeCode, wc: WeightCodes, a: Tensor) -> Tensor:
    """A linear layer's current less ``alpha sum_b a_b N_b`` (float64 ``[B, out]``; see
    :func:`_linear_rest_terms`), added in the one order every engine uses
    (:func:`tbnn.kernels.packed.rest_reference`)."""
    return kernels.rest_reference(*_linear_rest_terms(layer, s, code, wc, a))


@functools.cache
def _current_fusion_ok() -> bool:
    """Whether the kernel's fused current (:func:`tbnn.kernels.packed.block_current`) equals the last
    steps of :func:`combine`, ``rest_reference`` then ``torch.addcmul(rest, cur, alpha, out=float32)``,
    with and without a bias (checked once per process on a small random layer; else not used)."""
    if kernels.kernel() is None:
        return False
    gen = torch.Generator().manual_seed(22)
    m, k, o = 37, 300, 21  # ragged blocks, outputs not a multiple of 8
    pw = kernels.pack_weights(torch.randint(-1, 2, (o, k), generator=gen), 128)
    planes = kernels.step_planes(torch.rand(4, m, k, generator=gen) < 0.3, [8, 4, 2, 1])
    x = kernels.pack_bits(planes.bits.reshape(-1, k), 128).reshape(4, m, -1)
    coefs = torch.tensor(planes.coefs)
    gains = torch.randn(3, m, generator=gen).to(torch.float32).to(torch.float64)
    lhs = torch.randn(m, 4, generator=gen, dtype=torch.float64)
    rhs = torch.randn(4, o, generator=gen, dtype=torch.float64) * 100
    bias = torch.randn(o, generator=gen, dtype=torch.float64)
    alpha = torch.rand(o, generator=gen, dtype=torch.float64)
    cur = kernels.block_readout(x, coefs, pw, gains)[0][:, :o]
    ok = True
    for b in (bias, None):
        rest = kernels.rest_reference(lhs, rhs, b)
        got = kernels.block_current(x, coefs, pw, gains, lhs, rhs, b, alpha)
        ok &= all(torch.equal(got, torch.addcmul(rest, c, alpha, out=torch.empty(m, o))) for c in (cur, cur.contiguous()))
    return ok


def _integer_weights(code: SpikeCode) -> list[int] | None:
    """The code's step weights ``w_t`` as integers, or ``None`` when one is not an integer."""
    return _scheme_integer_weights(code.scheme, code.timesteps)


@functools.cache
def _scheme_integer_weights(scheme: str, timesteps: int) -> list[int] | None:
    """:func:`_integer_weights` of every code of ``scheme`` over ``timesteps`` steps (one tensor made per pair)."""
    weights = step_weights(scheme, timesteps, torch.float64).tolist()
    return [int(w) for w in weights] if all(w.is_integer() for w in weights) else None


def _gains(code: SpikeCode, nb: int, extra: list[int]) -> Tensor:
    """The read-out gains ``a_b`` per block and sample, float64 ``[nb, B, 1, *extra]``."""
    return code.gain.detach().to(torch.float64).squeeze(-1).transpose(0, 1).reshape(nb, -1, 1, *extra)


def _fused(layer: EngineLayer, q: Tensor, code: SpikeCode, wc: WeightCodes, weights: list | None = None,
           words: Tensor | None = None) -> Tensor | None:
    """The current by the packed engine with the read-out ``sum_b a_b N_b`` fused into the kernel, or
    ``None`` where it does not run (then the caller combines the terms). Only float32 gains: their
    products with the integer terms are exact, so the sum equals :func:`combine`'s bit for bit.
    ``words``: as :func:`step_current`'s."""
    if not layer.is_linear:
        return _packed_conv_current(layer, q, code, wc, weights)
    if code.gain.dtype != torch.float32:
        return None
    if code.q.dtype == torch.float32 and engine_choice() != "dense" and _current_fusion_ok():  # dense: no kernel
        cur = _packed_current(layer, q, code, wc, weights, words)
        if cur is not None:
            return cur
    nb = -(-q.shape[-1] // code.block_size())
    a = _gains(code, nb, [])
    out = _packed_terms(layer, q, code, wc, weights, gains=a.reshape(nb, -1))
    return None if out is None else _combine(layer, None, out[1], code, wc, out[0], a)


def exact(layer: EngineLayer, code: SpikeCode, wc: WeightCodes | None = None) -> Tensor:
    """Integer-code evaluation (no gradient): the current from the code's integer terms at once.

    One product with the integer code ``q`` per block (the time-folded pass: a binary
    code's steps are linear in the weights, so the ``T`` step products sum to this one).
    """
    wc = wc if wc is not None else cached_weight_codes(layer)
    fused = _fused(layer, code.q, code, wc)
    return fused if fused is not None else combine(layer, *integer_terms(layer, code.q, code, wc), code, wc)


def step_current(layer: EngineLayer, code: SpikeCode, wc: WeightCodes | None = None,
                 words: Tensor | None = None) -> Tensor:
    """Input current of ``layer`` accumulated from ``code``'s spikes, one time step at a time.

    For every step ``t``: ``N_b += w_t L_Q(s_t m_b)`` (only inputs that spiked at ``t``
    add their column of weight codes) and ``S_b += w_t L_1(s_t m_b)``, exactly; then
    :func:`combine`. The products are accumulated in step order (:func:`step_terms`).
    Equal to :func:`exact` bit for bit. ``words``: ``code.spikes`` packed 64 to a word
    (:func:`tbnn.kernels.packed.pack_bits` of ``[T * M, F]``, ``block=None``), as a simulation
    records them, used where the layer's blocks lay the words out alike (not packed again).

    >>> import tbnn
    >>> layer, code = tbnn.TBLinear(6, 3).eval(), tbnn.TemporalBinary(4).encode(torch.randn(2, 6))
    >>> torch.equal(step_current(layer, code), exact(layer, code))
    True
    """
    wc = wc if wc is not None else cached_weight_codes(layer)
    fused = bound.current(wc.cache, code, words)  # the one call an earlier batch kept (the same bits)
    if fused is not None:
        return fused
    weights = _integer_weights(code)
    fused = _fused(layer, code.spikes, code, wc, weights, words) if weights is not None else None
    return fused if fused is not None else combine(layer, *step_terms(layer, code, wc), code, wc)


def step_terms(layer: EngineLayer, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor]:
    """``N_b`` and ``S_b`` accumulated over the steps from ``code``'s spikes (:func:`step_current`).

    Linear layers take the ``T`` steps in one batched product (``[T B, F]`` rows: small);
    convolutions one step at a time (their per-block masked copies would grow ``T``-fold).
    """
    spikes = code.spikes
    weights = _integer_weights(code)
    if weights is not None:  # the packed engine: every step in one pass, weighted
        terms = _packed_terms(layer, spikes, code, wc, weights)
        if terms is not None:
            return terms
    batched = layer.is_linear
    if batched:
        n_t, s_t = integer_terms(layer, spikes, code, wc)  # [nb, T, B, ...]: every step's terms
    n = s = None
    # integer step weights stay integers, so int32 terms are summed in int32 (exact below 2^24)
    for t, w in enumerate(int(w) if w.is_integer() else w for w in code.weights.tolist()):
        nt, st = (n_t[:, t], s_t[:, t]) if batched else integer_terms(layer, spikes[t], code, wc)
        if n is None:
            n, s = nt * w, st * w
        else:
            n.add_(nt, alpha=w)
            s.add_(st, alpha=w)
    return n, s
