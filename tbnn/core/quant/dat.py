"""Quantize a tensor: grid map, codes, and the DAT (or STE) read-out; the reference pipeline,
the dispatcher ``quantize`` and the straight-through ``fake_quantize``."""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.quant.blocks import block_mean, to_blocks
from tbnn.core.quant.fast import affine_fast, rectified_input
from tbnn.core.quant.grid import BlockCodes, affine_codes, grid_range
from tbnn.core.quant.ridge import check_dim, ridge_fit
from tbnn.core.quant.sparsity import magnitude_mask, nm_mask
from tbnn.core.quant.spec import (
    TINY,
    QuantSpec,
    check_common,
    check_finite,
    parse_sparsity,
    validate_bits,
)
from tbnn.core.validate import check_tensor, compute_in_float32

__all__ = ["quantize", "quantize_reference", "fake_quantize"]


def _linear_codes(xs: Tensor, valid: Tensor, n: Tensor, bits: float, clip_grad: bool) -> tuple[Tensor, Tensor]:
    """Symmetric linear codes ``q = u + sg(code - u)``, ``u = x / s``; returns ``(q, s)``.

    Ternary (``bits = 1.5``): ``s = 1.4 mean|x|`` so the threshold is ``0.7 mean|x|`` (TWN,
    Li et al. 2016, arXiv:1605.04711), codes ``{-1, 0, 1}``. Sparse ``k``-bit: nonzero
    elements get ``sign(x) * m`` with ``m`` in ``1..2^(k-1)``, ``s = 2 mean|x_kept| /
    (2^(k-1) + 1)``; pruned elements get code 0.
    """
    a = xs.detach().abs()
    if bits == 1.5:
        s = (1.4 * block_mean(a, valid, n)).clamp_min(TINY)
        u = xs / s
        code = torch.floor(u.detach() + 0.5).clamp(-1, 1)
        lim = 1.0
    else:
        mags = 2 ** (int(bits) - 1)
        kept = (a > 0) & valid
        mean_kept = (a * kept).sum(-1, keepdim=True) / kept.sum(-1, keepdim=True).clamp_min(1)
        s = (2.0 * mean_kept / (mags + 1)).clamp_min(TINY)
        u = xs / s
        mag = torch.floor(u.detach().abs() + 0.5).clamp(1, mags)
        code = torch.where(kept, torch.sign(u.detach()) * mag, torch.zeros_like(u))
        lim = float(mags)
    if clip_grad:
        u = u.clamp(-lim - 0.5, lim + 0.5)
    return u + (code - u).detach(), s


def quantize(
    x: Tensor,
    bits: float = 1,
    method: str = "dat",
    block: int | None = 128,
    lam: float = 0.01,
    dim: int = -1,
    sparsity: str | float | None = None,
    grid: str | None = None,
    target: str = "x",
    detach_stats: bool = False,
    levels: int | None = None,
    validate: bool = True,
) -> BlockCodes:
    """Quantize ``x`` blockwise and fit its read-out; see :func:`fake_quantize` for the arguments.

    ``levels`` overrides ``2**bits`` on the affine grid (used by the temporal codes, where
    a ``T``-step binary neuron carries ``2^T`` levels). Returns :class:`BlockCodes`.
    """
    if validate:
        dim = _validate_quantize(x, bits, method, block, lam, dim, sparsity, grid, target, levels)
    else:
        dim = dim % x.dim()
    if bits != 1.5 and sparsity is None and x.shape[dim] > 0:  # affine grid: the fast path
        lv = levels if levels is not None else 2 ** int(bits)
        q, gain, offset = affine_fast(x.movedim(dim, -1), block, grid or "minmax", lv, lam, target,
                                      method, detach_stats, fused=False)
        qb, valid, n = to_blocks(q, -1, block)
        return BlockCodes(q=qb, gain=gain, offset=offset, valid=valid, n=n, dim=dim, length=x.shape[dim])
    return quantize_reference(x, bits, method, block, lam, dim, sparsity, grid, target, detach_stats, levels)


def _validate_quantize(x, bits, method, block, lam, dim, sparsity, grid, target, levels,
                       finite: bool = True) -> int:
    """Validate the arguments of :func:`quantize`; returns ``dim`` made non-negative.

    ``finite=False`` leaves the NaN/inf check of ``x`` to the caller.
    """
    if levels is None:
        validate_bits(bits)
    check_common(lam, block, method, grid)
    if finite or not torch.is_tensor(x):
        check_finite(x, "x")
    else:
        check_tensor(x, "x", allow_empty_axis=dim if isinstance(dim, int) else None)
    dim = check_dim(x, dim)
    if target not in ("x", "relu"):
        raise ValueError(f"target must be 'x' or 'relu'; got {target!r}.")
    parse_sparsity(sparsity)
    return dim


def quantize_reference(
    x: Tensor,
    bits: float = 1,
    method: str = "dat",
    block: int | None = 128,
    lam: float = 0.01,
    dim: int = -1,
    sparsity: str | float | None = None,
    grid: str | None = None,
    target: str = "x",
    detach_stats: bool = False,
    levels: int | None = None,
) -> BlockCodes:
    """:func:`quantize` on padded, masked blocks with autograd through every step (no validation).

    The reference implementation: the fast affine path (:func:`affine_fast`) must agree with
    it in value and gradient; linear (ternary, sparse) codes always run here.
    """
    dim = dim % x.dim()
    sp = parse_sparsity(sparsity)
    if sp is None and bits != 1.5:
        x = rectified_input(x, grid, target)
    xb, valid, n = to_blocks(x, dim, block)
    clip_grad = method == "ste_clip"

    linear = bits == 1.5 or sp is not None
    if linear:
        xs = xb
        if sp is not None:
            if isinstance(sp, tuple):
                mb, _, _ = to_blocks(nm_mask(x, sp[0], sp[1], dim), dim, block)
            else:
                mb = magnitude_mask(xb, sp, valid)
            xs = xb + (xb * mb - xb).detach()
        q, s = _linear_codes(xs, valid, n, 1.5 if bits == 1.5 else bits, clip_grad)
        if method == "dat":
            gain, offset = ridge_fit(xb, q, valid, n, lam, affine=False)
        else:
            gain, offset = s, torch.zeros_like(s)
    else:
        lv = levels if levels is not None else 2 ** int(bits)
        lo, hi = grid_range(xb, valid, n, grid or "minmax", lv)
        q = affine_codes(xb, lo, hi, lv, clip_grad)
        if method == "dat":
            tgt = torch.relu(xb) if target == "relu" else xb
            gain, offset = ridge_fit(tgt, q, valid, n, lam, affine=True)
        else:  # fixed inverse grid map: the centre of each bin
            gain = (hi - lo) / lv
            offset = lo + 0.5 * gain
    q = torch.where(valid, q, torch.zeros((), dtype=q.dtype, device=q.device))  # padding codes 0
    if detach_stats:
        gain, offset = gain.detach(), offset.detach()
    return BlockCodes(q=q, gain=gain, offset=offset, valid=valid, n=n, dim=dim, length=x.shape[dim])


@compute_in_float32
def fake_quantize(
    x: Tensor,
    bits: float = 1,
    method: str = "dat",
    block: int | None = 128,
    lam: float = 0.01,
    dim: int = -1,
    sparsity: str | float | None = None,
    grid: str | None = None,
    target: str = "x",
    detach_stats: bool = False,
    compile: bool | None = None,
    spec: QuantSpec | None = None,
) -> Tensor:
    """Quantize ``x`` and map it back to real values, differentiably (quantization-aware training).

    Parameters
    ----------
    x : tensor to quantize (weights or activations); must be finite.
    bits : 1, 2, 3, 4, 8, or 1.5 for ternary ``{-1, 0, 1}`` codes.
    method : ``"dat"`` (ridge dequantizer of Ye et al. 2024), ``"ste"`` (fixed inverse grid
        map, straight-through gradient) or ``"ste_clip"`` (hardtanh-clipped STE).
    block : elements per block along ``dim`` (``None``: the whole axis); the last block may
        be shorter.
    lam : ridge penalty ``>= 0`` (the paper uses 0.01 everywhere).
    dim : the axis a following matmul contracts; blocks never straddle other axes.
    sparsity : ``"M:N"`` (keep M of every N along ``dim``) or a fraction of each block to
        prune by magnitude; masked first, then quantized with linear codes, then regressed
        onto the *dense* ``x`` (sparsify-then-quantize).
    grid : ``"minmax"`` (default), ``"meanstd"`` or ``"rectify"`` (see :data:`GRIDS`).
    target : regress onto ``"x"`` or ``"relu"`` (``relu(x)``, for rectifying neurons).
    detach_stats : stop gradients through the fitted gain and offset.
    compile : run the affine grid's arithmetic through ``torch.compile`` (fused passes; the
        first call pays the compilation, so only long runs gain); default: the
        ``TBNN_COMPILE`` environment variable (``1`` turns it on), see :func:`compile_wanted`.

    spec : a :class:`QuantSpec` (already validated) whose fields replace ``bits``,
        ``method``, ``block``, ``lam``, ``sparsity``, ``grid`` and ``target``.

    The 1-bit DAT output takes at most 2 values per block, k-bit at most ``2^k``.

    >>> import torch
    >>> y = fake_quantize(torch.tensor([[0.1, 0.2, 0.9, 1.0]]), bits=1, block=None, lam=0.0)
    >>> [round(v, 4) for v in y[0].tolist()]  # lam -> 0: the two conditional means
    [0.15, 0.15, 0.95, 0.95]
    """
    if spec is not None:
        bits, method, block, lam = spec.bits, spec.method, spec.block, spec.lam
        sparsity, grid, target = spec.sparsity, spec.grid, spec.target
    affine = bits != 1.5 and sparsity is None
    # the fast path's minmax/meanstd grid statistics catch a NaN or an inf (one pass fewer)
    own_check = affine and grid not in ("rectify", "unit")
    dim = _validate_quantize(x, bits, method, block, lam, dim, sparsity, grid, target, None,
                             finite=not own_check)
    if affine and x.shape[dim] > 0:  # affine grid: the fast path
        last = dim == x.dim() - 1  # no movedim round trip (two permute calls) when already last
        y = affine_fast(x if last else x.movedim(dim, -1), block, grid or "minmax", 2 ** int(bits), lam,
                        target, method, detach_stats, fused=True, check="x" if own_check else None,
                        compile=compile)
        return y if last else y.movedim(-1, dim)
    return quantize_reference(x, bits, method, block, lam, dim, sparsity, grid, target,
                               detach_stats).dequantize()
