r"""Temporal binary neurons: ``nn.Module`` wrappers around :mod:`tbnn.core.coding` and :mod:`tbnn.core.firing`.

A :class:`TemporalBinary` neuron maps its input current :math:`x` onto the grid,
:math:`r_0 = v = \mathrm{clip}(x / \max_{\text{block}} x, 0, 1)` (rectifying: a neuron
cannot fire a negative spike, so below zero is silence; this is the network's
nonlinearity), and emits :math:`T` binary spikes by integrate-and-fire with reset by
subtraction and a halving threshold,

.. math::

    s_t = \mathbb{1}[r_{t-1} \ge 2^{-t}], \qquad r_t = r_{t-1} - 2^{-t} s_t,

i.e. the bits of its :math:`T`-bit code, most significant first. The spikes are read out by
the denoising affine transform (Ye et al. 2024, arXiv:2409.09245) fitted per block of
``block`` neurons, which corrects the binarization noise; gradients flow through the ridge
fit and the detached rounding residual, with no surrogate gradient. At :math:`T = k` the
neuron is exactly the paper's k-bit DAT.

In training and eval the neuron computes its code in closed form (the bits of
:math:`\min(\lfloor 2^T v \rfloor, 2^T - 1)`); while simulated it fires by the loop
(:meth:`TemporalBinary.fire`), and the two are checked to agree.

>>> import torch
>>> code = TemporalBinary(4)(torch.tensor([[0.8125, 0.0, 1.0]]))
>>> code.spikes[:, 0].int().T.tolist()
[[1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from tbnn.engine import session
from tbnn.core.codes import get_code
from tbnn.core.coding import SCHEMES, SpikeCode, check_timesteps, encode_unchecked
from tbnn.core.firing import binary_thresholds, integrate_and_fire
from tbnn.core.quant import GRIDS, METHODS, grid_values
from tbnn.core.validate import check_block, check_choice, check_lam

__all__ = ["TemporalBinary"]


class TemporalBinary(nn.Module):
    """Time-unrolled binary neuron layer with the per-step DAT read-out.

    Parameters
    ----------
    timesteps : number of time steps ``T`` (a binary neuron carries a ``T``-bit code).
    scheme : spike code (:data:`tbnn.core.coding.SCHEMES`); ``binary`` is the reference.
    lam : ridge penalty of the read-out (paper: 0.01).
    block : neurons per read-out block (``None``: the whole layer of one sample).
    grid : ``rectify`` for hidden neurons; ``minmax`` for an input encoder of signed data.
    target : the read-out regresses onto ``relu`` (default for ``rectify``) or ``x``.
    method : ``dat`` or the STE baselines ``ste`` / ``ste_clip``.

    ``forward(x)`` takes ``[B, ...]`` (features flattened per sample) and returns a
    :class:`~tbnn.core.coding.SpikeCode`; its ``spikes`` are ``[T, B, ...]``.
    """

    def __init__(
        self,
        timesteps: int,
        scheme: str = "binary",
        lam: float = 0.01,
        block: int | None = 128,
        grid: str = "rectify",
        target: str | None = None,
        method: str = "dat",
    ) -> None:
        super().__init__()
        check_choice(scheme, SCHEMES, "scheme")
        check_timesteps(timesteps, scheme)
        check_choice(grid, GRIDS, "grid")
        check_choice(method, METHODS, "method")
        check_lam(lam)
        check_block(block)
        if target is not None:
            check_choice(target, ("x", "relu"), "target")
        self.timesteps = timesteps
        self.scheme = scheme
        self.lam = float(lam)
        self.block = block
        self.grid = grid
        self.target = target or ("relu" if grid == "rectify" else "x")
        self.method = method

    def forward(self, x: Tensor) -> SpikeCode:
        sess = session.active()
        if sess is not None:
            return sess.neuron_output(self, x)
        return self.encode(x)

    def encode(self, x: Tensor) -> SpikeCode:
        """The code of ``x`` ``[B, ...]`` in closed form (training and eval)."""
        if x.dim() < 2:
            raise ValueError(f"x must be [batch, features...] with rank >= 2; got rank {x.dim()}.")
        if x.dtype in (torch.float16, torch.bfloat16):  # as tbnn.encode: low-precision sums overflow
            x = x.float()
        code = encode_unchecked(
            x.flatten(1), self.timesteps, self.scheme, self.grid, self.block, self.lam,
            self.target, self.method,
        )
        code.shape = tuple(x.shape)
        return code

    @torch.no_grad()
    def fire(self, x: Tensor) -> SpikeCode:
        r"""Fire by integrate-and-fire (:func:`tbnn.core.firing.integrate_and_fire`) and return the code.

        Binary scheme: every membrane starts at its grid value ``r_0 = v`` and runs ``T``
        steps with halving thresholds; the emitted spikes are kept in the code (``raw``) and
        checked against the closed form (their weighted sum :math:`\sum_t w_t s_t` must be
        the integer code :math:`q`), whose read-out gains are used. Other schemes emit the
        spikes of their code (sigma-delta's are integrate-and-fire too).

        Raises
        ------
        RuntimeError
            The loop's spikes differ from the closed form (a bug: please report it).
        """
        code = self.encode(x)
        if self.scheme != "binary":
            return code
        T = self.timesteps
        v = grid_values(x.flatten(1), self.block, self.grid, get_code("binary").grid_levels(T))
        steps = torch.empty(T, *v.shape, dtype=v.dtype, device=v.device)  # 0/1 spikes [T, B, F]
        integrate_and_fire(v, binary_thresholds(T), out=steps, overwrite=True)  # (v becomes the membrane)
        # the spikes are the bits of the code: sum_t w_t s_t == q (a bijection on 0 .. 2^T - 1; exact sums)
        diff = (code.weights.to(v.dtype) @ steps.view(T, -1)).view(code.q.shape).sub_(code.q.detach())
        lo, hi = torch.aminmax(diff) if diff.numel() else (0, 0)
        if lo != 0 or hi != 0:
            raise RuntimeError("integrate-and-fire spikes differ from the neuron's code; please report this.")
        return replace(code, raw=steps.to(torch.bool))

    def extra_repr(self) -> str:
        return (
            f"T={self.timesteps}, scheme={self.scheme}, lam={self.lam}, block={self.block}, "
            f"grid={self.grid}, target={self.target}, method={self.method}"
        )
