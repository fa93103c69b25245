r"""Integrate-and-fire with reset by subtraction: the one firing loop of tbnn.

A membrane starts at :math:`r_0`, integrates a drive :math:`d` every step, fires when it
reaches the step's threshold and loses the threshold when it fires:

.. math::

    r_t' = r_{t-1} + d, \qquad s_t = \mathbb{1}[r_t' \ge \theta_t], \qquad
    r_t = r_t' - \theta_t s_t .

Two neurons of tbnn are this loop with different constants:

* the **binary** neuron (Ye et al., arXiv:2409.09245, read as a temporal code): :math:`r_0 = v`
  (the grid value in :math:`[0, 1]`), :math:`d = 0`, halving thresholds
  :math:`\theta_t = 2^{-t}`: its spikes are the bits of the :math:`T`-bit code of :math:`v`,
  most significant first;
* the **sigma-delta** neuron: :math:`r_0 = 0`, :math:`d = v`, :math:`\theta_t = 1` (a
  first-order sigma-delta modulator).

:class:`tbnn.nn.neurons.TemporalBinary` fires through :func:`integrate_and_fire` when it is
simulated, and so does the simulator benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["if_step", "integrate_and_fire", "binary_thresholds"]


def if_step(r: Tensor, theta: float, drive: Tensor | float = 0.0,
            out: Tensor | None = None, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """One step: integrate ``drive``, fire where ``r >= theta``, subtract ``theta`` where fired.

    Returns ``(s, r)``: ``s`` boolean, or written into ``out`` (boolean, or 0/1 in ``out``'s
    floating type); the new membrane ``r - theta * s`` is ``r - theta`` where fired and
    ``r`` elsewhere, exactly (``theta * 1 = theta`` and ``r - 0 = r``). ``inplace``: ``r``
    is updated in place (the caller owns it).

    Examples
    --------
    >>> s, r = if_step(torch.tensor([0.75, 0.25]), 0.5)
    >>> s.tolist(), r.tolist()
    ([True, False], [0.25, 0.25])
    """
    if not (isinstance(drive, float) and drive == 0.0):
        r = r.add_(drive) if inplace else r + drive
    s = torch.ge(r, theta, out=out) if out is not None else r >= theta
    # 0/1 floats as they are; booleans through uint8 (which converts ~7x faster than bool)
    sf = s if s.dtype == r.dtype else s.view(torch.uint8).to(r.dtype)
    return s, (r.sub_(sf, alpha=theta) if inplace else r.sub(sf, alpha=theta))


def integrate_and_fire(r0: Tensor, thresholds: Sequence[float], drive: Tensor | float = 0.0,
                       out: Tensor | None = None, overwrite: bool = False) -> Tensor:
    """Run :func:`if_step` for ``len(thresholds)`` steps from ``r0``: boolean spikes ``[T, *r0.shape]``.

    The membrane is a copy of ``r0`` (or ``r0`` itself) updated in place, and the steps' spikes are written as
    0/1 in the membrane's type, then made boolean once (a comparison writes floats several
    times faster than booleans on CPUs).

    Parameters
    ----------
    r0 : initial membrane (not modified unless ``overwrite``).
    thresholds : :math:`\\theta_1 .. \\theta_T`.
    drive : input added every step (a tensor like ``r0`` or a number).
    out : optional tensor ``[T, *r0.shape]`` to write the spikes into: boolean, or 0/1 in the
        membrane's floating type (written step by step, with no conversion).
    overwrite : use ``r0`` itself as the membrane (a floating tensor the caller owns and
        no longer needs), sparing a copy.

    Examples
    --------
    >>> integrate_and_fire(torch.tensor([0.8125]), binary_thresholds(4))[:, 0].int().tolist()
    [1, 1, 0, 1]
    >>> integrate_and_fire(torch.tensor([0.8125]), binary_thresholds(4), out=torch.empty(4, 1))[:, 0].tolist()
    [1.0, 1.0, 0.0, 1.0]
    >>> integrate_and_fire(torch.zeros(1), [1.0] * 4, drive=torch.tensor([0.5]))[:, 0].int().tolist()
    [0, 1, 0, 1]
    """
    T = len(thresholds)
    if not r0.is_floating_point():
        r = r0.to(torch.get_default_dtype())
    else:
        r = r0 if overwrite else r0.clone()
    if isinstance(drive, Tensor) and drive.dtype != r.dtype:
        r = r.to(torch.result_type(r, drive))
    direct = out is not None and out.dtype == r.dtype
    steps = out if direct else torch.empty(T, *r0.shape, dtype=r.dtype, device=r0.device)
    for t, theta in enumerate(thresholds):
        if_step(r, float(theta), drive, out=steps[t], inplace=True)
    if out is None:
        return steps.to(torch.bool)
    return out if direct else out.copy_(steps)


def binary_thresholds(timesteps: int) -> list[float]:
    """The halving thresholds :math:`2^{-1}, ..., 2^{-T}` of the binary neuron."""
    return [2.0**-t for t in range(1, timesteps + 1)]
