r"""The interface every spike code implements.

A code carries a value :math:`v \in [0, 1]` (a block's grid value) as binary spikes
:math:`s_1 .. s_T` and is *linear in its spikes*: the code value is
:math:`q = \sum_t w_t s_t` with fixed per-step weights :math:`w_t`. The read-out is the
denoising affine transform of Ye et al. (arXiv:2409.09245) fitted per block,
:math:`\hat x = a q + c`, so layers can sum the spikes' contributions step by step.

A new code is one subclass of :class:`Code` in one file of :mod:`tbnn.core.codes`, registered
in ``tbnn/codes/__init__.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Code"]


class Code:
    """A spike code: its step weights, its levels, and how its spikes arise.

    Attributes
    ----------
    name : the scheme's name (``encode(..., scheme=name)``).
    deterministic : the spikes are a function of the integer code ``q`` (``spikes_of``);
        otherwise they are drawn or integrated from ``v`` (``draw``) and stored.
    max_timesteps : largest ``T`` (``None``: no limit).
    """

    name: str = ""
    deterministic: bool = True
    max_timesteps: int | None = None

    def levels(self, timesteps: int) -> int:
        """Number of distinct code values ``q`` (``T + 1`` unless overridden)."""
        return timesteps + 1

    def grid_levels(self, timesteps: int) -> int:
        """Levels of the grid map onto ``[0, 1]`` (``2``: the grid only scales the block)."""
        return 2

    def step_weights(self, timesteps: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        """Per-step weights ``w_t`` (``t = 1..T``) with ``q = sum_t w_t s_t``; ones unless overridden."""
        return torch.ones(timesteps, dtype=dtype, device=device)

    def partial_weights(self, steps: int, timesteps: int, dtype: torch.dtype, device=None) -> Tensor:
        """Weights of the first ``steps`` spikes for the anytime read-out (a ``steps``-step code)."""
        return self.step_weights(steps, dtype, device)

    def readout_scale(self, steps: int, timesteps: int) -> float:
        """``q / scale`` maps a code read without a target back onto ``[0, 1]``."""
        return float(self.partial_weights(steps, timesteps, torch.float64).sum())

    def ste_levels(self, timesteps: int) -> tuple[float, float]:
        """The fixed inverse grid map of the STE baseline: ``x = lo + span * (q + half) / top``."""
        return float(timesteps), 0.0

    def spikes_of(self, code: Tensor, timesteps: int) -> Tensor:
        """Boolean spikes ``[T, *code.shape]`` of integer codes (deterministic codes only)."""
        raise NotImplementedError(f"the {self.name} code draws its spikes; they are stored with the code.")

    def draw(self, v: Tensor, timesteps: int, generator: torch.Generator | None = None) -> Tensor:
        """Boolean spikes ``[T, *v.shape]`` for grid values ``v`` (non-deterministic codes only)."""
        raise NotImplementedError(f"the {self.name} code is a function of its integer code.")
