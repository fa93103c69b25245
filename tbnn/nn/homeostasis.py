r"""Homeostatic rate control: an adaptive threshold per hidden layer that brings the fraction of
neurons active per step to a target ``P``, whatever the data set, the epoch budget or ``P``.

Cortical neurons keep their firing near a set point by scaling their excitability
(homeostatic plasticity; Turrigiano 2008, Cell 135:422; Turrigiano & Nelson 2004, Nat Rev
Neurosci 5:97). Here each hidden :class:`~tbnn.nn.neurons.TemporalBinary` layer built with
``adaptive_threshold="neuron"`` (one threshold per neuron, the default of a rate target) or
``"layer"`` (one per layer) subtracts a threshold :math:`\theta` from its input current
(:math:`x \to x - \theta`), and after every training step each threshold integrates the
relative error of the measured activity :math:`A` (the exact fraction of steps its neuron, or
its layer's neurons, fired in the batch) against the target :math:`P`:

.. math::

    \theta \leftarrow \theta + \eta\, \sigma\,
        \mathrm{clip}\Big(\frac{A - P}{P + \epsilon}, -1, 1\Big),

with :math:`\sigma` the standard deviation of the input current over the batch (of the
neuron, or of the layer; so the step is in units of the current, whatever its scale),
:math:`\eta =` :data:`STEP` and :math:`\epsilon =` :data:`EPS`. It is an integral
controller: at its fixed point the mean activity is :math:`P`. Dividing by :math:`P` makes the
step relative, the same for :math:`P` = 5 % and 1 %, and the clip bounds it while the activity
is far off (at most :math:`\eta\sigma` a step). Near the target the loop gain per step is
:math:`\eta\,\sigma\,\partial A / \partial\theta / P \approx \eta z` (:math:`z \approx 1.6`
to 2.3 for a Gaussian tail at 5 % to 1 %), far below the limit of 2 of a stable discrete
integrator, and large enough that a threshold settles in a few tens of steps. Per neuron, the
relative error of one batch is noisy (a few spikes), but it is linear in :math:`A` below the
clip, so its mean is the error of the mean rate. One set of defaults serves every ``P``,
data set and epoch budget; no weight is tuned.

Per-neuron thresholds also keep every neuron in use: no neuron can fall silent for good,
which a rate penalty or a layer threshold allows (a neuron below threshold on every sample
gets no gradient). They equalise the neurons' rates; a layer threshold leaves their
distribution free.

The controller's only state is the thresholds, buffers of the model: they are saved with its
weights and in every checkpoint, so a resumed run is bit-identical.

>>> import torch
>>> from tbnn.nn.neurons import TemporalBinary
>>> n = TemporalBinary(4, adaptive_threshold=True)
>>> round(float(step_threshold(n, active=0.2, target=0.02, scale=1.0)), 4)  # far above: one full step up
0.05
>>> round(float(step_threshold(n, active=0.015, target=0.02, scale=2.0)), 4)  # 25 % below: ~1/4 step down, units of 2
-0.0249
>>> round(float(n.threshold), 4)
0.0251
"""

from __future__ import annotations

import torch
from torch import Tensor

from tbnn.nn.neurons import TemporalBinary

__all__ = ["STEP", "EPS", "CLIP", "step_threshold", "controller_state"]

#: :math:`\eta`, the threshold step in units of the input current's standard deviation.
STEP = 0.05
#: :math:`\epsilon`, keeps the relative error finite for ``P = 0``.
EPS = 1e-4
#: the bound of the relative error (one full step while the activity is off by more than ``P``).
CLIP = 1.0


@torch.no_grad()
def step_threshold(neuron: TemporalBinary, active: Tensor | float, target: float, scale: Tensor | float,
                   step: float = STEP) -> Tensor:
    r"""One controller update of ``neuron.threshold`` (see the module docstring); returns the step taken.

    ``active``: :math:`A`, the measured fraction active per step (a number, or one per neuron);
    ``target``: :math:`P`; ``scale``: :math:`\sigma`, the input current's standard deviation
    (likewise).

    Raises
    ------
    ValueError
        ``neuron`` has no adaptive threshold.
    """
    if not getattr(neuron, "adaptive_threshold", None):
        raise ValueError("neuron must be built with an adaptive_threshold to be rate-controlled.")
    th = neuron.threshold
    a = torch.as_tensor(active, dtype=torch.float64, device=th.device)
    s = torch.as_tensor(scale, dtype=torch.float64, device=th.device)
    err = ((a - target) / (target + EPS)).clamp(-CLIP, CLIP)
    delta = (step * s * err).to(th.dtype).expand(th.shape) if th.dim() else (step * s * err).to(th.dtype).reshape(())
    th.add_(delta)
    return delta


def controller_state(neurons: dict[str, TemporalBinary]) -> dict[str, float]:
    """Each controlled layer's threshold :math:`\\theta_\\ell` (for metrics and reports)."""
    return {k: float(n.threshold.mean()) for k, n in neurons.items() if getattr(n, "adaptive_threshold", None)}
