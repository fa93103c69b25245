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

Options for sparse firing and a spikes-only channel (all off by default):

* ``grid="running"``: :math:`v = \mathrm{clip}(x / s, 0, 1)` with a scale :math:`s` that does
  not depend on the sample: in training the batch mean of the block maxima of
  :math:`\mathrm{relu}(x)` (:func:`tbnn.core.quant.block_scale`), in eval its running average
  :math:`\hat s \leftarrow (1 - m)\hat s + m s` (momentum ``m``, as BatchNorm's running
  statistics; Ioffe & Szegedy 2015). Every neuron of a block can then be silent, which the
  max-scaled ``rectify`` grid forbids (its block maximum always fires every step).
* ``adaptive_threshold="layer"`` (or ``True``) / ``"neuron"``: a threshold :math:`\theta`
  (one per layer, or one per neuron; a buffer) is subtracted from the input,
  :math:`x \to x - \theta`; it is moved by the homeostatic rate controller of
  :mod:`tbnn.nn.homeostasis`.
* ``readout="running"``: the read-out gain and offset of each block are fitted on the codes of
  every sample of the batch at once (:func:`tbnn.core.quant.pooled_fit`) in training and kept
  as running averages for eval, so that no per-sample analog value crosses to the next layer
  (``features`` must be given: the buffers hold one value per block).
* ``headroom=g`` (the ``minmax`` grid of an input encoder): :math:`v = (x - lo)/(g\,(hi - lo))`
  with :math:`lo, hi` the block's minimum and maximum, so :math:`v \le 1/g`. With the binary code
  the largest inputs are the most expensive (the code :math:`2^T - 1` fires in every step; on
  digits, T = 4, it is an eighth of the input values and two fifths of the encoder's spikes): at
  :math:`g` = 1.5 the top falls to code 10 (two spikes of four) and the encoder fires 38 % fewer spikes, at the
  cost of the finest of its 16 levels. The read-out is fitted in grid units and mapped back,
  :math:`(a, b) \to (a\,g\,(hi - lo),\; b\,g\,(hi - lo) + lo)`, exactly the fit on :math:`x`
  (the ridge fit is affine-equivariant; its penalty is on the gain). ``g = 1`` gives the plain
  ``minmax`` grid's codes; ``None`` (no buffer) keeps its arithmetic too.

Each of these keeps the simulation exact: :meth:`fire` starts its integrate-and-fire from the
same grid values as the closed form, and the read-out gains are the code's.

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
from tbnn.engine.precision import engine_choice
from tbnn.core.codes import get_code
from tbnn.core.codespec import NEURON_GRIDS, CodeSpec
from tbnn.core.coding import SpikeCode, encode_unchecked
from tbnn.core.firing import binary_thresholds, integrate_and_fire
from tbnn.core.quant import block_scale, from_blocks, grid_range, grid_values, pooled_fit, to_blocks
from tbnn.core.quant.fast import dat_readout, rectifies
from tbnn.core.validate import check_choice, check_int, check_number
from tbnn.kernels.fire import fire_checked
from tbnn.kernels.neuron import dat_fit, fire_codes

__all__ = ["TemporalBinary", "NEURON_GRIDS", "READOUTS", "THRESHOLDS"]

#: Read-outs: ``sample`` (a ridge fit per block and sample, the paper's) and ``running`` (one
#: gain and offset per block, from running statistics: spikes alone carry the sample).
READOUTS: tuple[str, ...] = ("sample", "running")
#: Adaptive thresholds: one per ``layer`` or one per ``neuron``.
THRESHOLDS: tuple[str, ...] = ("layer", "neuron")


def _code_spec(code: CodeSpec | None, timesteps: int | None, scheme: str, lam: float, block: int | None,
               grid: str, target: str | None, method: str) -> CodeSpec:
    """The neuron's :class:`CodeSpec`: ``code`` itself, or one made of the arguments given one by one."""
    given = dict(scheme=scheme, lam=lam, block=block, grid=grid, target=target, method=method)
    if code is None:
        if timesteps is None:
            raise ValueError("timesteps must be given (or the whole code as code=CodeSpec(...)).")
        return CodeSpec(timesteps, **given)
    if not isinstance(code, CodeSpec):
        raise ValueError(f"code must be a tbnn.core.codespec.CodeSpec; got {type(code).__name__}.")
    defaults = dict(scheme="binary", lam=0.01, block=128, grid="rectify", target=None, method="dat")
    extra = (["timesteps"] if timesteps is not None else []) + [k for k, v in given.items() if v != defaults[k]]
    if extra:
        raise ValueError(f"code already holds {', '.join(extra)}; pass the code either as code=CodeSpec(...) "
                         f"or argument by argument, not both.")
    return code


class TemporalBinary(nn.Module):
    r"""Time-unrolled binary neuron layer with the per-step DAT read-out.

    Parameters
    ----------
    code : the spike code as one record, :class:`tbnn.core.codespec.CodeSpec` (its fields are
        the seven arguments below, from ``timesteps`` to ``method``); or give them one by one.
    timesteps : number of time steps ``T`` (a binary neuron carries a ``T``-bit code).
    scheme : spike code (:data:`tbnn.core.coding.SCHEMES`); ``binary`` is the reference.
    lam : ridge penalty of the read-out (paper: 0.01).
    block : neurons per read-out block (``None``: the whole layer of one sample).
    grid : ``rectify`` for hidden neurons; ``minmax`` for an input encoder of signed data;
        ``running`` for hidden neurons that may all be silent (see the module docstring).
    target : the read-out regresses onto ``relu`` (default for ``rectify`` and ``running``) or ``x``.
    method : ``dat`` or the STE baselines ``ste`` / ``ste_clip``.
    adaptive_threshold : ``None``/``False`` (default), ``"layer"`` (or ``True``) or ``"neuron"``: keep
        a threshold :math:`\theta` (buffer ``threshold``, one per layer or per neuron; ``"neuron"``
        needs ``features``) subtracted from the input.
    readout : ``sample`` (default) or ``running`` (spikes-only read-out; needs ``features``).
    features : neurons per sample (the flattened feature count), for the ``running`` read-out.
    momentum : of the running statistics (as BatchNorm's).
    headroom : ``None`` (default) or :math:`g \ge 1`, the ``minmax`` grid only (an input encoder):
        the top of each block's grid at :math:`lo + g\,(hi - lo)` instead of :math:`hi`, so the
        largest inputs no longer fire in every step (buffer ``headroom``, moved by the input rate
        controller of :mod:`tbnn.nn.homeostasis`; see the module docstring).

    ``forward(x)`` takes ``[B, ...]`` (features flattened per sample) and returns a
    :class:`~tbnn.core.coding.SpikeCode`; its ``spikes`` are ``[T, B, ...]``.

    Raises
    ------
    ValueError
        An argument outside what it allows (naming it), or ``code`` given together with
        code arguments of its own.

    >>> from tbnn.core.codespec import CodeSpec
    >>> TemporalBinary(code=CodeSpec(4, grid="minmax")).code == TemporalBinary(4, grid="minmax").code
    True
    """

    def __init__(
        self,
        timesteps: int | None = None,
        scheme: str = "binary",
        lam: float = 0.01,
        block: int | None = 128,
        grid: str = "rectify",
        target: str | None = None,
        method: str = "dat",
        adaptive_threshold: bool | str | None = False,
        readout: str = "sample",
        features: int | None = None,
        momentum: float = 0.1,
        headroom: float | None = None,
        *,
        code: CodeSpec | None = None,
    ) -> None:
        super().__init__()
        spec = _code_spec(code, timesteps, scheme, lam, block, grid, target, method)
        check_choice(readout, READOUTS, "readout")
        if adaptive_threshold is True:
            adaptive_threshold = "layer"
        if adaptive_threshold is False:
            adaptive_threshold = None
        if adaptive_threshold is not None:
            check_choice(adaptive_threshold, THRESHOLDS, "adaptive_threshold")
        if readout == "running" or adaptive_threshold == "neuron":
            check_int(features, "features")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum <= 1:
            raise ValueError(f"momentum must lie in (0, 1]; got {momentum!r}.")
        #: the spike code, validated once (its fields are also attributes of the neuron)
        self.code = spec
        self.timesteps = spec.timesteps
        self.scheme = spec.scheme
        self.lam = spec.lam
        self.block = block = spec.block
        self.grid = grid = spec.grid
        self.target = spec.target
        self.method = spec.method
        self.readout = readout
        self.momentum = float(momentum)
        self.adaptive_threshold: str | None = adaptive_threshold
        #: ``(gain, offset)`` per block that replace the read-out while set (see
        #: :func:`tbnn.nn.readout.spikes_only`); not saved.
        self.fixed_readout: tuple[Tensor, Tensor] | None = None
        if grid == "running":
            self.register_buffer("running_scale", torch.ones(()))
        if self.adaptive_threshold:
            self.register_buffer("threshold", torch.zeros(() if adaptive_threshold == "layer" else int(features)))
        if headroom is not None:
            if grid != "minmax":
                raise ValueError(f"headroom needs the minmax grid (an input encoder); got grid {grid!r}.")
            self.register_buffer("headroom", torch.tensor(check_number(headroom, "headroom", minimum=1.0,
                                                                        inclusive=True)))
        if readout == "running":
            nb = 1 if block is None else -(-int(features) // block)
            self.register_buffer("running_gain", torch.zeros(nb))
            self.register_buffer("running_offset", torch.zeros(nb))

    def sends_analog(self) -> bool:
        """Whether the read-out needs a per-sample analog value (a gain and an offset per block)."""
        return self.fixed_readout is None and (self.readout == "sample" or self.training)

    def grid_input(self, x: Tensor) -> tuple[Tensor, str, Tensor | tuple[Tensor, Tensor] | None]:
        r"""``(x', grid, s)``: the input the code is computed from (features flattened, threshold
        subtracted, divided by the running scale ``s`` for the ``running`` grid; with ``headroom``,
        :math:`(x - lo)/(g\,(hi - lo))` per block and ``s`` the pair ``(g (hi - lo), lo)``
        ``[B, blocks, 1]``; else ``s`` is ``None``) and the :mod:`tbnn.core.quant` grid it goes on.
        Updates the running scale in training."""
        xf = x if x.dim() == 2 else x.flatten(1)
        if self.adaptive_threshold:
            xf = xf - self.threshold
        if self._buffers.get("headroom") is not None:  # (getattr of a missing name: Module's slow path)
            xb, valid, n = to_blocks(xf, -1, self.block)
            lo, hi = grid_range(xb, valid, n, "minmax", 2)
            span = (hi - lo) * self.headroom.to(xb.dtype)
            return from_blocks((xb - lo) / span, -1, xf.shape[-1]), "unit", (span, lo)
        if self.grid != "running":
            return xf, self.grid, None
        if self.training:
            s = block_scale(xf, self.block)
            with torch.no_grad():
                self.running_scale.lerp_(s.to(self.running_scale.dtype), self.momentum)
        else:
            s = self.running_scale.to(xf.dtype)
        return xf / s, "unit", s

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
        xs, grid, s = self.grid_input(x)
        code = encode_unchecked(xs, self.timesteps, self.scheme, grid, self.block, self.lam,
                                self.target, self.method)
        return self._read_out(code, x, xs, s)

    def _read_out(self, code: SpikeCode, x: Tensor, xs: Tensor, s: Tensor | tuple[Tensor, Tensor] | None
                  ) -> SpikeCode:
        """The code's read-out as this neuron sends it: back in the units of ``x`` for the
        ``running`` grid (scale ``s``) and with ``headroom`` (scale and shift per block, ``s``),
        fixed per block for the ``running`` read-out; shaped as ``x``."""
        if isinstance(s, tuple):  # headroom: x = span * x' + lo per block (the ridge fit is affine-equivariant)
            span, lo = s
            tgt = code.target
            if tgt is not None:
                tb, _, _ = to_blocks(tgt, -1, self.block)
                tgt = from_blocks(tb * span + lo, -1, tgt.shape[-1])
            code = replace(code, gain=code.gain * span, offset=code.offset * span + lo, target=tgt)
        elif s is not None:  # the read-out back in the units of x (the ridge fit is homogeneous)
            code = replace(code, gain=code.gain * s, offset=code.offset * s,
                           target=None if code.target is None else code.target * s)
        fixed = self.fixed_readout
        if fixed is None and self.readout == "running":
            if self.training:
                t = code.target if code.target is not None else xs
                g, c = pooled_fit(t, code.q, self.block, self.lam)
                with torch.no_grad():
                    self.running_gain.lerp_(g.detach().to(self.running_gain.dtype), self.momentum)
                    self.running_offset.lerp_(c.detach().to(self.running_offset.dtype), self.momentum)
                fixed = (g, c)
            else:
                fixed = (self.running_gain, self.running_offset)
        if fixed is not None:
            B, nb = code.gain.shape[0], code.gain.shape[-2]
            g, c = (v.to(code.gain.dtype).reshape(1, nb, 1).expand(B, nb, 1) for v in fixed)
            code = replace(code, gain=g, offset=c)
        code.shape = tuple(x.shape)
        return code

    @torch.no_grad()
    def fire(self, x: Tensor) -> SpikeCode:
        r"""Fire by integrate-and-fire (:func:`tbnn.core.firing.integrate_and_fire`) and return the code.

        Binary scheme: every membrane starts at its grid value ``r_0 = v`` and runs ``T``
        steps with halving thresholds; the emitted spikes are kept in the code (``raw``) and
        checked against the closed form (their weighted sum :math:`\sum_t w_t s_t` must be
        the integer code :math:`q`), whose read-out gains are used. On a CPU with the compiled
        kernel (unless ``TBNN_ENGINE=dense``), float32 membranes fire, are written and are checked
        in one pass (:func:`tbnn.kernels.fire.fire_checked`, the same spikes bit for bit). Other schemes
        emit the spikes of their code (sigma-delta's are integrate-and-fire too).

        Raises
        ------
        RuntimeError
            The loop's spikes differ from the closed form (a bug: please report it).
        """
        return self.fire_counted(x)[0]

    def fire_counted(self, x: Tensor) -> tuple[SpikeCode, Tensor | None]:
        """:meth:`fire`, and each neuron's spike count over the samples and steps (``[F]`` int32)
        where the compiled neuron counted them as it fired, else ``None`` (the simulator counts)."""
        if torch.is_grad_enabled():  # (a simulation runs without: no context to enter every batch)
            with torch.no_grad():
                return self.fire_counted(x)
        if self.scheme == "binary" and self.method == "dat" and engine_choice() != "dense":
            fused = self._fire_compiled(x)  # codes, spikes, their check and counts in one compiled pass
            if fused is not None:
                return fused
        return self._fire_torch(x), None

    def _fire_torch(self, x: Tensor) -> SpikeCode:
        """:meth:`fire` by :meth:`encode` and the firing loop (compiled where it can be)."""
        code = self.encode(x)
        if self.scheme != "binary":
            return code
        T = self.timesteps
        xs, grid, _ = self.grid_input(x)
        v = grid_values(xs, self.block, grid, get_code("binary").grid_levels(T))
        # the spikes are the bits of the code: sum_t w_t s_t == q (a bijection on 0 .. 2^T - 1; exact sums)
        fired = None
        if engine_choice() != "dense":  # the compiled kernel: one pass (TBNN_ENGINE=dense: none of it)
            fired = fire_checked(v, binary_thresholds(T), code.weights, code.q.detach())
        if fired is None:
            steps = torch.empty(T, *v.shape, dtype=v.dtype, device=v.device)  # 0/1 spikes [T, B, F]
            integrate_and_fire(v, binary_thresholds(T), out=steps, overwrite=True)  # (v becomes the membrane)
            diff = (code.weights.to(v.dtype) @ steps.view(T, -1)).view(code.q.shape).sub_(code.q.detach())
            lo, hi = torch.aminmax(diff) if diff.numel() else (0, 0)
            fired = steps.to(torch.bool), int(lo != 0 or hi != 0)
        if fired[1]:
            raise RuntimeError("integrate-and-fire spikes differ from the neuron's code; please report this.")
        return replace(code, raw=fired[0])

    def _fire_compiled(self, x: Tensor) -> tuple[SpikeCode, Tensor] | None:
        """:meth:`fire` by the compiled neuron (:func:`tbnn.kernels.neuron.fire_codes`): the same
        codes, spikes, gains and offsets as :meth:`encode` and the firing loop, bit for bit; the
        read-out fitted compiled too (:func:`tbnn.kernels.neuron.dat_fit`) where it adds as torch
        does, else in torch (:func:`tbnn.core.quant.fast.dat_readout`). ``None`` where the kernel
        does not run: then :meth:`fire` takes the torch path."""
        if x.dim() < 2 or x.dtype != torch.float32:
            return None
        xs, grid, s = self.grid_input(x)
        rectify = rectifies(grid, self.target)
        fired = fire_codes(xs, self.block, grid, self.timesteps, rectify, target=self.target == "relu", words=True)
        if fired is None:
            return None
        if fired.differ:
            raise RuntimeError("integrate-and-fire spikes differ from the neuron's code; please report this.")
        tgt = fired.target if self.target == "relu" else xs  # (torch.relu(xs), written as it fired)
        fit = dat_fit(xs, fired, self.block, self.target == "relu", self.lam)  # compiled where it adds as torch
        if fit is None:
            relu = self.target == "relu" and not rectify  # as affine_fast: a rectified input is its own relu
            levels = get_code("binary").levels(self.timesteps)
            fit = dat_readout(tgt if rectify else xs, fired.q, self.block, levels, self.lam, relu, fired.code_sums)
        gain, offset = fit
        code = SpikeCode(fired.q, gain, offset, "binary", self.timesteps, self.block, tgt, fired.spikes, self.lam,
                         packed=None if fired.words is None else (fired.spikes, fired.words))
        return self._read_out(code, x, xs, s), fired.counts

    def extra_repr(self) -> str:
        return (
            f"T={self.timesteps}, scheme={self.scheme}, lam={self.lam}, block={self.block}, "
            f"grid={self.grid}, target={self.target}, method={self.method}"
            + (f", readout={self.readout}" if self.readout != "sample" else "")
            + (f", adaptive_threshold={self.adaptive_threshold}" if self.adaptive_threshold else "")
            + (f", headroom={float(self.headroom):.4g}" if getattr(self, "headroom", None) is not None else "")
        )
