r"""The binary neuron's integrate-and-fire, compiled: fire, write the spikes and check them in one pass.

The loop of :func:`tbnn.core.firing.integrate_and_fire` with reset by subtraction,

.. math::

    s_t = \mathbb{1}[r_{t-1} \ge \theta_t], \qquad r_t = r_{t-1} - \theta_t s_t ,

run by the compiled kernel (``tb_fire`` in ``popcount.c``, :mod:`tbnn.kernels.build`) on
float32 membranes: each comparison and subtraction is the float32 operation torch's loop
makes (``torch.ge`` and ``Tensor.sub_`` with the threshold as a float32), so the spikes are
the same bit for bit (tested on every dispatch path, and self-tested when the kernel loads).
In the same pass the weighted sum :math:`\sum_t w_t s_t` of each membrane's spikes is compared
with its code :math:`q` (for the binary neuron, Ye et al., arXiv:2409.09245, the spikes are
the bits of the code), and the spikes are written once, as booleans: the torch loop instead
writes ``T`` float planes, multiplies them by the weights and converts them.

>>> import torch
>>> from tbnn.core.firing import binary_thresholds
>>> r = torch.tensor([0.8125, 0.25])
>>> fired = fire_checked(r, binary_thresholds(4), torch.tensor([8.0, 4.0, 2.0, 1.0]), torch.tensor([13.0, 4.0]))
>>> fired is None or (fired[0].int().T.tolist(), fired[1]) == ([[1, 1, 0, 1], [0, 1, 0, 0]], 0)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .packed import best_path, kernel

__all__ = ["fire_checked"]


def fire_checked(r0: Tensor, thresholds: Sequence[float], weights: Tensor, q: Tensor,
                 path: int | None = None) -> tuple[Tensor, int] | None:
    """Fire the membranes ``r0`` for ``len(thresholds)`` steps by the compiled kernel.

    Returns ``(spikes, differ)``: boolean spikes ``[T, *r0.shape]`` and how many membranes'
    weighted spikes :math:`\\sum_t w_t s_t` (``weights``: ``[T]``) differ from their code ``q``
    (shaped like ``r0``); or ``None`` where the kernel does not run (no compiled kernel, a
    tensor not float32 or not on a CPU, shapes that do not match): then the caller fires
    in torch. ``r0`` is the membrane and is overwritten when it is contiguous (as
    ``integrate_and_fire(..., overwrite=True)``). ``path``: as
    :func:`tbnn.kernels.packed.block_terms` (default: :func:`tbnn.kernels.packed.best_path`).
    """
    T = len(thresholds)
    if (r0.dtype != torch.float32 or q.dtype != torch.float32 or r0.device.type != "cpu"
            or q.device.type != "cpu" or q.shape != r0.shape or tuple(weights.shape) != (T,)):
        return None
    lib = kernel()
    if lib is None:
        return None
    r, qc = r0.detach().contiguous(), q.detach().contiguous()
    th = torch.tensor([float(t) for t in thresholds], dtype=torch.float32)
    w = weights.detach().to(torch.float32).contiguous()
    spikes = torch.empty(T, *r0.shape, dtype=torch.bool)
    differ = lib.tb_fire(best_path() if path is None else path, r.data_ptr(), qc.data_ptr(), r.numel(), T,
                         th.data_ptr(), w.data_ptr(), spikes.data_ptr())
    return spikes, int(differ)
