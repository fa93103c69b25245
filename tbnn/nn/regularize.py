r"""Activity regularisation: train a temporal binary network to fire as sparsely as cortex.

Only a few percent of cortical neurons are active at once (Attwell & Laughlin 2001, J Cereb
Blood Flow Metab 21:1133, energy budget <= ~15 %; Lennie 2003, Curr Biol 13:493, < 1 %);
a trained TBN fires about 20 % of its hidden neurons per step. :class:`ActivityRegularizer`
adds a penalty that pushes the fraction of hidden neurons active per step toward a target
``P``.

What it acts on
---------------
A binary neuron (:class:`tbnn.nn.neurons.TemporalBinary`, ``binary`` scheme) with grid value
:math:`v = \mathrm{clip}(x / \max_\text{block}(x), 0, 1)` emits the :math:`T` bits of its
code :math:`c = \min(\lfloor L v \rfloor, L - 1)`, :math:`L = 2^T`; its fraction of active
steps is :math:`\mathrm{popcount}(c) / T`, piecewise constant in :math:`x`: no gradient.
The regulariser measures exactly that fraction, layer by layer,

.. math:: A_\ell = \frac{1}{B\,T\,N_\ell} \sum_{b,t,i} s^{(\ell)}_{b,t,i},

and gives it the gradient of a continuous surrogate :math:`S_\ell` by the same
straight-through construction as the codes (value exact, gradient of the surrogate):

.. math:: \tilde A_\ell = S_\ell + \mathrm{sg}(A_\ell - S_\ell).

Two surrogates (``surrogate=``):

* ``"grid"`` (default): the mean grid value :math:`S = \overline{v}`, with
  :math:`v = \mathrm{relu}(x) / \max_\text{block} \mathrm{relu}(x)` differentiated
  through the block maximum as well. Like the spikes, it is blind to a uniform rescaling
  of :math:`x` (e.g. by the BatchNorm gain before the neuron), so the penalty can only be
  lowered by making the code sparser, not by shrinking :math:`x`.
* ``"code"``: the mean normalised code value :math:`S = \overline{q / q_\max}`,
  :math:`q_\max = \sum_t w_t = L - 1`, where :math:`q` is the quantity of
  :class:`tbnn.core.coding.SpikeCode` that carries the straight-through gradient of the
  denoising affine transform (Ye et al., arXiv:2409.09245; ``q = u + sg(c - u)``,
  ``u = L v - 1/2`` in :func:`tbnn.core.quant.affine_fast`), block maximum detached as in the
  DAT path: :math:`\partial S / \partial x_i = L / ((L - 1)\,N\,\max_\text{block} x)`
  for :math:`x_i > 0`. It sees a rescaling of :math:`x` as a change of activity (which it
  is not), and on digits large weights collapse the network with it
  (``simulations/sparse_activity.py``).

Either way the gradient then flows upstream through the layers' DAT paths as in training
without the penalty. Both surrogates are unbiased on average: for :math:`v` uniform in
:math:`[0, 1]`, :math:`\mathrm{popcount}(c)/T`, :math:`c/(L-1)` and :math:`v` all have mean
1/2, and all are 0 for a silent neuron and 1 for a saturated one.

The penalty is :math:`\frac{1}{n}\sum_\ell (\tilde A_\ell - P)^2` over the ``n`` hooked
layers, and the loss :math:`\mathrm{CE}(\text{logits}, y) + W \cdot \text{penalty}`.

The target alone: homeostatic control
-------------------------------------
Given ``P`` without a weight, the regulariser is a rate controller: every hooked layer must
have an adaptive threshold (``ModelConfig(adaptive_threshold="layer")``, the default of
``tbnn.train(rate_target=P)``, or ``"neuron"``), and each call in training (i) moves each
layer's threshold by the integral controller of :mod:`tbnn.nn.homeostasis` toward activity
``P`` and (ii) adds to the loss the Lagrange-multiplier term of :mod:`tbnn.nn.multiplier`,
:math:`\sum_\ell \lambda_\ell (\tilde A_\ell - P)/(P + \epsilon)`, whose multipliers rise
by dual ascent while a layer fires above ``P`` (``multiplier_step=0``: thresholds alone). Both
chase a target annealed from the first step's activity down to ``P`` over the first share
``anneal`` of the ``total_steps`` training steps (:func:`tbnn.nn.homeostasis.annealed_target`;
:func:`tbnn.fit` gives ``total_steps``; unknown or ``anneal=0``: ``P`` from the start), and the
thresholds' step cools with the learning rate's cosine over those steps
(:func:`tbnn.nn.homeostasis.cooled_step`). The
weight ``W`` is an expert override (the penalty above, with or without thresholds).

The input encoder is not one of the hooked layers: its spikes carry the data. ``input_target=Q``
rate-controls it on its own, through its grid headroom (:func:`tbnn.nn.homeostasis.step_headroom`;
the model's encoder built with ``ModelConfig(input_headroom=1)``), with the same cooling step and
a target annealed from its own first rate, so that synaptic operations fall with the input's
spikes too.

The floor of the grid
---------------------
With the max-scaled rectifying grid the largest input of every block that is not silent
sits at :math:`v = 1`, so its code is :math:`L - 1` (all bits): it fires in every step.
Hence at least (non-silent blocks) / (neurons) of a layer is active per step, ``1/block``
when every block responds (:func:`activity_floor` measures it); below that only silencing
whole blocks helps. A larger ``block`` (or ``block=None``: the whole layer one block)
lowers the floor.

>>> import torch
>>> from tbnn.nn.models import ModelConfig, build_model
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = build_model(ModelConfig(in_features=8, hidden=16, layers=1, block=8))
>>> reg = ActivityRegularizer(net, target=0.05, weight=1.0)
>>> logits = net(torch.randn(32, 8))
>>> loss = reg(logits, torch.randint(0, 10, (32,)))
>>> sorted(reg.activity()), 0 < float(reg.activity()["neurons.0"]) < 1
(['neurons.0'], True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tbnn.core.coding import SpikeCode
from tbnn.nn.homeostasis import (ANNEAL, STEP, STEP_SCHEDULE, STEP_SCHEDULES, annealed_target, controller_state,
                                  cooled_step, step_headroom, step_threshold)
from tbnn.nn.multiplier import MULTIPLIER_LEAK, MULTIPLIER_STEP, lagrangian_term, step_multiplier
from tbnn.nn.protocol import spiking_modules
from tbnn.core.quant import to_blocks
from tbnn.core.validate import check_fraction

__all__ = ["ActivityRegularizer", "activity_floor", "fraction_active", "step_activity"]


def step_activity(code: SpikeCode, x: Tensor | None = None, surrogate: str = "grid") -> Tensor:
    r"""Fraction of neurons active per step of one layer, with a surrogate gradient.

    Value: the mean of ``code.spikes`` (over steps, samples and neurons). Gradient:
    ``surrogate="code"``: that of :math:`\overline{q / q_\max}` (the DAT path, block
    maximum detached; see the module docstring); ``"grid"``: that of the mean grid value
    :math:`\overline{v}`, :math:`v = \mathrm{relu}(x) / \max_\text{block} \mathrm{relu}(x)`
    with the block maximum differentiated too (needs the neuron's input ``x``), which is
    blind to a uniform rescaling of ``x``, as the spikes are. A 0-d tensor.
    """
    frac = code.spikes.to(code.q.dtype).mean()
    if surrogate == "code":
        sur = (code.q / code.weights.sum()).mean()
    elif surrogate == "grid":
        if x is None:
            raise ValueError("surrogate 'grid' needs the neuron's input x.")
        xb, valid, _ = to_blocks(torch.relu(x.flatten(1)), -1, code.block)
        top = xb.amax(-1, keepdim=True).clamp_min(1e-12)
        sur = (xb / top)[valid.expand_as(xb)].mean()
    else:
        raise ValueError(f"surrogate must be 'code' or 'grid', got {surrogate!r}.")
    return sur + (frac - sur).detach()


def activity_floor(code: SpikeCode) -> float:
    """The grid's floor of :func:`step_activity`: the fraction of a layer's neurons that are
    the top neuron of a non-silent block, averaged over samples.

    With the max-scaled rectifying grid each such neuron fires in every step.
    """
    q = code.q.detach()
    k = q.shape[-1]
    bs = k if code.block is None else min(code.block, k)
    nb = -(-k // bs)
    pad = nb * bs - k
    qp = torch.nn.functional.pad(q, (0, pad)) if pad else q
    active_blocks = (qp.reshape(*q.shape[:-1], nb, bs) > 0).any(-1).sum(-1).to(torch.float64)
    return float(active_blocks.mean() / k)


def _check_share(v: Any, name: str, upper: bool) -> float:
    """``v`` as a float in [0, 1] (``upper``) or [0, 1); ``ValueError`` naming ``name`` otherwise."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v
    if not ok or v > 1 or (v == 1 and not upper):
        raise ValueError(f"{name} must be a share in [0, 1{']' if upper else ')'}, got {v!r}.")
    return float(v)


def _check_steps(step: Any, step_schedule: Any, multiplier_step: Any) -> float:
    """``step`` as a float after checking it, ``step_schedule`` and ``multiplier_step``
    (``ValueError`` naming the first that is wrong)."""
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a finite number > 0, got {step!r}.")
    if step_schedule not in STEP_SCHEDULES:
        raise ValueError(f"step_schedule must be one of {', '.join(STEP_SCHEDULES)}; got {step_schedule!r}.")
    if (isinstance(multiplier_step, bool) or not isinstance(multiplier_step, (int, float))
            or not math.isfinite(multiplier_step) or multiplier_step < 0):
        raise ValueError(f"multiplier_step must be a finite number >= 0, got {multiplier_step!r}.")
    return float(step)


class ActivityRegularizer:
    r"""Cross-entropy plus a penalty on the fraction of hidden neurons active per step.

    Attaches forward hooks to the model's :class:`~tbnn.nn.neurons.TemporalBinary` modules,
    except the input encoder (``model.encoder`` for models from :mod:`tbnn.nn.models`) and
    any module in ``exclude``; every forward records each hooked layer's
    :func:`step_activity` (the last forward only, so nothing accumulates).

    Parameters
    ----------
    model : nn.Module
    target : float
        ``P``, the fraction of neurons active per step to reach, in [0, 1].
    weight : float, optional
        ``W >= 0``, the weight of the penalty in the loss. ``None`` (default): no penalty;
        the layers' adaptive thresholds are rate-controlled (:mod:`tbnn.nn.homeostasis`).
    exclude : iterable of nn.Module, optional
        Further TemporalBinary modules not to regularise.
    base : callable, optional
        The loss ``base(logits, y)`` to add the penalty to (default: cross-entropy).
    step : float
        The thresholds' step :math:`\eta` (default :data:`tbnn.nn.homeostasis.STEP`; the
        same for every target and data set).
    step_schedule : str
        ``"cosine"`` (default, :data:`tbnn.nn.homeostasis.STEP_SCHEDULE`): the thresholds'
        step follows the learning rate's cosine over the ``total_steps`` training steps and
        reaches 0 at the end (:func:`tbnn.nn.homeostasis.cooled_step`); ``"constant"``: it stays
        :math:`\eta`. Constant either way when ``total_steps`` is unknown.
    multiplier_step : float
        The Lagrange multipliers' step :math:`\eta_\lambda` (default
        :data:`tbnn.nn.multiplier.MULTIPLIER_STEP`); ``0``: thresholds alone. Used without
        ``weight`` only.
    multiplier_leak : float
        The share :math:`\rho` of each multiplier that leaks away per step (default
        :data:`tbnn.nn.multiplier.MULTIPLIER_LEAK`), in [0, 1).
    anneal : float
        The share :math:`f` of the training steps over which the controllers' target falls from
        the first step's activity to ``P`` (default :data:`tbnn.nn.homeostasis.ANNEAL`; ``0``:
        ``P`` from the start). Used without ``weight`` only.
    total_steps : int, optional
        The number of training steps :math:`n` (:func:`tbnn.fit` sets it from the epochs and
        the batches when not given); ``None``: no annealing.
    input_target : float, optional
        ``Q``, the input encoder's fraction active per step to reach by its grid headroom
        (``model.encoder`` must have one: ``ModelConfig(input_headroom=1)``); ``None`` (default):
        the encoder is left alone.

    Use ``loss=reg`` in :func:`tbnn.fit` (or call ``reg(logits, y)`` in any PyTorch loop
    after ``logits = model(x)``); :meth:`remove` detaches the hooks. The multipliers are the
    regulariser's state (:meth:`state_dict` / :meth:`load_state_dict`; :func:`tbnn.fit`
    keeps them in its checkpoints).

    Raises
    ------
    ValueError
        ``target`` outside [0, 1], ``weight``, ``step``, ``multiplier_step``, ``multiplier_leak``
        or ``anneal`` negative or not finite (``step`` 0, ``anneal`` above 1, ``multiplier_leak`` 1
        or above), ``step_schedule`` not one of :data:`tbnn.nn.homeostasis.STEP_SCHEDULES`,
        ``total_steps`` not a positive integer, a model without a hidden
        TemporalBinary module, (without ``weight``) a hidden layer without an adaptive
        threshold, or ``input_target`` outside [0, 1] or without an encoder that has a headroom.
    """

    def __init__(self, model: nn.Module, target: float, weight: float | None = None,
                 exclude: Iterable[nn.Module] | None = None, surrogate: str = "grid",
                 base: Any = None, step: float = STEP, multiplier_step: float = MULTIPLIER_STEP,
                 anneal: float = ANNEAL, total_steps: int | None = None,
                 multiplier_leak: float = MULTIPLIER_LEAK, step_schedule: str = STEP_SCHEDULE,
                 input_target: float | None = None) -> None:
        if surrogate not in ("code", "grid"):
            raise ValueError(f"surrogate must be 'code' or 'grid', got {surrogate!r}.")
        self.surrogate = surrogate
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.target = check_fraction(target, "target")
        try:
            w = 0.0 if weight is None else float(weight)
        except (TypeError, ValueError):
            w = float("nan")
        if isinstance(weight, bool) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}.")
        self.weight = w
        self.step = _check_steps(step, step_schedule, multiplier_step)
        #: how the thresholds' step changes over training (:func:`tbnn.nn.homeostasis.cooled_step`)
        self.step_schedule = step_schedule
        #: the multipliers' leak per step, and the annealing's share of the training steps
        self.multiplier_leak = _check_share(multiplier_leak, "multiplier_leak", upper=False)
        self.anneal = _check_share(anneal, "anneal", upper=True)
        self.total_steps: int | None = None
        if total_steps is not None:
            self.set_total_steps(total_steps)
        #: training steps taken, and the activity of the first (the annealing's start; None before it)
        self.steps = 0
        self.start_rate: float | None = None
        if base is not None and not callable(base):
            raise ValueError(f"base must be a callable loss(logits, y), got {type(base).__name__}.")
        self.base = base if base is not None else F.cross_entropy
        self.model = model
        skip = {id(m) for m in (exclude or ())}
        enc = getattr(model, "encoder", None)
        if isinstance(enc, nn.Module):
            skip.add(id(enc))
        self.names: list[str] = []
        self._handles = []
        self._act: dict[str, Tensor] = {}
        self._codes: dict[str, SpikeCode] = {}
        self._sigma: dict[str, tuple[Tensor, Tensor]] = {}  # layer -> (measured rate, current spread)
        self._rate: dict[str, float] = {}  # layer -> its fraction active in the last training forward
        self.neurons: dict[str, nn.Module] = {}
        for name, mod in spiking_modules(model).items():  # by protocol: a user's neuron too
            if id(mod) not in skip:
                self.names.append(name)
                self.neurons[name] = mod
        if not self.names:
            raise ValueError("model must hold at least one hidden TemporalBinary module (the "
                             "input encoder is not regularised).")
        fixed = [n for n, m in self.neurons.items() if not getattr(m, "adaptive_threshold", None)]
        if weight is None and fixed:
            raise ValueError(f"target without weight rate-controls adaptive thresholds, but layer {fixed[0]} has "
                             "none: build the model with adaptive_threshold 'neuron' or 'layer' (or give weight).")
        #: whether the thresholds are rate-controlled (every hooked layer has one)
        self.controls = not fixed
        #: the multipliers' step (0 when not controlling, or thresholds alone)
        self.multiplier_step = float(multiplier_step) if self.controls else 0.0
        #: each layer's Lagrange multiplier (:mod:`tbnn.nn.multiplier`); empty without them
        self.multipliers: dict[str, float] = {n: 0.0 for n in self.names} if self.multiplier_step else {}
        for name, mod in self.neurons.items():
            self._handles.append(mod.register_forward_hook(self._hook(name)))
        self._control_input(enc, input_target)

    def _control_input(self, enc: Any, input_target: float | None) -> None:
        """Hook the input encoder ``enc`` for its rate controller toward ``input_target`` (if given)."""
        #: ``Q``, the input encoder's target (``None``: not controlled), its rate in the last training
        #: forward, and its rate at the first step (the annealing's start; ``None`` before it)
        self.input_target: float | None = None
        self.encoder: nn.Module | None = None
        self._input_rate: float | None = None
        self.input_start_rate: float | None = None
        if input_target is None:
            return
        self.input_target = check_fraction(input_target, "input_target")
        if not isinstance(enc, nn.Module) or getattr(enc, "headroom", None) is None:
            raise ValueError("input_target rate-controls the input encoder's grid headroom, but the model's "
                             "encoder has none: give model.encoder a TemporalBinary(..., grid='minmax', headroom=1) "
                             "(built-in models: ModelConfig(input_headroom=1)).")
        self.encoder = enc
        self._handles.append(enc.register_forward_hook(self._input_hook))

    def _input_hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, SpikeCode) and module.training:
            self._input_rate = float(output.spikes.float().mean())

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, SpikeCode):
                x = inputs[0]
                if getattr(module, "adaptive_threshold", False):
                    x = x.flatten(1) - module.threshold
                self._codes[name] = output
                self._act[name] = step_activity(output, x, self.surrogate)
                if self.controls and module.training:
                    xd = inputs[0].detach().float().flatten(1)
                    if module.adaptive_threshold == "neuron":  # each neuron's rate and current spread
                        sp = output.spikes.detach()
                        rate = sp.reshape(sp.shape[0], sp.shape[1], -1).float().mean((0, 1))
                        sigma = xd.std(0) if len(xd) > 1 else torch.ones_like(rate)
                    else:
                        rate = self._act[name].detach().float()
                        sigma = xd.std() if xd.numel() > 1 else torch.ones(())
                    self._sigma[name] = (rate, sigma)
                    self._rate[name] = float(self._act[name].detach())
        return hook

    def activity(self) -> dict[str, Tensor]:
        """Each hooked layer's fraction active per step in the last forward (0-d tensors
        carrying the surrogate gradient)."""
        return dict(self._act)

    def floor(self) -> dict[str, float]:
        """Each hooked layer's grid floor (:func:`activity_floor`) in the last forward."""
        return {k: activity_floor(c) for k, c in self._codes.items()}

    def penalty(self) -> Tensor:
        r""":math:`\frac{1}{n}\sum_\ell (\tilde A_\ell - P)^2` over the layers of the last
        forward."""
        if not self._act:
            raise ValueError("penalty() needs a forward pass of the model first.")
        acts = [self._act[n] for n in self.names if n in self._act]
        return torch.stack([(a - self.target) ** 2 for a in acts]).mean()

    def lagrangian(self) -> Tensor:
        r""":math:`\sum_\ell \lambda_\ell (\tilde A_\ell - P)/(P + \epsilon)` over the layers of the
        last forward (:func:`tbnn.nn.multiplier.lagrangian_term`; 0 without multipliers)."""
        goal = self.current_target()
        terms = [lagrangian_term(self.multipliers[n], self._act[n], goal)
                 for n in self.names if n in self._act and n in self.multipliers]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def set_total_steps(self, total_steps: int) -> None:
        """Set :attr:`total_steps`, the training steps the annealing is a share of.

        Raises
        ------
        ValueError
            ``total_steps`` is not a positive integer.
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}.")
        self.total_steps = total_steps

    def current_target(self) -> float:
        """The controllers' target now (:func:`tbnn.nn.homeostasis.annealed_target`): ``P`` when not
        annealing, before the first training step, and after the annealing."""
        return self._annealed(self.target, self.start_rate if self.controls else None)

    def _annealed(self, target: float, start: float | None) -> float:
        """``target`` annealed from ``start`` at this step (:func:`tbnn.nn.homeostasis.annealed_target`);
        ``target`` itself before the first step (``start`` None) or without ``total_steps``."""
        if start is None or not self.total_steps:
            return target
        return annealed_target(target, start, self.steps, self.anneal * self.total_steps)

    def current_input_target(self) -> float | None:
        """The input encoder's target now (``None`` without ``input_target``): :math:`Q` annealed
        from the encoder's first rate over the same share of training as :meth:`current_target`."""
        return None if self.input_target is None else self._annealed(self.input_target, self.input_start_rate)

    def state_dict(self) -> dict[str, Any]:
        """The controller's state that is not in the model: ``{"multipliers": {layer: float},
        "steps": int, "start_rate": float or None}``, and ``"input_start_rate"`` with an
        ``input_target`` (the thresholds and the headroom are model buffers)."""
        state = {"multipliers": dict(self.multipliers), "steps": self.steps, "start_rate": self.start_rate}
        if self.input_target is not None:
            state["input_start_rate"] = self.input_start_rate
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            ``state`` does not name this regulariser's layers, a multiplier is not a finite
            number >= 0, or ``steps`` / ``start_rate`` / ``input_start_rate`` are malformed. A state without ``steps``
            (saved before the annealing existed) resumes with the target ``P``.
        """
        lam = state.get("multipliers") if isinstance(state, dict) else None
        if not isinstance(lam, dict) or set(lam) != set(self.multipliers):
            raise ValueError(f"state must hold the multipliers of layers {sorted(self.multipliers)}; got "
                             f"{sorted(lam) if isinstance(lam, dict) else state!r}.")
        for k, v in lam.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"state's multiplier of layer {k} must be a finite number >= 0; got {v!r}.")
        steps, start = state.get("steps"), state.get("start_rate")
        if "steps" in state and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise ValueError(f"state's steps must be an integer >= 0; got {steps!r}.")
        for key in ("start_rate", "input_start_rate"):
            v = state.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v < 0):
                raise ValueError(f"state's {key} must be a finite number >= 0 or None; got {v!r}.")
        self.input_start_rate = state.get("input_start_rate")
        self.multipliers = {k: float(lam[k]) for k in self.multipliers}
        # no steps saved: trained before the annealing, so it resumes at P (start = P anneals nothing)
        self.steps, self.start_rate = (steps, start) if "steps" in state else (0, self.target)

    def thresholds(self) -> dict[str, float]:
        """Each controlled layer's threshold (empty when the thresholds are not controlled)."""
        return controller_state(self.neurons) if self.controls else {}

    def update(self) -> dict[str, float]:
        r"""One controller step on each layer from the activity of the last training forward: its
        threshold (:func:`tbnn.nn.homeostasis.step_threshold`) and its multiplier
        (:func:`tbnn.nn.multiplier.step_multiplier`), and with ``input_target`` the encoder's headroom
        (:func:`tbnn.nn.homeostasis.step_headroom`); returns each layer's mean absolute threshold
        step (and ``"input"``: the absolute step of :math:`\log g`). Nothing happens without a
        training forward since the last update, or when controlling nothing."""
        steps: dict[str, float] = {}
        eta = cooled_step(self.step, self.steps, self.total_steps, self.step_schedule)
        stepped = self._input_rate is not None
        if stepped:
            steps["input"] = abs(step_headroom(self.encoder, self._input_rate, self.current_input_target(), eta))
            self._input_rate = None
        if not self.controls:
            self.steps += stepped
            return steps
        goal = self.current_target()
        for name in self.names:
            if name in self._sigma:
                rate, sigma = self._sigma[name]
                steps[name] = float(step_threshold(self.neurons[name], rate, goal, sigma, eta).abs().mean())
            if name in self._rate and name in self.multipliers:
                self.multipliers[name] = step_multiplier(self.multipliers[name], self._rate[name], goal,
                                                         self.multiplier_step, self.multiplier_leak)
        if self._rate or stepped:
            self.steps += 1
        self._sigma.clear()
        self._rate.clear()
        return steps

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        """``base(logits, y) + weight * penalty()`` (``base``: cross-entropy by default), plus
        :meth:`lagrangian` with multipliers; in training, with controlled thresholds, also takes
        one controller step (:meth:`update`) toward :meth:`current_target`."""
        if self.controls and self.start_rate is None and self._rate:  # the annealing starts here
            self.start_rate = max(self.target, sum(self._rate.values()) / len(self._rate))
        if self.input_target is not None and self.input_start_rate is None and self._input_rate is not None:
            self.input_start_rate = max(self.input_target, self._input_rate)
        loss = self.base(logits, y)
        if self.weight != 0:
            loss = loss + self.weight * self.penalty()
        if self.multipliers and self._act:
            loss = loss + self.lagrangian().to(loss.dtype)
        self.update()
        return loss

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._act.clear()
        self._codes.clear()
        self._sigma.clear()
        self._rate.clear()
        self._input_rate = None


@torch.no_grad()
def fraction_active(model: nn.Module, reg: ActivityRegularizer, x: Tensor, batch: int = 512
                    ) -> dict[str, float]:
    """Each regularised layer's fraction of neurons active per step over the inputs ``x``,
    in eval mode (the model's mode is restored), from the regulariser's hooks."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    tot: dict[str, float] = {}
    try:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(dev)
            model(xb)
            for k, v in reg.activity().items():
                tot[k] = tot.get(k, 0.0) + float(v) * len(xb)
    finally:
        model.train(was)
    return {k: v / len(x) for k, v in tot.items()}
