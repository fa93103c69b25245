"""The fast affine path: grid codes and ridge read-out in one autograd node with a
hand-written backward (the same values and gradients as the reference pipeline)."""

from __future__ import annotations

import math
import os
import threading

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from tbnn.core.quant.spec import TINY, check_finite

__all__ = ["affine_fast", "compile_wanted", "dat_readout", "grid_values", "rectified_input", "rectifies"]


# --------------------------------------------------------------------------------------
# fast affine path: codes and ridge read-out in one autograd node with a hand-written backward
#
# The reference pipeline above (``grid_range`` -> ``affine_codes`` -> ``ridge_fit`` on padded,
# masked blocks) builds a dozen full-size temporaries and as many autograd nodes. The path
# below computes the same values from four block reductions on unpadded blocks (a ragged
# tail is a second, shorter group) and differentiates the closed form by hand:
#
#   y_i = a (q_i - qbar) + tbar,  a = cov(q, t) / (var(q) + lam),  t = x or relu(x)
#   dL/dq_j = c_G G_j + K (t_j - tbar) - 2 a K (q_j - qbar) - g_c a / N
#   dL/dt_j = K (q_j - qbar) + g_c / N,      K = g_a' / (N (var + lam))
#
# with (G, c_G, g_a', g_c) = (dL/dy, a, sum dL/dy (q - qbar), sum dL/dy) for the fused output
# and (dL/dq, 1, dL/da - qbar dL/dc, dL/dc) for the (q, gain, offset) outputs; then
# dL/dx = (L / span) dL/dq + dL/dt * dt/dx, the straight-through residual of
# q = u + sg(code - u) (Ye et al. 2024, arXiv:2409.09245). Tests compare both paths value by value and gradient
# by gradient.


def _split_blocks(x: Tensor, block: int | None) -> list[Tensor]:
    """Cut the last axis into full blocks ``[..., nb, B]`` and a ragged tail ``[..., 1, r]``."""
    k = x.shape[-1]
    size = k if block is None else min(block, k)
    nb, r = divmod(k, size)
    lead = x.shape[:-1]
    parts = []
    if nb:
        parts.append((x if r == 0 else x[..., : nb * size]).reshape(*lead, nb, size))
    if r:
        parts.append(x[..., nb * size:].reshape(*lead, 1, r))
    return parts


def _grid_stats(xp: Tensor, grid: str, levels: int, plain: bool = False
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """:func:`grid_range` on unpadded blocks ``[..., nb, B]``: ``(lo, hi, probe, total)``.

    ``probe`` is finite unless ``xp`` holds a NaN or an inf (or its sums overflow): for
    ``minmax`` and ``meanstd`` the block statistics see every element, which spares the
    finiteness check a pass over the data. ``total``: the block sums of ``xp`` when the
    grid needed them (``meanstd``), else ``None``. ``plain``: reductions without the kept
    scratch buffer (for ``torch.compile``).
    """
    total = None
    if grid == "unit":  # a fixed grid: lo = 0, hi = 1 (the scale was applied before)
        hi = torch.ones_like(xp[..., :1])
        return torch.zeros_like(hi), hi, hi, total
    if grid == "minmax":
        lo, hi = xp.amin(-1, keepdim=True), xp.amax(-1, keepdim=True)
    elif grid == "meanstd":
        total = xp.sum(-1, keepdim=True)
        mu = total / xp.shape[-1]
        sd = (_rowdot(xp, xp, shift=mu, plain=plain) / xp.shape[-1]).sqrt()
        c = 1.0 if levels == 2 else 2.0
        lo, hi = mu - c * sd, mu + c * sd
    else:  # rectify: hi >= TINY > lo, never a constant grid
        hi = xp.amax(-1, keepdim=True).clamp_min(TINY)
        return torch.zeros_like(hi), hi, hi, total
    probe = lo + hi
    # a constant block (hi = lo; never hi < lo): hi = lo + 1, every code 0, never 0/0
    hi = hi + (hi == lo)
    return lo, hi, probe, total


def _grid_fast(xp: Tensor, grid: str, levels: int, check: bool = False, compiled: bool = False
               ) -> tuple[Tensor, Tensor, bool, Tensor | None]:
    """:func:`grid_range` on unpadded blocks ``[..., nb, B]`` (no gradient).

    With ``check``, also tells whether the block statistics are finite (else ``True``), see
    :func:`_grid_stats`. The last item is the block sums of ``xp`` when the grid needed
    them (``meanstd``), else ``None``.
    """
    stats = _compiled(_grid_stats) if compiled else _grid_stats
    lo, hi, probe, total = stats(xp, grid, levels, compiled)
    return lo, hi, not check or math.isfinite(probe.sum().item()), total


def _codes_into(x: Tensor, lo: Tensor, span: Tensor, levels: int, out: Tensor | None = None) -> Tensor:
    """Integer codes ``min(floor(L clip(v, 0, 1)), L - 1)``, ``v = (x - lo) / span``, built in place.

    The same float operations as :func:`affine_codes` (``clip(floor(L v), 0, L - 1)`` is the
    same number), so the same codes.
    """
    d = torch.sub(x, lo, out=out)
    if levels == 2:
        # one comparison instead of divide, floor and clip: with h = span / 2 > 0 and
        # d = fl(x - lo), fl(d / h) >= 1 exactly when d >= h (if d < h then d <= the float
        # below h, so d / h <= 1 - 2^-p, a float below 1, and rounds below 1), so
        # clip(floor(fl(d / h)), 0, 1) = [d >= h]
        return d.ge_(span / 2)
    if levels & (levels - 1) == 0:
        # L = 2^k: (x - lo) / (span / L) rounds once to the same number as ((x - lo) / span) * L
        # (rounding commutes with scaling by a power of two): one pass fewer
        d.div_(span / levels)
    else:
        d.div_(span).mul_(levels)
    return d.floor_().clamp_(0, levels - 1)


_CHUNK = 1 << 18  # elements per slice of the row reductions: a cache-sized temporary
_SMALL = 1 << 20  # tensors up to this many elements are reduced in one plain temporary
_SCRATCH = threading.local()


def _scratch(numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A per-thread reusable 1-D buffer of at least ``numel`` elements (never escapes a call).

    Fresh temporaries of a few hundred KiB and more come from ``mmap`` and cost a page
    fault per page on every call; a kept buffer costs nothing after the first.
    """
    key = (dtype, device)
    cache = getattr(_SCRATCH, "buffers", None)
    if cache is None:
        cache = _SCRATCH.buffers = {}
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        buf = cache[key] = torch.empty(numel, dtype=dtype, device=device)
    return buf[:numel]


def _rowdot(a: Tensor, b: Tensor, shift: Tensor | None = None, plain: bool = False) -> Tensor:
    """``sum(a * b, -1, keepdim=True)``, or ``sum((a - shift)^2, ...)`` when ``shift`` is given.

    Reduced in slices through one small kept buffer (:func:`_scratch`): a full-size
    temporary would cost a page-faulting pass, and ``bmm`` on ``[R, 1, K] x [R, K, 1]`` runs
    at a fraction of memory speed. ``a`` and ``b`` must not require gradients. ``plain``
    (or a tensor off the CPU, whose allocator caches memory): the plain reduction, which
    ``torch.compile`` fuses with its producer.
    """
    if plain or a.device.type != "cpu" or a.numel() <= _SMALL:
        t = a * b if shift is None else (a - shift).square()
        return t.sum(-1, keepdim=True)
    k = a.shape[-1]
    a2 = a.reshape(-1, k)
    b2 = b.reshape(-1, k)
    rows = a2.shape[0]
    sh = None if shift is None else shift.reshape(-1, 1)
    dtype = torch.result_type(a, b)
    out = torch.empty(rows, 1, dtype=dtype, device=a.device)
    step = max(1, _CHUNK // max(k, 1))
    buf = _scratch(min(step, rows) * k, dtype, a.device).view(-1, k)
    if rows <= step:  # one slice
        t = torch.mul(a2, b2, out=buf) if sh is None else torch.sub(a2, sh, out=buf).square_()
        return torch.sum(t, -1, keepdim=True, out=out).reshape(*a.shape[:-1], 1)
    for s in range(0, rows, step):
        e = min(rows, s + step)
        t = buf[: e - s]
        if sh is None:
            torch.mul(a2[s:e], b2[s:e], out=t)
        else:
            torch.sub(a2[s:e], sh[s:e], out=t).square_()
        torch.sum(t, -1, keepdim=True, out=out[s:e])
    return out.reshape(*a.shape[:-1], 1)


def _affine_stats(x, code, lo, span, levels, lam, relu, method, xsum=None, plain=False, qsums=None):
    """Per-block ``(gain, offset, qbar, tbar, inv)`` of the codes (the last three ``None`` for the STE).

    ``xsum``: the block sums of ``x`` if already known (spares a pass); ``qsums``: the block
    sums of the codes and of their squares, if already known (exact integers: the same numbers).
    """
    n = x.shape[-1]
    if method != "dat":  # STE: the fixed inverse grid map, the centre of each bin
        gain = span / levels
        return gain, lo + 0.5 * gain, None, None, None
    t = torch.relu(x) if relu else x
    sq = code.sum(-1, keepdim=True) if qsums is None else qsums[0]
    st = xsum if xsum is not None and not relu else t.sum(-1, keepdim=True)
    sqt = _rowdot(code, t, plain=plain)
    if levels == 2:  # 0/1 codes: q^2 = q
        sqq = sq
    else:
        sqq = _rowdot(code, code, plain=plain) if qsums is None else qsums[1]
    return _fit_sums(code, n, sq, st, sqt, sqq, levels, lam)


def _fit_sums(code, n, sq, st, sqt, sqq, levels, lam):
    """``(gain, offset, qbar, tbar, inv)`` from the block sums of ``q``, ``t``, ``q t`` and ``q^2``."""
    qbar, tbar = sq / n, st / n
    cov = torch.addcmul(sqt / n, qbar, tbar, value=-1.0)
    if levels == 2:  # sqq / n = qbar and qbar - qbar^2 >= 0 exactly for qbar in [0, 1]
        var = torch.addcmul(qbar, qbar, qbar, value=-1.0)
    else:
        var = torch.addcmul(sqq / n, qbar, qbar, value=-1.0).clamp_min_(0.0)
    if lam == 0:  # blocks whose codes are all equal: exactly zero, never 0/0
        flat = code.amax(-1, keepdim=True) == code.amin(-1, keepdim=True)
        var, cov = var.masked_fill(flat, 0.0), cov.masked_fill(flat, 0.0)
    if lam > 0:
        inv = (var + lam).reciprocal_()
    else:  # all-equal codes at lam = 0: gain 0, the block's mean (1/0 -> inf is discarded)
        inv = torch.where(var > 0, 1.0 / var, torch.zeros_like(var))
    gain = cov * inv
    offset = torch.addcmul(tbar, gain, qbar, value=-1.0)
    return gain, offset, qbar, tbar, inv


def _affine_forward(x, lo, hi, levels, lam, relu, method, xsum, fused, keep, plain):
    """Codes and fit of one block group: ``(y or code, code or None, span, gain, offset, qbar, tbar, inv)``.

    ``fused``: the first item is ``gain * q + offset``, written over the codes unless ``keep``
    (then the codes are the second item).
    """
    span = hi - lo
    if not plain and method == "dat" and x.device.type == "cpu" and x.numel() > _SMALL:
        return _affine_forward_sliced(x, lo, span, levels, lam, relu, xsum, fused, keep)
    code = _codes_into(x, lo, span, levels)
    gain, offset, qbar, tbar, inv = _affine_stats(x, code, lo, span, levels, lam, relu, method, xsum, plain)
    if not fused:
        return code, code, span, gain, offset, qbar, tbar, inv
    # mul then add, not addcmul: a fused multiply-add would round unlike gain * q + offset
    y = torch.mul(code, gain) if keep else code.mul_(gain)
    return y.add_(offset), code if keep else None, span, gain, offset, qbar, tbar, inv


def _row_slices(rows: int, k: int) -> list[tuple[int, int]]:
    """Row ranges of about :data:`_CHUNK` elements: each pass over a slice stays in the cache."""
    step = max(1, _CHUNK // max(k, 1))
    return [(s, min(rows, s + step)) for s in range(0, rows, step)]


def _affine_forward_sliced(x, lo, span, levels, lam, relu, xsum, fused, keep):
    """:func:`_affine_forward` (DAT) on a large CPU tensor, a cache-sized slice of rows at a time.

    The codes, their block sums and the output of a slice are made while the slice is in
    the cache: the data cross memory about three times instead of about eleven. Same
    operations per element as the whole-tensor path, so the same codes and values.
    """
    k = x.shape[-1]
    x2 = x.reshape(-1, k)
    code2 = torch.empty_like(x2)
    need_st = xsum is None or relu
    slices, sq, st, sqt, sqq = _sliced_sums(x2, code2, levels, relu, need_st, lo.reshape(-1, 1), span.reshape(-1, 1))
    shape = (*x.shape[:-1], 1)
    sq, st, sqt, sqq = (v.reshape(shape) for v in (sq, st, sqt, sqq))
    code = code2.reshape(x.shape)
    gain, offset, qbar, tbar, inv = _fit_sums(code, k, sq, xsum if not need_st else st, sqt,
                                              sq if levels == 2 else sqq, levels, lam)
    if not fused:
        return code, code, span, gain, offset, qbar, tbar, inv
    y2 = torch.empty_like(x2) if keep else code2
    g2, o2 = gain.reshape(-1, 1), offset.reshape(-1, 1)
    for s, e in slices:  # mul then add, as the whole-tensor path
        torch.mul(code2[s:e], g2[s:e], out=y2[s:e]).add_(o2[s:e])
    return y2.reshape(x.shape), code if keep else None, span, gain, offset, qbar, tbar, inv


def _sliced_sums(x2, code2, levels, relu, need_st, lo2=None, sp2=None):
    """``(slices, sq, st, sqt, sqq)``: the block sums ``[rows, 1]`` of the 2-D rows ``x2`` and
    their codes ``code2``, a cache-sized slice of rows at a time; with ``lo2`` and ``sp2`` the
    codes are first made into ``code2`` (:func:`_codes_into`), slice by slice."""
    rows, k = x2.shape
    t2 = torch.relu(x2) if relu else x2
    sq, st, sqt, sqq = torch.empty(4, rows, 1, dtype=x2.dtype, device=x2.device)
    slices = _row_slices(rows, k)
    buf = _scratch((slices[0][1] - slices[0][0]) * k, x2.dtype, x2.device).view(-1, k)
    for s, e in slices:
        c = code2[s:e] if lo2 is None else _codes_into(x2[s:e], lo2[s:e], sp2[s:e], levels, out=code2[s:e])
        torch.sum(c, -1, keepdim=True, out=sq[s:e])
        if need_st:
            torch.sum(t2[s:e], -1, keepdim=True, out=st[s:e])
        torch.sum(torch.mul(c, t2[s:e], out=buf[: e - s]), -1, keepdim=True, out=sqt[s:e])
        if levels != 2:
            torch.sum(torch.mul(c, c, out=buf[: e - s]), -1, keepdim=True, out=sqq[s:e])
    return slices, sq, st, sqt, sqq


def dat_readout(x: Tensor, code: Tensor, block: int | None, levels: int, lam: float, relu: bool,
                qsums: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(gain, offset)`` ``[..., nb, 1]`` of the DAT read-out of codes made elsewhere (no gradient).

    ``x`` is the input the codes were made from (after :func:`rectified_input`), ``relu``
    as :func:`affine_fast` sets it. The same reductions, on the same blocks and in the same
    order, as :func:`affine_fast`'s forward, so the same bits when ``code`` holds its codes
    (:mod:`tbnn.kernels.neuron` makes them in one compiled pass). ``qsums`` ``[2, B, nb]``:
    the codes' block sums and sums of squares when they are already known and exact.
    """
    gains, offsets = [], []
    nfull = x.shape[-1] // (x.shape[-1] if block is None else min(block, x.shape[-1]))
    for i, (p, c) in enumerate(zip(_split_blocks(x.detach(), block), _split_blocks(code, block))):
        part = None if qsums is None else (qsums[:, :, :nfull] if i == 0 and nfull else qsums[:, :, nfull:])
        qs = None if part is None else part.unsqueeze(-1)
        if p.device.type == "cpu" and p.numel() > _SMALL:  # as _affine_forward_sliced
            k = p.shape[-1]
            _, sq, st, sqt, sqq = _sliced_sums(p.reshape(-1, k), c.reshape(-1, k), levels, relu, True)
            shape = (*p.shape[:-1], 1)
            sq, st, sqt, sqq = (v.reshape(shape) for v in (sq, st, sqt, sqq))
            gain, offset = _fit_sums(c, k, sq, st, sqt, sq if levels == 2 else sqq, levels, lam)[:2]
        else:
            gain, offset = _affine_stats(p, c, None, None, levels, lam, relu, "dat", qsums=qs)[:2]
        gains.append(gain)
        offsets.append(offset)
    if len(gains) == 1:
        return gains[0], offsets[0]
    return torch.cat(gains, -2), torch.cat(offsets, -2)


def _gx_sliced(code, c_q, c_1, x, sk, G, g_coef):
    """``code c_q + c_1 + x sk (+ G g_coef)`` on a large CPU tensor, slice by slice (one pass)."""
    k = x.shape[-1]
    x2, q2 = x.reshape(-1, k), code.reshape(-1, k)
    G2 = None if G is None else G.reshape(-1, k)
    cq, c1, s2 = c_q.reshape(-1, 1), c_1.reshape(-1, 1), sk.reshape(-1, 1)
    gc2 = None if G is None else torch.as_tensor(g_coef).expand(*c_q.shape).reshape(-1, 1)
    gx2 = torch.empty_like(x2)
    for s, e in _row_slices(x2.shape[0], k):
        g = torch.mul(q2[s:e], cq[s:e], out=gx2[s:e]).add_(c1[s:e]).addcmul_(x2[s:e], s2[s:e])
        if G2 is not None:
            g.addcmul_(G2[s:e], gc2[s:e])
    return gx2.reshape(x.shape)


def _affine_backward(levels, method, relu, stats_grad, x, code, lo, span, a, qbar, tbar, inv, G, coef, ga, gc,
                     out=None, plain=False):
    """``dL/dx`` from ``G`` (weighted by ``coef``) on ``q`` and ``ga``, ``gc`` on the fit.

    ``code`` may be ``None`` when the fit gets no gradient; ``out`` may be the ``code``
    tensor itself (it is consumed) or a scratch tensor that receives the result.
    """
    n = x.shape[-1]
    scale = levels / span  # dq/dx of the straight-through residual q = u + sg(code - u)
    if not (stats_grad and (ga is not None or gc is not None)):
        if G is None:
            return torch.zeros_like(x)
        gx = torch.mul(G, scale * coef, out=out) if out is not None else G * (scale * coef)
        if method == "ste_clip":  # hardtanh STE: the gradient of u.clamp(-1/2, L - 1/2)
            u = (x - lo) / span * levels - 0.5
            gx.mul_((u >= -0.5) & (u <= levels - 0.5))
        return gx
    if ga is None:
        ga = torch.zeros_like(gc)
    if gc is None:
        gc = torch.zeros_like(ga)
    k = (ga * inv).div_(n)
    gn = gc / n
    sa = scale * a
    sk = scale * k
    # dq/dx dL/dq + dt/dx dL/dt, per block as coefficients of G, t (x or relu x), q and 1:
    #   q: -2 a k s (+ k from dt/dx),  1: s (2 a k qbar - k tbar - a gc / n) (+ gc / n - k qbar)
    if relu:  # dt/dx = 1[x > 0]
        c_q = sa * k * -2.0
        c_1 = torch.addcmul(torch.addcmul(-sa * gn, 2.0 * sa * k, qbar), sk, tbar, value=-1.0)
        inner = torch.addcmul(torch.addcmul(gn, k, qbar, value=-1.0), x, sk)
        inner.addcmul_(code, k).mul_(x > 0)
        gx = (torch.mul(code, c_q, out=out) if out is not None else code * c_q).add_(c_1).add_(inner)
    else:  # dt/dx = 1: q gets k (1 - 2 s a), 1 gets gc/n (1 - s a) - k (qbar (1 - 2 s a) + s tbar)
        u = (sa * -2.0).add_(1.0)
        c_q = k * u
        c_1 = torch.addcmul(scale * tbar, qbar, u).mul_(k)
        c_1 = torch.addcmul(c_1, gn, sa).sub_(gn).neg_()
        if not plain and out is None and x.device.type == "cpu" and x.numel() > _SMALL:
            return _gx_sliced(code, c_q, c_1, x, sk, G, None if G is None else scale * coef)
        gx = torch.mul(code, c_q, out=out) if out is not None else code * c_q
        gx.add_(c_1).addcmul_(x, sk)
    if G is not None:
        gx.addcmul_(G, scale * coef)
    return gx


def _fused_backward(levels, method, relu, stats_grad, x, code, lo, span, a, qbar, tbar, inv, gy, plain):
    """``dL/dx`` of ``gain * q + offset`` from its gradient ``gy`` (``code``: the kept codes)."""
    ga = gc = None
    if stats_grad:
        gc = gy.sum(-1, keepdim=True)
        ga = torch.addcmul(_rowdot(gy, code, plain=plain), qbar, gc, value=-1.0)  # sum gy (q - qbar)
    return _affine_backward(levels, method, relu, stats_grad, x, code, lo, span, a, qbar, tbar, inv, gy, a,
                            ga, gc, plain=plain)


#: Environment variable that turns :func:`torch.compile` on for the fast path (``1``).
COMPILE_ENV = "TBNN_COMPILE"
_COMPILED: dict = {}


def _compiled(fn):
    """``torch.compile(fn)``, made once per process (compilation happens on the first call)."""
    c = _COMPILED.get(fn)
    if c is None:
        c = _COMPILED[fn] = torch.compile(fn, dynamic=None)
    return c


def compile_wanted(compile: bool | None = None) -> bool:
    """Whether the fast path runs through :func:`torch.compile`: ``compile`` if given, else
    the environment variable ``TBNN_COMPILE`` (``1``, ``true``, ``yes`` or ``on``)."""
    if compile is None:
        return os.environ.get(COMPILE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return bool(compile)


def _setup(ctx, levels, method, relu, detach_stats, compiled):
    ctx.set_materialize_grads(False)
    ctx.levels, ctx.method, ctx.relu, ctx.compiled = levels, method, relu, compiled
    ctx.stats_grad = method == "dat" and not detach_stats


class _AffineCodes(torch.autograd.Function):
    """``(q, gain, offset)`` of the affine grid and its read-out (``q`` carries the STE residual)."""

    @staticmethod
    def forward(ctx, x, lo, hi, levels, lam, relu, method, detach_stats, xsum=None, compiled=False):
        body = _compiled(_affine_forward) if compiled else _affine_forward
        code, _, span, gain, offset, qbar, tbar, inv = body(x, lo, hi, levels, lam, relu, method, xsum, False,
                                                            False, compiled)
        _setup(ctx, levels, method, relu, detach_stats, compiled)
        if not ctx.stats_grad:
            ctx.mark_non_differentiable(gain, offset)
        ctx.save_for_backward(x, code, lo, span, gain, qbar, tbar, inv)
        return code, gain, offset

    @staticmethod
    @once_differentiable
    def backward(ctx, gq, ga, gc):
        x, code, lo, span, a, qbar, tbar, inv = ctx.saved_tensors
        if ctx.stats_grad and gc is not None:  # offset = tbar - gain qbar also moves the gain
            ga = -gc * qbar if ga is None else ga - gc * qbar
        back = _compiled(_affine_backward) if ctx.compiled else _affine_backward
        gx = back(ctx.levels, ctx.method, ctx.relu, ctx.stats_grad, x, code, lo, span, a, qbar, tbar, inv,
                  gq, 1.0, ga, gc, plain=ctx.compiled)
        return gx, None, None, None, None, None, None, None, None, None


class _AffineFused(torch.autograd.Function):
    """The dequantized tensor ``gain * q + offset`` of the affine grid, in one node.

    Keeps the codes for the backward when the fit gets a gradient (rebuilding them would
    cost two passes over the data), else writes the output over them.
    """

    @staticmethod
    def forward(ctx, x, lo, hi, levels, lam, relu, method, detach_stats, xsum=None, compiled=False):
        body = _compiled(_affine_forward) if compiled else _affine_forward
        _setup(ctx, levels, method, relu, detach_stats, compiled)
        y, code, span, gain, _, qbar, tbar, inv = body(x, lo, hi, levels, lam, relu, method, xsum, True,
                                                       ctx.stats_grad, compiled)
        ctx.save_for_backward(x, code, lo, span, gain, qbar, tbar, inv)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, code, lo, span, a, qbar, tbar, inv = ctx.saved_tensors
        back = _compiled(_fused_backward) if ctx.compiled else _fused_backward
        gx = back(ctx.levels, ctx.method, ctx.relu, ctx.stats_grad, x, code, lo, span, a, qbar, tbar, inv, gy,
                  ctx.compiled)
        return gx, None, None, None, None, None, None, None, None, None


def rectified_input(x: Tensor, grid: str | None, target: str) -> Tensor:
    """A rectifying neuron's grid map clips at zero: ``v = clip(x / max, 0, 1)``.

    With the ``relu`` read-out target everything (codes, fit, gradient) depends on
    ``relu(x)`` only, so the clipped region gets zero gradient, as the derivative of the
    grid map ``f`` says. Other grids and targets pass ``x`` unchanged.
    """
    return torch.relu(x) if rectifies(grid, target) else x


def rectifies(grid: str | None, target: str) -> bool:
    """Whether :func:`rectified_input` rectifies: the ``rectify`` and ``unit`` grids with the
    ``relu`` target."""
    return grid in ("rectify", "unit") and target == "relu"


def affine_fast(
    x: Tensor,
    block: int | None,
    grid: str,
    levels: int,
    lam: float,
    target: str = "x",
    method: str = "dat",
    detach_stats: bool = False,
    fused: bool = True,
    grid_levels: int | None = None,
    check: str | None = None,
    compile: bool | None = None,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Affine-grid quantization along the last axis of ``x`` in one autograd node per block group.

    Equal in value and gradient to :func:`affine_codes` + :func:`ridge_fit` (or the STE
    map) on :func:`to_blocks` blocks, without padding or masks. ``fused``: returns the
    dequantized tensor shaped like ``x``; otherwise ``(q, gain, offset)`` with ``q`` shaped
    like ``x`` and ``gain``, ``offset`` of shape ``[..., nb, 1]``. ``grid_levels`` (default
    ``levels``) picks the ``meanstd`` width. No validation, except that ``check`` names
    ``x`` in the error raised when the block statistics show a NaN or an inf (the
    ``rectify`` grid cannot see a ``-inf``: check those before). ``compile`` (default: the
    ``TBNN_COMPILE`` environment variable, see :func:`compile_wanted`): run the forward and
    backward arithmetic through :func:`torch.compile`, which fuses the passes (the first
    call of each shape family pays the compilation; same codes, values to float rounding).
    """
    if not x.is_floating_point():  # codes and read-out are real numbers
        x = x.to(torch.get_default_dtype())
    compiled = compile_wanted(compile)
    x = rectified_input(x, grid, target)
    parts = _split_blocks(x, block)
    # relu(x) of a rectified x is x itself (and its gradient mask is relu's, outside the node)
    relu = target == "relu" and grid not in ("rectify", "unit")
    gl = levels if grid_levels is None else grid_levels
    outs = []
    for p in parts:
        with torch.no_grad():
            lo, hi, finite, xsum = _grid_fast(p.detach(), grid, gl, check is not None, compiled)
        if check is not None and not finite:
            check_finite(x, check)
        if not (p.requires_grad and torch.is_grad_enabled()):  # no graph to build: the forward alone
            body = _compiled(_affine_forward) if compiled else _affine_forward
            r = body(p, lo, hi, levels, float(lam), relu, method, xsum, fused, False, compiled)
            outs.append(r[0] if fused else (r[0], r[3], r[4]))
            continue
        fn = _AffineFused if fused else _AffineCodes
        outs.append(fn.apply(p, lo, hi, levels, float(lam), relu, method, detach_stats, xsum, compiled))
    lead = x.shape[:-1]
    if fused:
        ys = [y.reshape(*lead, -1) for y in outs]
        return ys[0] if len(ys) == 1 else torch.cat(ys, -1)
    qs = [o[0].reshape(*lead, -1) for o in outs]
    q = qs[0] if len(qs) == 1 else torch.cat(qs, -1)
    gain = outs[0][1] if len(outs) == 1 else torch.cat([o[1] for o in outs], -2)
    offset = outs[0][2] if len(outs) == 1 else torch.cat([o[2] for o in outs], -2)
    return q, gain, offset


def grid_values(x: Tensor, block: int | None, grid: str, levels: int) -> Tensor:
    r"""The grid coordinate of every element along the last axis, shaped like ``x`` (no gradient).

    .. math::

        v = \mathrm{clip}\Big(\frac{x - lo_b}{hi_b - lo_b}, 0, 1\Big)

    with the block range :math:`(lo_b, hi_b)` of :func:`grid_range`, from the same block
    statistics as :func:`affine_fast` (unpadded blocks), so that ``min(floor(L v), L - 1)``
    are its codes: the membrane a binary neuron starts its integrate-and-fire from.

    >>> grid_values(torch.tensor([[0.5, 2.0, -1.0, 1.0]]), 2, "rectify", 16).tolist()
    [[0.25, 1.0, 0.0, 1.0]]
    """
    x = x.detach()
    if x.dtype not in (torch.float32, torch.float64):  # integers and half precision: in float32
        x = x.to(torch.float32)
    lead = x.shape[:-1]
    outs = []
    for p in _split_blocks(x, block):
        lo, hi, _, _ = _grid_stats(p, grid, levels)
        outs.append(torch.sub(p, lo).div_(hi - lo).clamp_(0.0, 1.0).reshape(*lead, -1))
    return outs[0] if len(outs) == 1 else torch.cat(outs, -1)
