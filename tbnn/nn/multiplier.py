r"""Rate constraint by a Lagrange multiplier: dual ascent teaches a sparse code through the gradient.

The homeostatic thresholds of :mod:`tbnn.nn.homeostasis` bring a layer's activity to the
target, but a threshold only cuts: the network's weights never learn a code that is sparse
by itself, and below a few percent active it stops learning. Beside the thresholds, each
controlled layer :math:`\ell` carries the constraint "fraction active per step at most
:math:`P`", written relative to :math:`P`,

.. math:: g_\ell = \frac{\tilde A_\ell - P}{P + \epsilon} \le 0,

with :math:`\tilde A_\ell` the layer's activity carrying the surrogate gradient of
:func:`tbnn.nn.regularize.step_activity` (value: the exact fraction of spikes). Training
minimises the Lagrangian and raises each multiplier :math:`\lambda_\ell \ge 0` by projected
gradient ascent while the constraint is violated (the basic differential multiplier method,
Platt & Barr 1988, "Constrained differential optimization", Neural Information Processing
Systems, AIP, pp. 612–621; Bertsekas 1999,
*Nonlinear Programming*, ch. 3 and 6):

.. math::

    L = \mathrm{CE} + \sum_\ell \lambda_\ell\, g_\ell, \qquad
    \lambda_\ell \leftarrow \max\Big(0,\; (1 - \rho)\,\lambda_\ell + \eta_\lambda\,
        \mathrm{clip}(g_\ell, -1, 1)\Big)

after every training step, :math:`g_\ell` measured on the batch (:math:`\eta_\lambda =`
:data:`MULTIPLIER_STEP`, :math:`\rho =` :data:`MULTIPLIER_LEAK`, :math:`\epsilon` =
:data:`tbnn.nn.homeostasis.EPS`). The leak :math:`\rho` is the dual ascent of a Lagrangian
whose multipliers pay a Tikhonov term :math:`\rho\lambda^2 / (2\eta_\lambda)` (the regularised
primal-dual method of Koshal, Nedić & Shanbhag 2011, SIAM J Optim 21:1046): the multiplier
stays bounded (:math:`\lambda \le \eta_\lambda / \rho` = 5) and forgets, with a time constant of
:math:`1/\rho` = 500 steps, the pressure it built while the rate was above the target. The multiplier
is a weight that finds itself: it grows while the layer fires more than :math:`P` and stops
when it does not. Writing the constraint relative to :math:`P` makes one step size serve every
:math:`P` (the multiplier's units are those of the cross-entropy, whatever :math:`P`), and the
clip bounds its growth while the activity is far above (at most :math:`\eta_\lambda` a step).

With the thresholds beside it, both integrate the same relative error: the thresholds make
the target exact; the multiplier, while the (slow) thresholds have not yet reached it, pushes
the weights toward a code that needs less cutting. Alone (no thresholds) the gradient does not
reach low targets: on digits it stalls near 4 % (first hidden layer) and 2 % (second) however
large the multiplier grows, and accuracy then falls (``docs/sparsity.md``).

Why it leaks: once the thresholds hold the rate at :math:`P` the constraint is met on average and
plain dual ascent keeps :math:`\lambda` where it stopped (about 1.3 on digits at :math:`P` = 1 %),
a surrogate pressure toward silence that the thresholds then undo by falling: a tug of war the
cross-entropy pays for. With the leak the multiplier fades once the rate is held, and the weights
keep the sparse code it taught them. On digits at :math:`P` = 1 % (TBN MLP 256×2, T = 4,
running grid, annealed target, 60 epochs, seeds 0–4, paired against the unregularised network)
the accuracy gap went from −3.2 points without the leak to −0.8 with :math:`\rho` = 0.002 and
−1.4 with 0.005 (its rates 3–12 % above :math:`P`, against 0–6 %) in prototypes that applied
the leak before the loss; the committed controller's sweep gave −2.0 ± 0.7 on the same seeds
with the target annealed over half of training, −1.4 ± 0.8 with the default share of 30 %, and
−0.7 ± 0.8 once the thresholds' step also cooled with the learning rate (``docs/sparsity.md`` §5).

The multipliers are the regulariser's state (:meth:`tbnn.nn.regularize.ActivityRegularizer.state_dict`);
:func:`tbnn.fit` saves them in every checkpoint, so a resumed run is bit-identical.

>>> lam = step_multiplier(0.0, active=0.04, target=0.01)  # far above: one full step up
>>> lam
0.01
>>> round(step_multiplier(lam, active=0.0, target=0.01), 6)  # silent: about one step down, and the leak
7.9e-05
>>> step_multiplier(0.005, active=0.0, target=0.01)  # never below 0
0.0
"""

from __future__ import annotations

import math

import torch  # noqa: F401 (the docstring examples use it)
from torch import Tensor

from tbnn.nn.homeostasis import clipped_error, relative_error

__all__ = ["MULTIPLIER_STEP", "MULTIPLIER_LEAK", "lagrangian_term", "step_multiplier"]

#: :math:`\eta_\lambda`, the multiplier's step per training step (per unit of clipped relative error).
MULTIPLIER_STEP = 0.01
#: :math:`\rho`, the share of the multiplier that leaks away per training step.
MULTIPLIER_LEAK = 0.002


def step_multiplier(lam: float, active: float, target: float, step: float = MULTIPLIER_STEP,
                    leak: float = MULTIPLIER_LEAK) -> float:
    r"""One projected dual-ascent step: :math:`\max(0, (1 - \rho)\lambda + \eta_\lambda\,\mathrm{clip}(g, -1, 1))`
    with :math:`g = (A - P)/(P + \epsilon)` measured (``active`` :math:`A`, ``target`` :math:`P`,
    ``leak`` :math:`\rho`).

    Computed in double precision on Python floats (the state saved in checkpoints is exact).

    Raises
    ------
    ValueError
        ``lam`` is negative or not finite.
    """
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}.")
    return max(0.0, (1.0 - leak) * lam + step * clipped_error(active, target))


def lagrangian_term(lam: float, active: Tensor, target: float) -> Tensor:
    r"""The layer's term :math:`\lambda\, g` of the Lagrangian, :math:`g = (\tilde A - P)/(P + \epsilon)`,
    with the gradient of ``active`` (:math:`\tilde A`, a 0-d tensor).

    >>> round(float(lagrangian_term(2.0, torch.tensor(0.03), 0.02)), 3)
    0.995
    """
    return lam * relative_error(active, target)
