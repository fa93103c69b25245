"""Functional core: quantization as additive noise, undone by the denoising affine transform.

Implements the method of Ye et al., *Robust Training of Neural Networks at Arbitrary
Precision and Sparsity*, arXiv:2409.09245, §3. Every function here is
a pure function on tensors and is differentiable.

For a tensor ``x`` cut into blocks of ``B`` contiguous elements along ``dim`` (the axis a
following matmul contracts):

1. grid map ``u = f(x)``: affine ``u = L (x - lo) / (hi - lo) - 1/2`` on a grid of ``L = 2^k``
   levels (``lo``, ``hi`` detached block statistics), or linear ``u = x / s`` for ternary and
   sparse codes;
2. quantization as additive noise ``q = u + sg(round_clip(u) - u)``: the rounding residual is
   the only detached quantity;
3. ridge dequantization of the *original* ``x`` on ``q`` within the block::

       g(q) = Cov(x, q) / (Var(q) + lam) * (q - mean q) + mean x        (affine)
       g(q) = mean(q x) / (mean(q^2) + lam) * q                          (linear)

   with population statistics. Gradients flow through ``q`` and every statistic.

The STE baseline replaces ``g`` by the fixed inverse grid map ``x^ = s_f q + b_f``.

Every dequantized block is affine in its integer codes, ``x^ = gain * q + offset``; the
:class:`BlockCodes` record holds exactly that, which gives the integer matmul shortcut
:func:`quantized_matmul`.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .validate import check_block, check_choice, check_lam, check_tensor, compute_in_float32

__all__ = [
    "WEIGHT_BITS",
    "METHODS",
    "GRIDS",
    "BlockCodes",
    "ridge_dequantize",
    "ridge_fit",
    "fake_quantize",
    "quantize",
    "grid_values",
    "dequantize",
    "quantized_matmul",
    "nm_mask",
    "magnitude_mask",
    "parse_sparsity",
    "validate_bits",
    "check_finite",
    "to_blocks",
    "from_blocks",
    "grid_range",
    "quantize_reference",
    "compile_wanted",
]

#: Bit widths a weight or activation tensor can be quantized to (1.5 = ternary).
WEIGHT_BITS: tuple[float, ...] = (1, 1.5, 2, 3, 4, 8)
#: ``dat``: ridge dequantizer (the paper); ``ste``: fixed inverse grid map;
#: ``ste_clip``: the same with the hardtanh-clipped straight-through gradient.
METHODS: tuple[str, ...] = ("dat", "ste", "ste_clip")
#: How ``lo`` and ``hi`` of the affine grid come from a block: ``minmax`` (two-sided, 1-bit
#: threshold at the midpoint), ``meanstd`` (mean ± c·std, 1-bit threshold at the block
#: mean), ``rectify`` (``lo = 0``, ``hi`` = block maximum: a neuron that cannot fire negative
#: spikes, the network's nonlinearity).
GRIDS: tuple[str, ...] = ("minmax", "meanstd", "rectify")

_TINY = 1e-12


# --------------------------------------------------------------------------------------
# validation


def check_finite(x: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity."""
    check_tensor(x, name, allow_empty_axis=-1)
    # a finite sum proves every element finite (one reduction, no boolean temporary); only
    # when it is not (a NaN, an inf, or an overflowing sum) is the element-wise test run
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x.detach().sum())):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite; it holds NaN or inf values.")


def validate_bits(bits: float, name: str = "bits") -> float:
    """Return ``bits`` if it is one of :data:`WEIGHT_BITS`, else raise ``ValueError``."""
    if isinstance(bits, bool) or bits not in WEIGHT_BITS:
        allowed = ", ".join(str(b) for b in WEIGHT_BITS)
        raise ValueError(f"{name} must be one of {allowed} (1.5 = ternary); got {bits!r}.")
    return bits


def _validate_common(lam: float, block: int | None, method: str, grid: str | None) -> None:
    check_lam(lam)
    check_block(block)
    check_choice(method, METHODS, "method")
    if grid is not None:
        check_choice(grid, GRIDS, "grid")


def parse_sparsity(sparsity: str | float | None) -> tuple[int, int] | float | None:
    """Parse ``"M:N"`` (keep M of every N) or a magnitude fraction in ``[0, 1)`` to prune.

    Returns ``(M, N)``, a float fraction, or ``None``.
    """
    if sparsity is None:
        return None
    if isinstance(sparsity, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", sparsity)
        if m is None:
            raise ValueError(
                f"sparsity must be 'M:N' with integers 0 < M <= N (e.g. '2:4') or a fraction in "
                f"[0, 1); got {sparsity!r}."
            )
        keep, group = int(m.group(1)), int(m.group(2))
        if not 0 < keep <= group:
            raise ValueError(f"sparsity 'M:N' needs 0 < M <= N; got {sparsity!r}.")
        return keep, group
    if isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool):
        if not 0 <= float(sparsity) < 1:
            raise ValueError(f"sparsity as a fraction must lie in [0, 1); got {sparsity!r}.")
        return float(sparsity)
    raise ValueError(f"sparsity must be 'M:N', a fraction in [0, 1) or None; got {sparsity!r}.")


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


def _bmean(t: Tensor, valid: Tensor, n: Tensor) -> Tensor:
    """Mean over the valid elements of each block, keeping the block axis: ``[..., nb, 1]``."""
    return (t * valid).sum(-1, keepdim=True) / n.unsqueeze(-1)


# --------------------------------------------------------------------------------------
# ridge dequantizer


def ridge_fit(
    x: Tensor, q: Tensor, valid: Tensor, n: Tensor, lam: float, affine: bool = True
) -> tuple[Tensor, Tensor]:
    """Closed-form ridge regression of ``x`` on ``q`` within each block (last axis).

    Solves ``min_{s,b} 1/(2N) ||s q + b - x||^2 + (lam/2) s^2`` (``b = 0`` for the linear
    form) and returns ``(gain, offset)`` of shape ``[..., nb, 1]`` with ``g(q) = gain*q +
    offset``::

        gain = Cov(x, q) / (Var(q) + lam),  offset = mean(x) - gain * mean(q)   (affine)
        gain = mean(q x) / (mean(q^2) + lam), offset = 0                        (linear)

    Statistics are population moments (divide by N) over the ``valid`` elements. A block
    with ``Var(q) + lam == 0`` (all codes equal, ``lam = 0``) gets ``gain = 0``: its output
    is ``mean(x)``, never NaN. Ye et al. (2024), arXiv:2409.09245, Eq. (ridge DAT).
    """
    if affine:
        qbar = _bmean(q, valid, n)
        xbar = _bmean(x, valid, n)
        qc = torch.where(valid, q - qbar, torch.zeros((), dtype=q.dtype, device=q.device))
        cov = _bmean(qc * x, valid, n)
        den = _bmean(qc * qc, valid, n) + lam
    else:
        cov = _bmean(q * x, valid, n)
        den = _bmean(q * q, valid, n) + lam
    ok = den > 0
    gain = torch.where(ok, cov / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    offset = xbar - gain * qbar if affine else torch.zeros_like(gain)
    return gain, offset


@compute_in_float32
def ridge_dequantize(
    x: Tensor,
    q: Tensor,
    lam: float = 0.01,
    dim: int = -1,
    affine: bool = True,
    block: int | None = None,
) -> Tensor:
    """Ridge dequantizer ``g(q)``: the least-squares affine (or linear) read-out of ``x`` from ``q``.

    ``g(q) = Cov(x,q)/(Var(q)+lam) * (q - mean q) + mean x`` along ``dim`` (population
    statistics), or ``mean(q x)/(mean(q^2)+lam) * q`` when ``affine=False``; over blocks of
    ``block`` elements when given (``None``: the whole axis). Differentiable in ``x`` and
    ``q`` through every statistic (Ye et al. 2024, arXiv:2409.09245, §3).

    ``lam -> 0`` with two distinct codes returns the two conditional means of ``x``;
    ``lam -> inf`` returns ``mean(x)`` (affine) or 0 (linear).
    """
    _validate_common(lam, block, "dat", None)
    check_finite(x, "x")
    check_finite(q, "q")
    if x.shape != q.shape:
        raise ValueError(f"q must have the shape of x {tuple(x.shape)}; got {tuple(q.shape)}.")
    dim = _check_dim(x, dim)
    xb, valid, n = to_blocks(x, dim, block)
    qb, _, _ = to_blocks(q, dim, block)
    gain, offset = ridge_fit(xb, qb, valid, n, lam, affine)
    return from_blocks(gain * qb + offset, dim, x.shape[dim])


def _check_dim(x: Tensor, dim: int) -> int:
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension; got a scalar.")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must lie in [{-x.dim()}, {x.dim() - 1}] for x of rank {x.dim()}; got {dim}.")
    return dim % x.dim()


# --------------------------------------------------------------------------------------
# sparsity masks


def nm_mask(x: Tensor, keep: int, group: int, dim: int = -1) -> Tensor:
    """Boolean mask keeping the ``keep`` largest-magnitude of every ``group`` consecutive elements.

    Groups run along ``dim``; a ragged last group keeps ``min(keep, its length)``.
    (Structured M:N sparsity, e.g. NVIDIA 2:4; Mishra et al. 2021, arXiv:2104.08378.)
    """
    for name, v in (("group", group), ("keep", keep)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}.")
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
    maximum (clipped at a tiny positive value).
    """
    xb = xb.detach()
    if grid == "minmax":
        lo = torch.where(valid, xb, torch.full_like(xb, float("inf"))).amin(-1, keepdim=True)
        hi = torch.where(valid, xb, torch.full_like(xb, float("-inf"))).amax(-1, keepdim=True)
    elif grid == "meanstd":
        mu = _bmean(xb, valid, n)
        sd = _bmean(torch.where(valid, xb - mu, torch.zeros_like(xb)) ** 2, valid, n).sqrt()
        c = 1.0 if levels == 2 else 2.0
        lo, hi = mu - c * sd, mu + c * sd
    else:  # rectify
        hi = torch.where(valid, xb, torch.full_like(xb, float("-inf"))).amax(-1, keepdim=True)
        hi = hi.clamp_min(_TINY)
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
    if grid == "minmax":
        lo, hi = xp.amin(-1, keepdim=True), xp.amax(-1, keepdim=True)
    elif grid == "meanstd":
        total = xp.sum(-1, keepdim=True)
        mu = total / xp.shape[-1]
        sd = (_rowdot(xp, xp, shift=mu, plain=plain) / xp.shape[-1]).sqrt()
        c = 1.0 if levels == 2 else 2.0
        lo, hi = mu - c * sd, mu + c * sd
    else:  # rectify: hi >= _TINY > lo, never a constant grid
        hi = xp.amax(-1, keepdim=True).clamp_min(_TINY)
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


def _affine_stats(x, code, lo, span, levels, lam, relu, method, xsum=None, plain=False):
    """Per-block ``(gain, offset, qbar, tbar, inv)`` of the codes (the last three ``None`` for the STE).

    ``xsum``: the block sums of ``x`` if already known (spares a pass).
    """
    n = x.shape[-1]
    if method != "dat":  # STE: the fixed inverse grid map, the centre of each bin
        gain = span / levels
        return gain, lo + 0.5 * gain, None, None, None
    t = torch.relu(x) if relu else x
    sq = code.sum(-1, keepdim=True)
    st = xsum if xsum is not None and not relu else t.sum(-1, keepdim=True)
    sqt = _rowdot(code, t, plain=plain)
    sqq = sq if levels == 2 else _rowdot(code, code, plain=plain)  # 0/1 codes: q^2 = q
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
    rows = x2.shape[0]
    lo2, sp2 = lo.reshape(-1, 1), span.reshape(-1, 1)
    t2 = torch.relu(x2) if relu else x2
    code2 = torch.empty_like(x2)
    sums = torch.empty(4, rows, 1, dtype=x.dtype, device=x.device)
    sq, st, sqt, sqq = sums
    need_st = xsum is None or relu
    slices = _row_slices(rows, k)
    buf = _scratch((slices[0][1] - slices[0][0]) * k, x.dtype, x.device).view(-1, k)
    for s, e in slices:
        c = _codes_into(x2[s:e], lo2[s:e], sp2[s:e], levels, out=code2[s:e])
        torch.sum(c, -1, keepdim=True, out=sq[s:e])
        if need_st:
            torch.sum(t2[s:e], -1, keepdim=True, out=st[s:e])
        torch.sum(torch.mul(c, t2[s:e], out=buf[: e - s]), -1, keepdim=True, out=sqt[s:e])
        if levels != 2:
            torch.sum(torch.mul(c, c, out=buf[: e - s]), -1, keepdim=True, out=sqq[s:e])
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


def _rectify(x: Tensor, grid: str | None, target: str) -> Tensor:
    """A rectifying neuron's grid map clips at zero: ``v = clip(x / max, 0, 1)``.

    With the ``relu`` read-out target everything (codes, fit, gradient) depends on
    ``relu(x)`` only, so the clipped region gets zero gradient, as the derivative of the
    grid map ``f`` says. Other grids and targets pass ``x`` unchanged.
    """
    return torch.relu(x) if grid == "rectify" and target == "relu" else x


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
    x = _rectify(x, grid, target)
    parts = _split_blocks(x, block)
    # relu(x) of a rectified x is x itself (and its gradient mask is relu's, outside the node)
    relu = target == "relu" and grid != "rectify"
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


def _linear_codes(xs: Tensor, valid: Tensor, n: Tensor, bits: float, clip_grad: bool) -> tuple[Tensor, Tensor]:
    """Symmetric linear codes ``q = u + sg(code - u)``, ``u = x / s``; returns ``(q, s)``.

    Ternary (``bits = 1.5``): ``s = 1.4 mean|x|`` so the threshold is ``0.7 mean|x|`` (TWN,
    Li et al. 2016, arXiv:1605.04711), codes ``{-1, 0, 1}``. Sparse ``k``-bit: nonzero
    elements get ``sign(x) * m`` with ``m`` in ``1..2^(k-1)``, ``s = 2 mean|x_kept| /
    (2^(k-1) + 1)``; pruned elements get code 0.
    """
    a = xs.detach().abs()
    if bits == 1.5:
        s = (1.4 * _bmean(a, valid, n)).clamp_min(_TINY)
        u = xs / s
        code = torch.floor(u.detach() + 0.5).clamp(-1, 1)
        lim = 1.0
    else:
        mags = 2 ** (int(bits) - 1)
        kept = (a > 0) & valid
        mean_kept = (a * kept).sum(-1, keepdim=True) / kept.sum(-1, keepdim=True).clamp_min(1)
        s = (2.0 * mean_kept / (mags + 1)).clamp_min(_TINY)
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
    _validate_common(lam, block, method, grid)
    if finite or not torch.is_tensor(x):
        check_finite(x, "x")
    else:
        check_tensor(x, "x", allow_empty_axis=dim if isinstance(dim, int) else None)
    dim = _check_dim(x, dim)
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
        x = _rectify(x, grid, target)
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

    The 1-bit DAT output takes at most 2 values per block, k-bit at most ``2^k``.
    """
    affine = bits != 1.5 and sparsity is None
    # the fast path's minmax/meanstd grid statistics catch a NaN or an inf (one pass fewer)
    own_check = affine and grid != "rectify"
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


def dequantize(codes: BlockCodes) -> Tensor:
    """Map :class:`BlockCodes` back to real values: ``gain * q + offset`` per block."""
    return codes.dequantize()


def blocked_code_matmul(xc: BlockCodes, wc: BlockCodes) -> Tensor:
    """``X^ W^T`` from codes blocked along the same contracted axis (the last of both).

    With ``X^ = a q + c`` and ``W^ = a' q' + c'`` per block (``n`` elements)::

        sum_k X^_ik W^_jk = sum_b [ a a' (Q Q'^T) + a c' sum(q) + c a' sum(q') + n c c' ]

    one integer-code matmul per block plus rank-1 corrections, exact up to float rounding.
    """
    xq, wq = xc.q, wc.q
    if xq.shape[-2:] != wq.shape[-2:]:
        raise ValueError("x and w must be blocked the same way along the contracted axis.")
    a, c = xc.gain.squeeze(-1), xc.offset.squeeze(-1)  # [M, nb]
    a2, c2 = wc.gain.squeeze(-1), wc.offset.squeeze(-1)  # [N, nb]
    qq = torch.einsum("mbk,nbk->mnb", xq, wq)  # integer-valued
    sx, sw = xq.sum(-1), wq.sum(-1)
    out = torch.einsum("mb,nb,mnb->mn", a, a2, qq)
    out = out + (a * sx) @ c2.T + c @ (a2 * sw).T + (c * xc.n) @ c2.T
    return out


@compute_in_float32
def quantized_matmul(
    x: Tensor,
    w: Tensor,
    x_kwargs: dict | None = None,
    w_kwargs: dict | None = None,
) -> Tensor:
    """Matmul ``x @ w.T`` of the DAT-dequantized ``x`` (rows) and ``w`` (``[out, in]``, rows).

    Computed by :func:`blocked_code_matmul` on integer codes; equals
    ``fake_quantize(x, **x_kwargs) @ fake_quantize(w, **w_kwargs).T`` to float rounding
    (Ye et al. 2024, matmul shortcut). Both are blocked along their last axis with the same
    ``block`` (taken from ``x_kwargs``, default 128).
    """
    xk = dict(x_kwargs or {})
    wk = dict(w_kwargs or {})
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x must be [M, K] and w [N, K] with the same K; got x {tuple(x.shape)} and w {tuple(w.shape)}."
        )
    check_finite(x, "x")
    check_finite(w, "w")
    block = xk.pop("block", 128)
    wk.pop("block", None)
    xk.pop("dim", None)
    wk.pop("dim", None)
    xc = quantize(x, block=block, dim=-1, **xk)
    wc = quantize(w, block=block, dim=-1, **wk)
    return blocked_code_matmul(xc, wc)
