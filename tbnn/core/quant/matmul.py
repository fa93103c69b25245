"""The integer matmul shortcut: ``X~ W~ = (s_X s_W^T) * (Q_X Q_W - n qbar_X qbar_W^T) + n xbar wbar^T``."""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.core.quant.dat import quantize
from tbnn.core.quant.grid import BlockCodes
from tbnn.core.quant.spec import check_finite
from tbnn.core.validate import compute_in_float32

__all__ = ["quantized_matmul"]


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
