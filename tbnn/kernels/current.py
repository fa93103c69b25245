r"""A linear layer's whole input current in one compiled call.

The engine's current of a linear layer (the matmul shortcut of Ye et al., arXiv:2409.09245)
is, per row ``m`` and output ``o``, with the code's per-block gains ``a_b`` and offsets
``c_b``, the integer terms ``N_b`` and ``S_b`` (:mod:`tbnn.kernels.packed`),

.. math::

    I = \mathrm{float32}\Big(\text{bias} + \sum_b c_b\, \text{const}_b
        + \gamma \sum_b a_b S_b + \alpha \sum_b a_b N_b\Big),

each float64 operation in the order :func:`tbnn.kernels.packed.block_current` fixes. That
function takes the float64 operands ``gains = [a_b]`` and ``lhs = [c_b..., sum_b a_b S_b]``
made in torch (a dozen small operations per layer and batch); :func:`linear_current` makes
them in the kernel from the code's float32 gains and offsets, with the row sums ``S_b``, in
one call (``current.c``). The sum over the blocks is added as torch's CPU sum over a leading
dimension adds fewer than 16 rows (from 0, in order: :func:`lhs_reference` writes it in
torch), checked against torch once per process (:func:`agrees`); where that check fails, or
for 16 blocks or more, :func:`linear_current` returns ``None`` and the engine takes the torch
operands.

>>> import torch
>>> from tbnn.kernels.packed import pack_bits, pack_weights, step_planes
>>> pw = pack_weights(torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]]), block=None)
>>> spikes = torch.tensor([[[1, 0, 1, 1]], [[0, 1, 1, 0]]], dtype=torch.bool)  # T = 2, one row
>>> x = pack_bits(spikes.reshape(2, 4), None).reshape(2, 1, -1)
>>> gain, offset = torch.tensor([[[0.5]]]), torch.tensor([[[0.0]]])
>>> rhs = torch.zeros(2, 2, dtype=torch.float64)                    # no offsets' response
>>> cur = linear_current(x, (2, 1), pw, gain, offset, rhs, None, torch.ones(2, dtype=torch.float64))
>>> cur is None or cur.tolist() == [[3.5, 2.0]]     # q = 2 s_0 + s_1 = [2, 1, 3, 2]; 0.5 * [7, 4]
True
"""

from __future__ import annotations

import functools
import sys

import torch
from torch import Tensor

from .packed import (
    PackedWeights,
    best_path,
    block_current,
    block_sums,
    coef_tensor,
    kernel,
    pack_bits,
    pack_weights,
    step_planes,
    words_per_block,
)

__all__ = ["MAX_BLOCKS", "LinearCall", "agrees", "lhs_reference", "linear_current"]

#: Most read-out blocks :func:`linear_current` takes (torch's sum over more rows cascades).
MAX_BLOCKS = 15


def lhs_reference(gain: Tensor, offset: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """``(gains, lhs)`` of :func:`tbnn.kernels.packed.block_current` from a code's float32 ``gain``
    and ``offset`` (``[M, nb, 1]``) and the row sums ``s`` (int32 ``[nb, M]``), in torch:
    ``gains = [a_b]`` float64 ``[nb, M]``, ``lhs = [c_b..., sum_b a_b S_b]`` float64 ``[M, nb + 1]``.
    """
    nb = s.shape[0]
    a = gain.to(torch.float64).squeeze(-1).transpose(0, 1).reshape(nb, -1, 1)
    c = offset.to(torch.float64).squeeze(-1).reshape(-1, nb)
    return a.reshape(nb, -1), torch.cat([c, (a * s.unsqueeze(-1)).sum(0)], 1)


def linear_current(x: Tensor, coefs: tuple[int, ...], pw: PackedWeights, gain: Tensor, offset: Tensor,
                   rhs: Tensor, bias: Tensor | None, alpha: Tensor, path: int | None = None) -> Tensor | None:
    r"""The current (float32 ``[M, O]``) of packed planes ``x`` (``[J, M, nb * wpb]``, plane ``j``
    weighing ``coefs[j]``) through ``pw`` (packed with its ones column), as
    :func:`tbnn.kernels.packed.block_current` makes it from :func:`lhs_reference`'s operands:
    the same bits. ``gain``, ``offset``: the code's, float32 ``[M, nb, 1]``; ``rhs``
    ``[nb + 1, O]``, ``bias`` ``[O]`` or ``None``, ``alpha`` ``[O]``: float64. ``path``: the kernel's
    dispatch path (:func:`tbnn.kernels.packed.block_terms`; default: the best).

    ``None`` where it does not run (no kernel, a check that failed, more than
    :data:`MAX_BLOCKS` blocks, no rows, operands of other types or shapes): the caller then builds the
    operands in torch. A layer run batch after batch binds its fixed operands once (:class:`LinearCall`).
    """
    call = LinearCall.bind(coefs, pw, rhs, bias, alpha, path)
    return None if call is None else call(x, gain, offset)


class LinearCall:
    """:func:`linear_current` with one layer's fixed operands (``coefs``, ``pw``, ``rhs``, ``bias``,
    ``alpha``, the dispatch path) checked and bound once: a call with a batch's planes ``x``,
    ``gain`` and ``offset`` checks only those. Made by :meth:`bind`."""

    def __init__(self, coefs: tuple[int, ...], pw: PackedWeights, rhs: Tensor, bias: Tensor | None,
                 alpha: Tensor, path: int) -> None:
        _, self.nb, self.wpb = words_per_block(pw.block, pw.k)
        self.coefs, self.pw, self.path = tuple(coefs), pw, path
        held = (coef_tensor(self.coefs), pw.words, pw.coefs, rhs.contiguous(), alpha.contiguous())
        self.held = (*held, None if bias is None else bias.contiguous())  # kept alive: the kernel reads them
        self.ptrs = [t.data_ptr() for t in held] + [None if bias is None else self.held[-1].data_ptr()]

    @classmethod
    def bind(cls, coefs: tuple[int, ...], pw: PackedWeights, rhs: Tensor, bias: Tensor | None, alpha: Tensor,
             path: int | None = None) -> LinearCall | None:
        """The bound call, or ``None`` where :func:`linear_current` does not run for these operands."""
        _, nb, _ = words_per_block(pw.block, pw.k)
        f64 = torch.float64
        if (not 1 <= nb <= MAX_BLOCKS or not pw.ones_column or rhs.shape != (nb + 1, pw.out) or rhs.dtype != f64
                or alpha.shape != (pw.out,) or alpha.dtype != f64 or not coefs
                or (bias is not None and (bias.shape != (pw.out,) or bias.dtype != f64)) or not agrees()):
            return None
        return cls(coefs, pw, rhs, bias, alpha, best_path() if path is None else path)

    def __call__(self, x: Tensor, gain: Tensor, offset: Tensor) -> Tensor | None:
        """The current of planes ``x`` with read-out ``gain`` and ``offset``, or ``None`` (see
        :func:`linear_current`). Raises ``MemoryError`` when the kernel gets no scratch memory."""
        j, m, _ = x.shape
        shape = (m, self.nb, 1)
        if (m == 0 or j != len(self.coefs) or gain.shape != shape or offset.shape != shape
                or gain.dtype != torch.float32 or offset.dtype != torch.float32):
            return None
        rc, fin = self.run(x, gain, offset)
        if rc == -3:
            raise MemoryError("the popcount kernel could not allocate its scratch memory.")
        return fin if rc == 0 else None

    def run(self, x: Tensor, gain: Tensor, offset: Tensor) -> tuple[int, Tensor]:
        """``tb_linear_current``'s return code and current (operands checked by the caller)."""
        j, m, _ = x.shape
        pw, (cx, w, wc, rhs, al, bias) = self.pw, self.ptrs
        fin = torch.empty(m, pw.out, dtype=torch.float32)
        x, gain, offset = x.contiguous(), gain.contiguous(), offset.contiguous()
        rc = kernel().tb_linear_current(self.path, x.data_ptr(), m, j, cx, w, pw.words.shape[0], wc,
                                        pw.words.shape[-1], self.nb, self.wpb, gain.data_ptr(), offset.data_ptr(),
                                        rhs, bias, al, pw.out, fin.data_ptr())
        return rc, fin


@functools.cache
def agrees() -> bool:
    """Whether :func:`linear_current` equals :func:`tbnn.kernels.packed.block_current` with
    :func:`lhs_reference`'s operands, checked once per process on small random layers (1, 2, 8,
    9 and 15 blocks, ragged, one row and several, with and without a bias, gains of both signs);
    if not, it is not used (one line on stderr)."""
    if kernel() is None or best_path() is None:
        return False
    gen = torch.Generator().manual_seed(23)
    for k, block, m, o in ((100, None, 3, 5), (256, 128, 37, 21), (1000, 128, 1, 8), (1100, 128, 5, 9),
                           (1900, 128, 2, 16), (700, 100, 1, 3)):
        pw = pack_weights(torch.randint(-1, 2, (o, k), generator=gen), block)
        _, nb, _ = words_per_block(pw.block, pw.k)
        planes = step_planes(torch.rand(4, m, k, generator=gen) < 0.3, [8, 4, 2, 1])
        x = pack_bits(planes.bits.reshape(-1, k), block).reshape(4, m, -1)
        gain, offset = (torch.randn(m, nb, 1, generator=gen) for _ in range(2))
        rhs = torch.randn(nb + 1, o, generator=gen, dtype=torch.float64) * 100
        alpha = torch.rand(o, generator=gen, dtype=torch.float64)
        for bias in (torch.randn(o, generator=gen, dtype=torch.float64), None):
            gains, lhs = lhs_reference(gain, offset, block_sums(x, coef_tensor(planes.coefs), pw))
            want = block_current(x, coef_tensor(planes.coefs), pw, gains, lhs, rhs, bias, alpha)
            rc, fin = LinearCall(planes.coefs, pw, rhs, bias, alpha, best_path()).run(x, gain, offset)
            if rc != 0 or not torch.equal(fin, want):
                print("tbnn: the kernel's one-call linear current does not add as torch does here; not used.",
                      file=sys.stderr)
                return False
    return True
