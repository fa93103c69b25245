r"""Homeostatic rate control: an adaptive threshold per hidden layer that brings the fraction of
neurons active per step to a target ``P``, whatever the data set, the epoch budget or ``P``.

Cortical neurons keep their firing near a set point by scaling their excitability
(homeostatic plasticity; Turrigiano 2008, Cell 135:422; Turrigiano & Nelson 2004, Nat Rev
Neurosci 5:97). Here each hidden :class:`~tbnn.nn.neurons.TemporalBinary` layer built with
``adaptive_threshold="layer"`` (one threshold per layer, the default of a rate target) or
``"neuron"`` (one per neuron) subtracts a threshold :math:`\theta` from its input current
(:math:`x \to x - \theta`), and after every training step each threshold integrates the
relative error of the measured activity :math:`A` (the exact fraction of steps its layer's
neurons, or its neuron, fired in the batch) against the target :math:`P`:

.. math::

    \theta \leftarrow \theta + \eta\, \sigma\,
        \mathrm{clip}\Big(\frac{A - P}{P + \epsilon}, -1, 1\Big),

with :math:`\sigma` the standard deviation of the input current over the batch (of the
layer, or of the neuron; so the step is in units of the current, whatever its scale),
:math:`\eta =` :data:`STEP` and :math:`\epsilon =` :data:`EPS`. It is an integral
controller: at its fixed point the mean activity is :math:`P`. Dividing by :math:`P` makes the
step relative, the same for :math:`P` = 5 % and 1 %, and the clip bounds it while the activity
is far off (at most :math:`\eta\sigma` a step: from 20 % to 1 % active, about 2.3σ for a
Gaussian current, takes at least 230 steps). Near the target the loop gain per step is
:math:`\eta\,\sigma\,\partial A / \partial\theta / P \approx \eta z` (:math:`z \approx 1.6`
to 2.3 for a Gaussian tail at 5 % to 1 %), far below the limit of 2 of a stable discrete
integrator. Per neuron, the relative error of one batch is noisy (a few spikes), but it is
linear in :math:`A` below the clip, so its mean is the error of the mean rate. One set of
defaults serves every ``P``, data set and epoch budget; no weight is tuned.

The step is slow on purpose. Thresholds alone (the first version, per neuron, :math:`\eta =
0.05`) meet the target, but a network they hold below about 3 % active stops learning: on
digits, 2 % active gave 48–56 % accuracy and 1 % gave 29–32 %, against 98 % unregularised.
Beside them, the Lagrange multiplier of :mod:`tbnn.nn.multiplier` teaches the network a sparse
code through the gradient, but only while the rate is above :math:`P`: the slower the
thresholds, the longer the multiplier acts. :math:`\eta =` 0.01 reaches the target within
±20 % in 20 epochs on digits (about 450 steps) at P = 1 % (measured in
``simulations/sparse_activity.py --control``, ``docs/sparsity.md``).

A layer threshold leaves the neurons' rates free (some fall silent, some fire often, as in
cortex); per-neuron thresholds equalise them and keep every neuron in use, which costs
accuracy below a few percent (digits, 2 %, rectify grid, with the multiplier, default steps: 62 %
per neuron against 96 % per layer, seed 0).

The target is annealed, not imposed from the first step. Over the first fraction :math:`f`
(:data:`ANNEAL`) of the :math:`n` training steps the controllers chase a target that falls
geometrically from the activity :math:`A_0` measured at the first step (about 20 % for an
unregularised TBN) to :math:`P`, and :math:`P` itself after that
(:func:`annealed_target`):

.. math::

    P_t = \max\Big(P,\; A_0 \Big(\frac{P}{A_0}\Big)^{t / (f n)}\Big),

a continuation method in the spirit of curriculum learning (Bengio et al. 2009, "Curriculum
learning", ICML, pp. 41–48) and of the gradual pruning schedules of Zhu & Gupta 2018
("To prune, or not to prune", ICLR workshop, arXiv:1710.01878; there the sparsity rises from
0 to its final value over a fixed share of training). Because :math:`f` is a share of the training steps, one
value serves every epoch budget and data set. On digits at :math:`P` = 1 % (TBN MLP 256×2,
T = 4, running grid, both controllers, prototypes) it lifted accuracy at 20 epochs from 77.1 /
77.6 % to 85.6 / 85.1 % (seeds 0 / 1), and at 60 epochs reached 94.0–94.9 % (seeds 0–4, 3.2
points below the unregularised network, paired; with the multiplier's leak of
:mod:`tbnn.nn.multiplier`, 0.8 in a prototype and 2.0 ± 0.7 in the sweep with :math:`f` = 0.5).
:math:`f` = 0.3 (the default since) leaves more of training at :math:`P`: at 60 epochs on
digits it was better at every target, grid and input code of the sweep (P = 1 %: 1.4 ± 0.8
points below the unregularised network, paired, seeds 0–4; 1.9 ± 0.6 on seeds 5–9, where
:math:`f` = 0.5 gave 2.1), with every rate closer to :math:`P`; on mnist1d it was within about
two points of :math:`f` = 0.5 either way (``docs/sparsity.md`` §5). :math:`f` = 0.75 was worse
(P = 1 %: 3.5 points below). Annealing over a fixed number of steps instead fits one budget
only: over 300 or 400 of the 450 steps of 20 epochs the rate ended 7–46 % above :math:`P`;
over 600 or 900 of 1350 steps at 60 epochs accuracy was 96.0 and 95.1 % (seed 0).

The step cools as training ends. With a constant :math:`\eta` each batch's error keeps moving
the thresholds while the learning rate falls to zero under the cosine schedule of
:func:`tbnn.fit`: the network the weights settle on is read through thresholds that still wander
with the last batches' noise. A stochastic-approximation controller lets its steps decrease
instead (Robbins & Monro 1951, "A stochastic approximation method", Ann Math Stat 22:400), and
here they follow the learning rate's own cosine over the :math:`n` training steps
(:data:`STEP_SCHEDULE`, :func:`cooled_step`):

.. math::

    \eta_t = \eta\, \tfrac{1}{2}\big(1 + \cos(\pi t / n)\big),

so thresholds and weights come to rest together (without :math:`n`, e.g. in a loop of your
own without ``total_steps``, :math:`\eta` stays constant). On digits at :math:`P` = 1 %, 60
epochs (TBN MLP 256×2, running grid, binary input), it brought the network from 1.4 ± 0.9 and
1.9 ± 0.7 points below the unregularised one (paired, seeds 0–4 and 5–9) to 0.7 ± 0.9 and
1.3 ± 0.9, and on seeds 10–14, not used to choose it, from 1.3 ± 0.4 to 0.8 ± 0.7 (prototypes,
``docs/sparsity.md`` §5); cooling the multiplier's step as well was no better (0.7, 1.5, 1.6).

The thresholds are buffers of the model: they are saved with its weights and in every
checkpoint, so a resumed run is bit-identical.

The input encoder is controlled by its gain, not a threshold. Cutting the encoder's small
inputs with a threshold removes few spikes (a small value's code has one or two) and much of
the image (digits, P = 1 %, input at 20 % active per step: 2.9 and 4.2 points below the
plain encoder, seeds 0 and 1, prototype). Its most expensive values are the largest: with the
binary code the top of the grid fires in every step. So an input target :math:`Q` moves the encoder's grid headroom
:math:`g \ge 1` (:class:`~tbnn.nn.neurons.TemporalBinary` ``headroom``; the grid's top at
:math:`lo + g\,(hi - lo)`) by the same integral controller in logarithmic units,

.. math::

    \log g \leftarrow \max\Big(0,\; \log g + \eta_t\,
        \mathrm{clip}\Big(\frac{A_\text{in} - Q_t}{Q_t + \epsilon}, -1, 1\Big)\Big)

(:func:`step_headroom`; the same :math:`\eta_t` cooling and annealed target as the thresholds'),
the gain control of sensory neurons that keeps their firing in range as the input's contrast
changes (Shapley & Enroth-Cugell 1984, Prog Retinal Res 3:263; Baccus & Meister 2002, Neuron
36:909). The rate falls in steps as :math:`g` grows (a code's spikes change where a value crosses
a level), about monotonically over the range that matters (digits, T = 4: 31.6 % active at
:math:`g` = 1, 21.4 % at 1.25, 19.7 % at 1.5, 19.2 % at 2). At :math:`g = 1` the controller
rests: a target above the encoder's own rate leaves it as it is.

>>> import torch
>>> from tbnn.nn.neurons import TemporalBinary
>>> n = TemporalBinary(4, adaptive_threshold=True)
>>> round(float(step_threshold(n, active=0.2, target=0.02, scale=1.0)), 4)  # far above: one full step up
0.01
>>> round(float(step_threshold(n, active=0.015, target=0.02, scale=2.0)), 4)  # 25 % below: ~1/4 step down, units of 2
-0.005
>>> round(float(n.threshold), 4)
0.005
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tbnn.nn.neurons import TemporalBinary

__all__ = ["STEP", "EPS", "CLIP", "ANNEAL", "STEP_SCHEDULE", "STEP_SCHEDULES", "relative_error", "annealed_target",
           "clipped_error", "cooled_step", "step_threshold", "step_headroom", "controller_state"]

#: :math:`\eta`, the threshold step in units of the input current's standard deviation.
STEP = 0.01
#: :math:`\epsilon`, keeps the relative error finite for ``P = 0``.
EPS = 1e-4
#: the bound of the relative error (one full step while the activity is off by more than ``P``).
CLIP = 1.0
#: :math:`f`, the share of the training steps over which the target falls from :math:`A_0` to :math:`P`.
ANNEAL = 0.3
#: How the thresholds' step changes over training: ``"cosine"`` (:func:`cooled_step`) or ``"constant"``.
STEP_SCHEDULES: tuple[str, ...] = ("cosine", "constant")
#: The default of :data:`STEP_SCHEDULES`.
STEP_SCHEDULE = "cosine"


def cooled_step(step: float, t: int, steps: int | None, schedule: str = STEP_SCHEDULE) -> float:
    r"""The thresholds' step at training step ``t`` (from 0) of ``steps``:
    :math:`\eta\,\frac{1}{2}(1 + \cos(\pi t / n))` for ``"cosine"`` (0 from step :math:`n` on),
    :math:`\eta` for ``"constant"`` or when ``steps`` is unknown (``None``).

    >>> cooled_step(0.01, 0, 100), cooled_step(0.01, 50, 100), cooled_step(0.01, 100, 100)
    (0.01, 0.005, 0.0)
    >>> cooled_step(0.01, 50, None), cooled_step(0.01, 50, 100, "constant")
    (0.01, 0.01)
    """
    if schedule not in STEP_SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(STEP_SCHEDULES)}; got {schedule!r}.")
    if schedule == "constant" or not steps:
        return float(step)
    return float(step) * (0.5 * (1.0 + math.cos(math.pi * min(t, steps) / steps)))


def annealed_target(target: float, start: float, step: int, steps: float) -> float:
    r"""The target of training step ``step`` (counted from 0): :math:`P_t = \max(P, A_0 (P/A_0)^{t/\tau})`,
    :math:`\tau` = ``steps`` (the annealing's length in training steps), :math:`A_0` = ``start`` (the
    activity at the first step); :math:`P` from step :math:`\tau` on, and always when :math:`\tau \le 0`
    or :math:`A_0 \le P`.

    >>> annealed_target(0.01, 0.2, 0, 100), round(annealed_target(0.01, 0.2, 50, 100), 4)
    (0.2, 0.0447)
    >>> annealed_target(0.01, 0.2, 100, 100), annealed_target(0.01, 0.2, 5, 0)
    (0.01, 0.01)
    """
    if steps <= 0 or start <= target or step >= steps:
        return float(target)
    return max(float(target), start * (target / start) ** (step / steps))


def relative_error(active: Tensor, target: float) -> Tensor:
    r"""The relative rate error :math:`(A - P) / (P + \epsilon)` both controllers integrate (this
    one and :mod:`tbnn.nn.multiplier`), unclipped; ``active`` a tensor (any shape, any grad).

    >>> round(float(relative_error(torch.tensor(0.03), 0.02)), 3)
    0.498
    """
    return (active - target) / (target + EPS)


def clipped_error(active: float, target: float) -> float:
    r""":math:`\mathrm{clip}((A - P)/(P + \epsilon), -1, 1)` of a measured rate ``active`` (a number),
    in double precision: the step of the multiplier (:mod:`tbnn.nn.multiplier`) and of the input
    headroom (:func:`step_headroom`).

    >>> clipped_error(0.03, 0.02), clipped_error(0.0, 0.02)
    (0.49751243781094523, -0.9950248756218906)
    """
    err = float(relative_error(torch.tensor(float(active), dtype=torch.float64), target))
    return min(CLIP, max(-CLIP, err))


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
    err = relative_error(a, target).clamp(-CLIP, CLIP)
    delta = (step * s * err).to(th.dtype).expand(th.shape) if th.dim() else (step * s * err).to(th.dtype).reshape(())
    th.add_(delta)
    return delta


@torch.no_grad()
def step_headroom(encoder: TemporalBinary, active: float, target: float, step: float = STEP) -> float:
    r"""One controller update of ``encoder.headroom`` :math:`g` (see the module docstring):
    :math:`\log g \leftarrow \max(0, \log g + \eta\,\mathrm{clip}((A - Q)/(Q + \epsilon), -1, 1))`;
    returns the step taken in :math:`\log g`. ``active``: :math:`A`, the encoder's measured fraction
    active per step; ``target``: :math:`Q`; ``step``: :math:`\eta`.

    >>> enc = TemporalBinary(4, grid="minmax", headroom=1.0)
    >>> round(step_headroom(enc, active=0.5, target=0.2), 4), round(float(enc.headroom), 4)  # far above: one step
    (0.01, 1.0101)
    >>> round(step_headroom(enc, active=0.0, target=0.2), 4), round(float(enc.headroom), 4)  # far below: a step down
    (-0.01, 1.0)
    >>> step_headroom(enc, active=0.0, target=0.2) > -1e-5, float(enc.headroom)  # never below g = 1
    (True, 1.0)

    Raises
    ------
    ValueError
        ``encoder`` has no headroom.
    """
    g = getattr(encoder, "headroom", None)
    if g is None:
        raise ValueError("encoder must be built with a headroom (the minmax grid's) to be rate-controlled.")
    before = math.log(float(g))
    after = max(0.0, before + step * clipped_error(active, target))
    g.fill_(math.exp(after))
    return after - before


def controller_state(neurons: dict[str, TemporalBinary]) -> dict[str, float]:
    """Each controlled layer's threshold :math:`\\theta_\\ell` (for metrics and reports)."""
    return {k: float(n.threshold.mean()) for k, n in neurons.items() if getattr(n, "adaptive_threshold", None)}
