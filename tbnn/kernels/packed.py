r"""Packed bit planes and the per-block integer sums of a layer by AND + popcount.

A layer's input current is built from per-block integer sums (the matmul shortcut of Ye
et al., arXiv:2409.09245): for input rows ``q`` (spikes or integer codes, ``q >= 0``),
integer weight codes ``Q`` and read-out blocks ``b`` of the input features,

.. math::

    N_b[m, o] = \sum_{i \in b} q_{m i} Q_{o i}, \qquad S_b[m] = \sum_{i \in b} q_{m i}.

Both sides are split into bit planes packed 64 per machine word: ``q = sum_j x_j wx_j``
(one plane per time step with the step weights ``wx_j = w_t``, or the binary digits of a
code with ``wx_j = 2^j``) and ``Q = sum_p w_p c_p`` (one plane for 1-bit codes, ``k`` for
``k``-bit codes, two for ternary or other signed codes: the digits of ``max(Q, 0)`` with
``c_p = 2^p`` and of ``max(-Q, 0)`` with ``c_p = -2^p``). Then

.. math::

    N_b[m, o] = \sum_j \sum_p wx_j\, c_p\, \mathrm{popcount}(x_j[m, b] \wedge w_p[o, b])

and ``S_b`` is the same sum with an all-ones weight row (an extra output column). Each
read-out block is padded to whole words (``wpb = ceil(block / 64)``), so a block never
shares a word with the next; padding bits are 0.

:func:`block_terms` runs the compiled kernel (``popcount.c``, :mod:`tbnn.kernels.build`); :func:`block_terms_reference`
is the same function in torch (a byte look-up table), used when no kernel can be built and by the tests.

>>> import torch
>>> q = torch.tensor([[1, 0, 1], [1, 1, 1]])          # 2 rows of spikes, K = 3
>>> Q = torch.tensor([[1, 1, 0], [-1, 0, 1]])          # 2 outputs, ternary codes
>>> pw = pack_weights(Q, block=None)
>>> n, s = row_terms(bit_planes(q), pw, impl="torch")
>>> n[0].tolist(), s[0].flatten().tolist()             # one block: q @ Q.T and row sums
([[1, 0], [2, 0]], [2, 3])
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["IMPLS", "WORD", "PackedWeights", "Planes", "and_popcount", "best_path", "bit_planes",
           "block_current", "block_readout", "block_sums", "block_terms", "block_terms_reference",
           "code_planes", "coef_tensor", "kernel", "kernel_path", "pack_bits",
           "pack_bits_reference", "pack_weights", "packed_rows", "rest_reference", "row_readout",
           "row_terms", "same_words", "step_planes", "words_per_block"]

#: Bits per packed word.
WORD = 64
#: Implementations of :func:`row_terms`: the compiled kernel or the torch reference.
IMPLS: tuple[str, ...] = ("c", "torch")

_BIT_ORDER = 2 ** torch.arange(8, dtype=torch.int64)  # feature i of a byte at bit i
_POPCOUNT8 = torch.tensor([i.bit_count() for i in range(256)], dtype=torch.int64)


def words_per_block(block: int | None, k: int) -> tuple[int, int, int]:
    """``(bs, nb, wpb)``: block length (``None``: all ``k`` features), blocks, and words per block.

    >>> words_per_block(128, 200), words_per_block(None, 200)
    ((128, 2, 2), (200, 1, 4))
    """
    bs = k if block is None or block >= k else int(block)
    bs = max(bs, 1)
    return bs, -(-k // bs), -(-bs // WORD)


def same_words(block: int | None, k: int) -> bool:
    """Whether rows of ``k`` features packed for read-out blocks ``block`` have the words of rows packed
    as one block (``block=None``): every block a whole number of words, none padded.

    >>> same_words(128, 256), same_words(128, 200), same_words(100, 200), same_words(None, 70)
    (True, True, False, True)
    """
    bs, nb, wpb = words_per_block(block, k)
    return nb == 1 or (bs % WORD == 0 and nb * wpb == -(-k // WORD))


@functools.cache
def kernel():
    """The compiled kernel library (``ctypes.CDLL``), or ``None`` with one line on stderr saying why."""
    from . import build

    try:
        lib = build.load()
        why = "no C compiler found (set CC)"
    except (RuntimeError, OSError) as err:
        lib, why = None, str(err)
    if lib is None:
        print(f"tbnn: the packed popcount kernel is not available ({why}); using the dense engine.",
              file=sys.stderr)
    return lib


@functools.cache
def best_path() -> int | None:
    """The fastest dispatch path (0 portable, 1 POPCNT, 2 AVX2, 3 AVX-512 VPOPCNTDQ) that this CPU
    runs and that passes a self-test, or ``None`` without a kernel.

    Each path the CPU offers is checked once per process against :func:`block_terms_reference`
    (terms and fused read-out) on a small random problem (ragged blocks, several planes, signed codes, a block longer
    than the AVX2 path's byte counters); a path that disagrees is skipped, with one line on
    stderr.
    """
    lib = kernel()
    if lib is None:
        return None
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(-3, 4, (11, 2600), generator=gen)
    pw = _pack_weights_with(codes, None, True, pack_bits_reference)
    active = torch.tensor([[1.0], [0.02], [0.0]])  # a dense row, a sparse one (silent words), a silent one
    planes = bit_planes(torch.randint(0, 8, (3, 2600), generator=gen) * (torch.rand(3, 2600, generator=gen) < active))
    x, coefs = _packed_rows(planes, None, "torch"), torch.tensor(planes.coefs)
    ref = block_terms_reference(x, coefs, pw)
    gains = torch.randn(1, 3, generator=gen).to(torch.float32).to(torch.float64)
    ref_cur = block_readout(x, coefs, pw, gains, impl="torch")
    bits = planes.bits.reshape(-1, 2600)
    ref_words = [pack_bits_reference(bits, block) for block in (None, 100)]
    # 1-bit weights and 4 planes (the AVX-512 path's plane-by-plane loop), 41 outputs: passes of 32, 8, 1
    pw1 = _pack_weights_with(torch.randint(0, 2, (41, 700), generator=gen), 128, True, pack_bits_reference)
    planes1 = bit_planes(torch.randint(0, 16, (3, 700), generator=gen) * (torch.rand(3, 700, generator=gen) < active))
    x1, coefs1 = _packed_rows(planes1, 128, "torch"), torch.tensor(planes1.coefs)
    ref1 = block_terms_reference(x1, coefs1, pw1)
    for path in range(lib.tb_best_path(), 0, -1):
        cur = block_readout(x, coefs, pw, gains, path=path)
        words = [pack_bits(bits, block, path=path) for block in (None, 100)]
        if (torch.equal(block_terms(x, coefs, pw, path=path), ref) and all(map(torch.equal, cur, ref_cur))
                and torch.equal(block_terms(x1, coefs1, pw1, path=path), ref1)
                and all(map(torch.equal, words, ref_words)) and _fire_self_test(lib, path)):
            return path
        print(f"tbnn: the kernel's {lib.tb_path_name(path).decode()} path failed its self-test; not used.",
              file=sys.stderr)
    return 0


def _fire_self_test(lib, path: int) -> bool:
    """The compiled integrate-and-fire (:mod:`tbnn.kernels.fire`) on ``path`` against the firing loop in torch."""
    from tbnn.core.firing import binary_thresholds, integrate_and_fire

    levels = torch.arange(0, 33, dtype=torch.float32) / 32  # every grid level of T = 5, 1 included
    below, above = (torch.nextafter(levels, torch.full_like(levels, e)) for e in (-1.0, 2.0))  # one ulp off
    v = torch.cat([levels, below, above, torch.rand(200, generator=torch.Generator().manual_seed(1))])
    want = integrate_and_fire(v, binary_thresholds(5))
    r, spikes = v.clone(), torch.empty(5, v.numel(), dtype=torch.uint8)
    th = torch.tensor(binary_thresholds(5), dtype=torch.float32)
    w = 2.0 ** torch.arange(4, -1, -1, dtype=torch.float32)
    q = (w.view(-1, 1) * want).sum(0)
    bad = lib.tb_fire(path, r.data_ptr(), q.data_ptr(), v.numel(), 5, th.data_ptr(), w.data_ptr(), spikes.data_ptr())
    return bad == 0 and torch.equal(spikes.view(torch.bool), want)


def kernel_path() -> str | None:
    """The kernel's dispatch path in use (``avx512_vpopcntdq``, ``avx2``, ``popcnt``, ``portable``), or ``None``."""
    path = best_path()
    return None if path is None else _path_name(path)


_path_name = functools.cache(lambda path: kernel().tb_path_name(path).decode())  # a dispatch path's name, once


def _check_bits(bits: Tensor, name: str) -> Tensor:
    if bits.dim() < 2:
        raise ValueError(f"{name} must be a [rows, K] tensor of 0/1 values; got shape {tuple(bits.shape)}.")
    if bits.dtype != torch.bool:
        if bits.is_floating_point() or bits.is_complex():
            raise ValueError(f"{name} must be bool or integer 0/1; got dtype {bits.dtype}.")
        if bits.numel() and not bool(((bits == 0) | (bits == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1.")
        bits = bits != 0
    return bits.contiguous()


def pack_bits_reference(bits: Tensor, block: int | None) -> Tensor:
    """:func:`pack_bits` in torch."""
    bits = _check_bits(bits, "bits")
    rows, k = bits.shape
    bs, nb, wpb = words_per_block(block, k)
    x = torch.nn.functional.pad(bits.to(torch.int64), (0, nb * bs - k)).reshape(rows, nb, bs)
    x = torch.nn.functional.pad(x, (0, wpb * WORD - bs)).reshape(rows, nb * wpb * 8, 8)
    return (x * _BIT_ORDER).sum(-1).to(torch.uint8).view(torch.int64)


def pack_bits(bits: Tensor, block: int | None, impl: str = "c", path: int | None = None) -> Tensor:
    """Pack 0/1 values ``[rows, K]`` into 64-bit words ``[rows, nb * wpb]``, each block padded to whole words
    (``[..., K]`` into ``[..., nb * wpb]``: each row alike).

    Feature ``i`` of block ``b`` is bit ``i % 64`` of word ``b * wpb + i // 64`` (little
    endian); padding bits are 0. Words are returned as ``torch.int64`` (the bits are what
    matter). ``impl="torch"`` (or no kernel) runs :func:`pack_bits_reference`. The kernel
    packs 64 bytes per step on the AVX-512 (byte test masks) and AVX2 (byte move masks)
    paths (``path``: as :func:`block_terms`; default :func:`best_path`).

    >>> pack_bits(torch.tensor([[1, 0, 1, 1]]), block=2, impl="torch").tolist()
    [[1, 3]]
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}.")
    lib = kernel() if impl == "c" else None
    if bits.dim() > 2:  # the rows of every leading index, as one matrix (a contiguous bool input: no copy)
        if lib is None:
            return pack_bits(bits.reshape(-1, bits.shape[-1]), block, impl).reshape(*bits.shape[:-1], -1)
    elif lib is None:
        return pack_bits_reference(bits, block)
    bits = _check_bits(bits, "bits")
    k = bits.shape[-1]
    bs, nb, wpb = words_per_block(block, k)
    out = torch.empty(*bits.shape[:-1], nb * wpb, dtype=torch.int64)
    lib.tb_pack(best_path() if path is None else path, bits.data_ptr(), bits.numel() // max(k, 1), k, bs, wpb,
                out.data_ptr())
    return out


@dataclass
class Planes:
    """Bit planes of input rows: ``bits`` ``[J, M, K]`` (0/1) with integer weights ``coefs`` (``q = sum_j coefs_j bits_j``).

    ``words``: the planes already packed (``[J, M, nb * wpb]`` for read-out blocks ``block``;
    :func:`code_planes`), ``bits`` then ``None``; ``k``: the features ``K``.
    """

    bits: Tensor | None
    coefs: tuple[int, ...]
    words: Tensor | None = None
    block: int | None = None
    k: int = 0

    def __post_init__(self) -> None:
        if self.bits is not None:
            self.k = int(self.bits.shape[-1])


def bit_planes(q: Tensor) -> Planes:
    """The binary digits of non-negative integer rows ``q`` ``[M, K]`` (bool, integer or integer-valued float).

    >>> p = bit_planes(torch.tensor([[3., 0., 2.]]))
    >>> p.bits[:, 0].int().tolist(), p.coefs
    ([[1, 0, 0], [1, 0, 1]], (1, 2))
    """
    if q.dim() != 2:
        raise ValueError(f"q must be a 2-D [rows, K] tensor; got shape {tuple(q.shape)}.")
    if q.dtype == torch.bool:
        return Planes(q.unsqueeze(0), (1,))
    qi = q.to(torch.int64)
    if q.numel() and (bool((qi != q).any()) or int(qi.min()) < 0):
        raise ValueError("q must hold non-negative integers for the packed engine.")
    top = int(qi.max()) if q.numel() else 0
    j = max(top.bit_length(), 1)
    shifts = torch.arange(j, dtype=torch.int64).view(j, 1, 1)
    return Planes(((qi.unsqueeze(0) >> shifts) & 1).bool(), tuple(1 << i for i in range(j)))


def code_planes(q: Tensor, block: int | None, path: int | None = None) -> Planes:
    """:func:`bit_planes` of float32 codes ``q`` ``[M, K]``, packed by the kernel in one pass for read-out
    blocks ``block`` (:func:`bit_planes` without a kernel; ``path``: as :func:`block_terms`)."""
    lib = kernel()
    if lib is None or q.dtype != torch.float32 or q.dim() != 2 or not q.numel():
        return bit_planes(q)
    q = q.detach().contiguous()
    m, k = q.shape
    top = float(q.max())  # one pass for the planes needed; the kernel refuses what is not a finite code
    j = max(int(top).bit_length(), 1) if math.isfinite(top) else 1
    bs, nb, wpb = words_per_block(block, k)
    words = torch.empty(j, m, nb * wpb, dtype=torch.int64)
    if lib.tb_pack_code(best_path() if path is None else path, q.data_ptr(), m, k, j, bs, wpb, words.data_ptr()):
        raise ValueError("q must hold non-negative integers for the packed engine.")
    return Planes(None, tuple(1 << i for i in range(j)), words, block, k)


def step_planes(spikes: Tensor, weights: list[int]) -> Planes:
    """Spikes ``[T, M, K]`` as planes weighted by the integer step weights ``w_t`` (``q = sum_t w_t s_t``)."""
    if spikes.dim() != 3 or spikes.shape[0] != len(weights):
        raise ValueError(f"spikes must be [T, rows, K] with one weight per step; got shape {tuple(spikes.shape)} "
                         f"and {len(weights)} weights.")
    return Planes(spikes, tuple(int(w) for w in weights))


@dataclass
class PackedWeights:
    """Integer weight codes ``Q`` ``[O, K]`` as packed planes, transposed for the kernel.

    ``words``: ``[P, nb * wpb, O_pad]`` int64 (plane ``p`` of output ``o`` at ``[p, :, o]``);
    ``coefs``: ``[P]`` int64 plane weights; column ``O`` holds all ones when ``ones_column``
    (its sums are ``S_b``); ``O_pad`` is the next multiple of 8.
    """

    words: Tensor
    coefs: Tensor
    out: int
    k: int
    block: int | None
    ones_column: bool
    qmax: int


def pack_weights(codes: Tensor, block: int | None, ones_column: bool = True) -> PackedWeights:
    """Pack integer weight codes ``[O, K]`` (any sign) into bit planes; see :class:`PackedWeights`.

    Planes: the binary digits of ``max(Q, 0)`` (weights ``2^p``), then those of
    ``max(-Q, 0)`` (weights ``-2^p``) when ``Q`` has negative codes: 1 plane for 1-bit
    codes, ``k`` for ``k``-bit, 2 for ternary.

    >>> pack_weights(torch.tensor([[1, 0, -1]]), block=None).coefs.tolist()
    [1, -1]
    """
    return _pack_weights_with(codes, block, ones_column, pack_bits)


def _pack_weights_with(codes: Tensor, block: int | None, ones_column: bool, pack) -> PackedWeights:
    """:func:`pack_weights` with the bits packed by ``pack`` (:func:`pack_bits` or its reference)."""
    if codes.dim() != 2:
        raise ValueError(f"codes must be a 2-D [outputs, K] tensor; got shape {tuple(codes.shape)}.")
    codes = codes.detach()
    if codes.is_floating_point() and codes.numel() and not torch.equal(codes, codes.round()):
        raise ValueError("codes must hold integers for the packed engine.")
    lo, hi = (int(v) for v in torch.aminmax(codes)) if codes.numel() else (0, 0)
    if max(hi, -lo) >= 2**15:
        raise ValueError("codes must lie within +-32767 for the packed engine.")
    qi = codes.to(torch.int16)
    o, k = qi.shape
    signs = [(1, max(hi, 0))] + ([(-1, -lo)] if lo < 0 else [])  # the digits of max(Q, 0), then of max(-Q, 0)
    coefs = [sign << i for sign, top in signs for i in range(max(top.bit_length(), 1))]
    o_pad = (o + int(ones_column) + 7) // 8 * 8
    full = torch.zeros(len(coefs), o_pad, k, dtype=torch.uint8)  # each plane written in place
    p = 0
    for sign, top in signs:
        part = qi if sign > 0 and lo >= 0 else (qi if sign > 0 else -qi).clamp(min=0)
        for i in range(max(top.bit_length(), 1)):
            full[p, :o] = part if top == 1 else (part >> i) & 1  # 0/1 codes are their one digit
            p += 1
    if ones_column:
        full[0, o] = 1  # plane 0 has weight +1
    words = pack(full.view(torch.bool).reshape(-1, k), block).reshape(len(coefs), o_pad, -1)
    words = words.transpose(1, 2).contiguous()
    return PackedWeights(words, torch.tensor(coefs, dtype=torch.int64), o, k, block, ones_column, max(hi, -lo))


def _packed_rows(planes: Planes, block: int | None, impl: str) -> Tensor:
    """``[J, M, nb * wpb]`` words of the planes."""
    if planes.words is not None:
        if planes.block != block:
            raise ValueError(f"the planes are packed for blocks of {planes.block}, the weights for {block}.")
        return planes.words
    j, m, k = planes.bits.shape
    return pack_bits(planes.bits.reshape(j * m, k), block, impl).reshape(j, m, -1)


def block_terms_reference(x: Tensor, x_coefs: Tensor, pw: PackedWeights) -> Tensor:
    """:func:`block_terms` in torch: the popcount of every AND by a byte look-up table."""
    j, m, _ = x.shape
    _, nb, wpb = words_per_block(pw.block, pw.k)
    p, _, o_pad = pw.words.shape
    xb = x.transpose(0, 1).reshape(m, j, 1, nb, wpb, 1)
    wb = pw.words.reshape(1, 1, p, nb, wpb, o_pad)
    out = torch.zeros(nb, m, o_pad, dtype=torch.int64)
    for r in range(m):  # one row at a time: [J, P, nb, wpb, O, 8] bytes
        anded = (xb[r:r + 1] & wb).contiguous().view(torch.uint8).reshape(1, j, p, nb, wpb, o_pad, 8)
        counts = _POPCOUNT8[anded.to(torch.int64)].sum((-1, -3))[0]  # [J, P, nb, O]
        f = x_coefs.view(j, 1, 1, 1) * pw.coefs.view(1, p, 1, 1)
        out[:, r] = (counts * f).sum((0, 1))
    return out.to(torch.int32)


def block_terms(x: Tensor, x_coefs: Tensor, pw: PackedWeights, impl: str = "c", path: int | None = None) -> Tensor:
    r"""``out[b, m, o] = sum_j sum_p wx_j c_p popcount(x[m, j, b] & w[p, b, o])``: ``[nb, M, O_pad]`` int32.

    ``x``: packed planes ``[J, M, nb * wpb]`` (:func:`pack_bits` of each plane); ``x_coefs``:
    ``[J]`` int64. ``impl="c"``: the compiled kernel on :func:`best_path` (or ``path``:
    0 portable, 1 POPCNT, 2 AVX2, 3 AVX-512 VPOPCNTDQ); ``"torch"``:
    :func:`block_terms_reference`. Every sum must lie below :math:`2^{31}`.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}.")
    lib = kernel() if impl == "c" else None
    if lib is None:
        return block_terms_reference(x, x_coefs, pw)
    _, nb, _ = words_per_block(pw.block, pw.k)
    x, xc = x.contiguous(), _contiguous(x_coefs, torch.int64)
    out = torch.empty(nb, x.shape[1], pw.words.shape[-1], dtype=torch.int32)
    _run(lib, path, x, xc, pw, out, None, None, None)
    return out


def _run(lib, path, x, xc, pw, out, cur, gains, s_out, fin=None, rest=None, al=None) -> None:
    j, m, _ = x.shape
    _, nb, wpb = words_per_block(pw.block, pw.k)
    p, _, o_pad = pw.words.shape
    ptr = [t.data_ptr() if t is not None else None for t in (out, cur, gains, s_out)]
    lhs, rhs, bias = rest if rest is not None else (None, None, None)
    fins = [fin.data_ptr() if fin is not None else None, lhs.data_ptr() if lhs is not None else None,
            lhs.shape[1] if lhs is not None else 0] + [t.data_ptr() if t is not None else None for t in (rhs, bias, al)]
    rc = lib.tb_terms(best_path() if path is None else path, x.data_ptr(), m, j, xc.data_ptr(),
                      pw.words.data_ptr(), p, pw.coefs.data_ptr(), o_pad, nb, wpb, *ptr, pw.out, *fins, pw.out)
    if rc == -3:
        raise MemoryError("the popcount kernel could not allocate its scratch memory.")
    if rc == -4:
        raise ValueError("the kernel's fused current needs gains, lhs, rhs, alpha and (off AVX-512) scratch.")
    if rc != 0:
        raise ValueError(f"path {path} cannot run on this CPU (the best here is {lib.tb_best_path()}).")


def block_readout(x: Tensor, x_coefs: Tensor, pw: PackedWeights, gains: Tensor, impl: str = "c",
                  path: int | None = None) -> tuple[Tensor, Tensor]:
    r"""The read-out fused into the kernel: ``cur[m, o] = sum_b g[b, m] N_b[m, o]`` (float64 ``[M, O_pad]``)
    and ``S_b`` (int32 ``[nb, M]``, the ones column's terms; ``pw`` needs it).

    ``gains``: ``[nb, M]`` float64. The blocks are added in order, each product and sum
    rounded once: ``cur = g_0 N_0``, then ``cur = cur + g_b N_b``, as
    ``cur.addcmul_(N_b, g_b)`` does in torch (so the two agree bit for bit; the products
    are exact when the gains are float32 values and ``|N_b| < 2^24``).
    """
    if not pw.ones_column:
        raise ValueError("pw must be packed with its ones column for the fused read-out.")
    m = x.shape[1]
    _, nb, _ = words_per_block(pw.block, pw.k)
    gains = _contiguous(gains, torch.float64)
    if tuple(gains.shape) != (nb, m):
        raise ValueError(f"gains must be [blocks, rows] = [{nb}, {m}]; got {tuple(gains.shape)}.")
    lib = kernel() if impl == "c" else None
    if lib is None:
        n = block_terms_reference(x, x_coefs, pw)
        cur = n[0] * gains[0].unsqueeze(-1)
        for b in range(1, nb):
            cur.addcmul_(n[b], gains[b].unsqueeze(-1))
        return cur, n[..., pw.out].contiguous()
    cur = torch.empty(m, pw.words.shape[-1], dtype=torch.float64)
    s_out = torch.empty(nb, m, dtype=torch.int32)
    _run(lib, path, x.contiguous(), _contiguous(x_coefs, torch.int64), pw, None, cur, gains, s_out)
    return cur, s_out


def and_popcount(x: Tensor, w: Tensor, repeats: int = 1, path: int | None = None) -> int | None:
    """``repeats`` times ``sum_i popcount(x[i] & w[i])`` over int64 words (a multiple of 32 of them),
    by the kernel's tightest loop (the microbenchmark of ``benchmarks/bench_packed.py``: the AND +
    popcount throughput of this CPU with nothing else in the loop); ``path`` as :func:`block_terms`;
    ``None`` without a compiled kernel.

    >>> import torch
    >>> x = torch.full((32,), 0b1011, dtype=torch.int64)
    >>> and_popcount(x, torch.full((32,), 0b0110, dtype=torch.int64), repeats=2) in (2 * 32 * 1, None)
    True
    """
    x, w = x.reshape(-1).contiguous(), w.reshape(-1).contiguous()
    if x.dtype != torch.int64 or w.dtype != torch.int64 or x.numel() != w.numel() or x.numel() % 32:
        raise ValueError("x and w must be int64 words of the same count, a multiple of 32.")
    lib = kernel()
    if lib is None:
        return None
    return int(lib.tb_and_popcount(best_path() if path is None else path, x.data_ptr(), w.data_ptr(), x.numel(),
                                   int(repeats)))


def block_sums(x: Tensor, x_coefs: Tensor, pw: PackedWeights, path: int | None = None) -> Tensor:
    """``S_b`` (int32 ``[nb, M]``) of packed planes ``x`` ``[J, M, nb * wpb]`` alone: the terms of
    the weights' ones column, ``sum_j wx_j`` times the spikes of each row in each block (compiled
    kernel; the torch reference without one).
    """
    _, nb, wpb = words_per_block(pw.block, pw.k)
    lib = kernel()
    x, xc = x.contiguous(), _contiguous(x_coefs, torch.int64)
    if lib is None:  # popcounts by a byte look-up table
        counts = _POPCOUNT8[x.view(torch.uint8).to(torch.int64)].reshape(x.shape[0], x.shape[1], nb, -1).sum(-1)
        return (counts * xc.view(-1, 1, 1)).sum(0).t().to(torch.int32).contiguous()
    out = torch.empty(nb, x.shape[1], dtype=torch.int32)
    lib.tb_block_sums(best_path() if path is None else path, x.data_ptr(), x.shape[1], x.shape[0], xc.data_ptr(),
                      nb, wpb, out.data_ptr())
    return out


@functools.lru_cache(maxsize=64)
def coef_tensor(coefs: tuple[int, ...]) -> Tensor:
    """The plane weights ``coefs`` as an int64 tensor, one per tuple (shared: read, never written).

    >>> coef_tensor((1, 2)).tolist()
    [1, 2]
    """
    return torch.tensor(coefs, dtype=torch.int64)


def _contiguous(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` itself where it already is contiguous ``dtype`` (no copy: the engine's hot path), else a copy."""
    return t if t.dtype == dtype and t.is_contiguous() else t.to(dtype).contiguous()


def rest_reference(lhs: Tensor, rhs: Tensor, bias: Tensor | None) -> Tensor:
    r"""``rest[m, o] = bias[o] + lhs[m, 0] rhs[0, o] + lhs[m, 1] rhs[1, o] + ...`` (float64 ``[M, O]``),
    added left to right, each product and each sum rounded once (without ``bias``, from the
    first product): the order :func:`block_current` adds in, written in torch.

    A fixed order rather than a matrix product's, whose order depends on the BLAS and its
    dispatch: the packed engine, the dense engine and the eval forward then agree bit for bit.

    >>> import torch
    >>> lhs = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> rhs = torch.tensor([[3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    >>> rest_reference(lhs, rhs, torch.tensor([0.5, 0.25], dtype=torch.float64)).tolist()
    [[13.5, 16.25]]
    """
    rest = lhs[:, :1] * rhs[0]
    if bias is not None:
        rest = torch.add(bias, rest, out=rest)  # bias + product, one rounding
    for j in range(1, lhs.shape[1]):
        rest += lhs[:, j:j + 1] * rhs[j]
    return rest


def block_current(x: Tensor, x_coefs: Tensor, pw: PackedWeights, gains: Tensor, lhs: Tensor, rhs: Tensor,
                  bias: Tensor | None, alpha: Tensor, path: int | None = None) -> Tensor | None:
    r"""The layer's current by the kernel, its read-out and last step fused: float32 ``[M, O]``,

    .. math:: I = \mathrm{float32}(\text{rest} + \alpha \textstyle\sum_b g_b N_b),

    ``sum_b g_b N_b`` as :func:`block_readout` adds it (kept in registers on the AVX-512 path),
    ``rest`` = :func:`rest_reference` ``(lhs, rhs, bias)`` made in the kernel in the same order
    (``lhs``: float64 ``[M, L]``; ``rhs``: ``[L, O]``; ``bias``: ``[O]`` or ``None``), then one
    product and one sum in float64, rounded once each, and the float32 rounding, as
    ``torch.addcmul(rest, cur, alpha, out=float32)`` makes them (``alpha``: float64 ``[O]``).
    ``None`` without a compiled kernel.
    """
    lib = kernel()
    if lib is None:
        return None
    m = x.shape[1]
    _, nb, _ = words_per_block(pw.block, pw.k)
    gains, lhs, rhs, alpha = (_contiguous(t, torch.float64) for t in (gains, lhs, rhs, alpha))
    bias = _contiguous(bias, torch.float64) if bias is not None else None
    ell = lhs.shape[-1] if lhs.dim() == 2 else -1
    if (gains.shape != (nb, m) or lhs.dim() != 2 or lhs.shape[0] != m or ell < 1
            or rhs.shape != (ell, pw.out) or alpha.shape != (pw.out,)
            or (bias is not None and bias.shape != (pw.out,))):
        raise ValueError(f"gains, lhs, rhs, bias and alpha must be [{nb}, {m}], [{m}, L], [L, {pw.out}], "
                         f"[{pw.out}] (or None) and [{pw.out}]; got {tuple(gains.shape)}, {tuple(lhs.shape)}, "
                         f"{tuple(rhs.shape)}, {None if bias is None else tuple(bias.shape)} and {tuple(alpha.shape)}.")
    path = best_path() if path is None else path
    fin = torch.empty(m, pw.out, dtype=torch.float32)
    cur = None if path == 3 else torch.empty(m, pw.words.shape[-1], dtype=torch.float64)  # scratch
    _run(lib, path, x.contiguous(), _contiguous(x_coefs, torch.int64), pw, None, cur, gains, None, fin,
         (lhs, rhs, bias), alpha)
    return fin


def packed_rows(planes: Planes, pw: PackedWeights, impl: str = "c") -> Tensor:
    """The planes' words ``[J, M, nb * wpb]`` for the blocks of ``pw`` (packed now unless they are),
    after the checks of :func:`row_terms`."""
    _check_sums(planes, pw)
    return _packed_rows(planes, pw.block, impl)


def row_terms(planes: Planes, pw: PackedWeights, impl: str = "c") -> tuple[Tensor, Tensor]:
    r"""``N_b`` ``[nb, M, O]`` and ``S_b`` ``[nb, M, 1]`` (int32) of the rows ``q = sum_j wx_j x_j`` against ``pw``.

    ``S_b`` needs ``pw`` packed with its ones column. Raises ``ValueError`` when a sum
    could exceed :math:`2^{31} - 1` (``max|Q| * block * sum|wx|``).
    """
    x = packed_rows(planes, pw, impl)
    out = block_terms(x, coef_tensor(planes.coefs), pw, impl)
    n = out[..., :pw.out]
    s = out[..., pw.out:pw.out + 1] if pw.ones_column else None
    return n, s


def _check_sums(planes: Planes, pw: PackedWeights) -> None:
    bs, _, _ = words_per_block(pw.block, pw.k)
    if planes.k != pw.k:
        raise ValueError(f"planes have {planes.k} features but the weights {pw.k}.")
    if max(pw.qmax, 1) * bs * sum(abs(c) for c in planes.coefs) >= 2**31:
        raise ValueError("the packed sums could overflow int32 for these codes; use the dense engine.")


def row_readout(planes: Planes, pw: PackedWeights, gains: Tensor, impl: str = "c") -> tuple[Tensor, Tensor]:
    """``sum_b g_b N_b`` (float64 ``[M, O]``) and ``S_b`` (int32 ``[nb, M, 1]``) of the rows against ``pw``
    (:func:`block_readout`); the same checks as :func:`row_terms`."""
    x = packed_rows(planes, pw, impl)
    cur, s = block_readout(x, coef_tensor(planes.coefs), pw, gains, impl)
    return cur[:, :pw.out], s.unsqueeze(-1)

