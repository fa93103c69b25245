"""Temporal binary neurons: ``nn.Module`` wrappers around :mod:`tbnn.coding`.

A :class:`TemporalBinary` neuron maps its input current ``x`` onto the grid, ``r_0 = v =
clip(x / max_block(x), 0, 1)`` (rectifying: below zero is silence, DESIGN §1.2), and emits
``T`` binary spikes by integrate-and-fire with reset by subtraction and a halving threshold,
i.e. the bits of its ``T``-bit code, most significant first. The spikes are read out by the
denoising affine transform (Ye et al. 2024, arXiv:2409.09245) fitted per block of
``block`` neurons, which corrects the binarization noise; gradients flow through the ridge
fit and the detached rounding residual, with no surrogate gradient.
"""

from __future__ import annotations

from torch import Tensor, nn

from .coding import SCHEMES, SpikeCode, _encode, check_timesteps
from .quant import GRIDS, METHODS
from .validate import check_block, check_choice, check_lam

__all__ = ["TemporalBinary"]


class TemporalBinary(nn.Module):
    """Time-unrolled binary neuron layer with the per-step DAT read-out.

    Parameters
    ----------
    timesteps : number of time steps ``T`` (a binary neuron carries a ``T``-bit code).
    scheme : spike code (:data:`tbnn.coding.SCHEMES`); ``binary`` is the reference.
    lam : ridge penalty of the read-out (paper: 0.01).
    block : neurons per read-out block (``None``: the whole layer of one sample).
    grid : ``rectify`` for hidden neurons; ``minmax`` for an input encoder of signed data.
    target : the read-out regresses onto ``relu`` (default for ``rectify``) or ``x``.
    method : ``dat`` or the STE baselines ``ste`` / ``ste_clip``.

    ``forward(x)`` takes ``[B, ...]`` (features flattened per sample) and returns a
    :class:`~tbnn.coding.SpikeCode`; its ``spikes`` are ``[T, B, ...]``.
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
        if x.dim() < 2:
            raise ValueError(f"x must be [batch, features...] with rank >= 2; got rank {x.dim()}.")
        code = _encode(
            x.flatten(1), self.timesteps, self.scheme, self.grid, self.block, self.lam,
            self.target, self.method,
        )
        code.shape = tuple(x.shape)
        return code

    def extra_repr(self) -> str:
        return (
            f"T={self.timesteps}, scheme={self.scheme}, lam={self.lam}, block={self.block}, "
            f"grid={self.grid}, target={self.target}, method={self.method}"
        )
