r"""Homeostatic rate control: an adaptive threshold per hidden layer that brings the fraction of
neurons active per step to a target ``P``, whatever the data set, the epoch budget or ``P``.

Cortical neurons keep their firing near a set point by scaling their excitability
(homeostatic plasticity; Turrigiano 2008, Cell 135:422; Turrigiano & Nelson 2004, Nat Rev
Neurosci 5:97). Here each hidden :class:`~tbnn.nn.neurons.TemporalBinary` layer built with
``adaptive_threshold=True`` subtracts a threshold :math:`\theta_\ell` from its input current
(:math:`x \to x - \theta_\ell`), and after every training step the threshold integrates the
log-ratio of the measured activity :math:`A_\ell` (the exact fraction of the layer's neurons
active per step in the batch) to the target :math:`P`:

.. math::

    \theta_\ell \leftarrow \theta_\ell + \eta\, \sigma_\ell\,
        \mathrm{clip}\Big(\log \frac{A_\ell + \epsilon}{P + \epsilon}, -1, 1\Big),

with :math:`\sigma_\ell` the standard deviation of the layer's input current in the batch
(so the step is in units of the current: no dependence on its scale), :math:`\eta =`
:data:`STEP` and :math:`\epsilon =` :data:`EPS`. It is an integral controller on
:math:`\log A`: at a fixed point :math:`A_\ell = P`. The log-ratio makes the step relative,
the same for :math:`P` = 5 % and 1 %, and the clip bounds it while the activity is far off
(at most :math:`\eta\sigma` a step). Near the target the loop gain per step is
:math:`\eta\,\sigma\,\partial \log A / \partial\theta \approx \eta z` (:math:`z \approx 1.6`
to 2.3 standard deviations for a Gaussian tail at 5 % to 1 %), far below the limit of 2 of a
stable discrete integrator, and large enough that the threshold settles in a few tens of
steps. One set of defaults serves every ``P``, data set and epoch budget; no weight is tuned.

The controller's only state is the thresholds, buffers of the model: they are saved with its
weights and in every checkpoint, so a resumed run is bit-identical.

>>> import torch
>>> from tbnn.nn.neurons import TemporalBinary
>>> n = TemporalBinary(4, adaptive_threshold=True)
>>> step_threshold(n, active=0.2, target=0.02, scale=1.0)  # far above the target: one full step up
0.05
>>> float(n.threshold)
0.05
"""

from __future__ import annotations

import math

import torch

from tbnn.nn.neurons import TemporalBinary

__all__ = ["STEP", "EPS", "CLIP", "step_threshold", "controller_state"]

#: :math:`\eta`, the threshold step in units of the input current's standard deviation.
STEP = 0.05
#: :math:`\epsilon`, keeps the log-ratio finite for a silent layer or ``P = 0``.
EPS = 1e-4
#: the bound of the log-ratio (one full step while the activity is off by more than ``e``).
CLIP = 1.0


@torch.no_grad()
def step_threshold(neuron: TemporalBinary, active: float, target: float, scale: float,
                   step: float = STEP) -> float:
    r"""One controller update of ``neuron.threshold`` (see the module docstring); returns the step taken.

    ``active``: :math:`A`, the measured fraction active per step; ``target``: :math:`P`;
    ``scale``: :math:`\sigma`, the input current's standard deviation.

    Raises
    ------
    ValueError
        ``neuron`` has no adaptive threshold.
    """
    if not getattr(neuron, "adaptive_threshold", False):
        raise ValueError("neuron must be built with adaptive_threshold=True to be rate-controlled.")
    err = math.log((active + EPS) / (target + EPS))
    delta = step * scale * max(-CLIP, min(CLIP, err))
    neuron.threshold.add_(delta)
    return delta


def controller_state(neurons: dict[str, TemporalBinary]) -> dict[str, float]:
    """Each controlled layer's threshold :math:`\\theta_\\ell` (for metrics and reports)."""
    return {k: float(n.threshold) for k, n in neurons.items() if getattr(n, "adaptive_threshold", False)}
