"""Layers of temporal binary networks: quantized weights, spike-train inputs.

A layer's weight is fake-quantized per output channel by :func:`tbnn.core.quant.fake_quantize`
(1, 2, 3, 4, 8 bits, ternary, optionally M:N sparse; DAT or STE). Its input is either an
analog tensor or a :class:`~tbnn.core.coding.SpikeCode`. Because the read-out of a spike code is
affine per block, ``x^ = a (sum_t w_t s_t) + c``, the input current of a linear operator
``L`` (matmul or convolution) is

    L(x^) = sum_t w_t L(a * s_t) + L(c)

so a layer's float ``evaluation`` (:data:`EVALUATIONS`) is **fused** (sum the spikes first,
one op: the default), **folded** (``T`` folded into the batch, one op on ``[T*B, ...]``) or
**step** by step (one op per step, only the steps' spikes contribute). All three give the
same numbers, forward and backward. (``evaluation`` was called ``mode``, still accepted with a
DeprecationWarning; the simulator's integer ``schedule``, ``step`` or ``folded``, is another
thing: :data:`tbnn.engine.session.SCHEDULES`.)

In eval mode a layer uses ``exact``: integer-code evaluation by :mod:`tbnn.engine` (the
matmul shortcut of Ye et al. 2024, integer terms in a type that holds them exactly), the
same arithmetic the simulator's step-by-step and time-folded passes use, so that they
reproduce the eval forward pass bit for bit. While a network is simulated
(:func:`tbnn.simulate`), a layer takes its current from the engine spike by spike.

>>> import torch
>>> from tbnn import TBLinear, TemporalBinary
>>> layer, neuron = TBLinear(16, 4), TemporalBinary(4, grid="minmax")
>>> layer(neuron(torch.randn(2, 16))).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tbnn.engine import integer as engine, session
from tbnn.core.coding import SpikeCode
from tbnn.engine.integer import WeightCodes
from tbnn.core.quant import GRIDS, METHODS, QuantSpec, fake_quantize, parse_sparsity, validate_bits
from tbnn.core.deprecation import deprecated_attributes, renamed_keyword, warn_deprecated
from tbnn.core.validate import check_block, check_choice, check_lam

__all__ = ["EVALUATIONS", "TBLayer", "TBConv", "FakeQuantize", "TBLinear", "TBConv1d", "TBConv2d", "conv_fanout"]

#: How a layer evaluates its input current from a spike code: three float paths (``fused``,
#: ``folded``, ``step``; training) and ``exact``, the integer-code engine (eval mode).
EVALUATIONS: tuple[str, ...] = ("fused", "folded", "step", "exact")
__getattr__ = deprecated_attributes(__name__, {"MODES": ("tbnn.nn.layers.EVALUATIONS", lambda: EVALUATIONS)})


class FakeQuantize(nn.Module):
    """Module form of :func:`tbnn.core.quant.fake_quantize` (quantize activations along ``dim``)."""

    def __init__(self, bits: float = 1, method: str = "dat", block: int | None = 128,
                 lam: float = 0.01, dim: int = -1, sparsity: str | float | None = None,
                 grid: str | None = None, target: str = "x") -> None:
        super().__init__()
        self.spec = QuantSpec(bits=bits, method=method, block=block, lam=lam, sparsity=sparsity, grid=grid,
                              target=target)
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return fake_quantize(x, dim=self.dim, spec=self.spec)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.spec.kwargs(), "dim": self.dim}.items())


def conv_fanout(op: Callable[[Tensor, Tensor], Tensor], weight_shape: torch.Size,
                in_shape: tuple[int, ...]) -> Tensor:
    """Number of outputs each input element of ``op(x, w)`` reaches (``[C, *spatial]``), every weight counted."""
    return engine.conv_fanout(op, torch.ones(weight_shape), in_shape)


class TBLayer(nn.Module):
    """Shared machinery: weight quantization and the evaluation paths (:data:`EVALUATIONS`)."""

    is_linear = False
    weight: nn.Parameter
    bias: nn.Parameter | None

    def _setup(self, weight_bits: float | None, method: str, lam: float, weight_block: int | None,
               sparsity: str | float | None, weight_grid: str, evaluation: str, mode: str | None) -> None:
        if weight_bits is not None:
            validate_bits(weight_bits, "weight_bits")
        check_choice(method, METHODS, "method")
        check_choice(weight_grid, GRIDS, "weight_grid")
        evaluation = renamed_keyword(type(self).__name__, "mode", "evaluation", mode, evaluation, "fused",
                                     EVALUATIONS, stacklevel=5)  # warns at the caller of __init__
        check_lam(lam)
        check_block(weight_block, "weight_block")
        parse_sparsity(sparsity)
        self.weight_bits = weight_bits
        self.method = method
        self.lam = float(lam)
        self.weight_block = weight_block
        self.sparsity = sparsity
        self.weight_grid = weight_grid
        self.evaluation = evaluation
        #: the weight's quantizer as one validated record (``None``: float weights)
        self.weight_spec = None if weight_bits is None else QuantSpec(
            bits=weight_bits, method=method, block=weight_block, lam=lam, sparsity=sparsity, grid=weight_grid)

    def quantized_weight(self) -> Tensor:
        """The weight as the layer uses it: fake-quantized per output channel (or float)."""
        if self.weight_bits is None:
            return self.weight
        w2 = self.weight.reshape(self.weight.shape[0], -1)
        wq = fake_quantize(w2, dim=-1, spec=self.weight_spec)
        return wq.reshape(self.weight.shape)

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def operator(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's linear operator (matmul or convolution) with weight ``w``."""
        return self._op(x, w, bias)

    def quantize_weight_codes(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(Q, alpha, gamma)``: integer codes and per-channel affine of the weight (no gradient)."""
        return engine.per_channel_codes(self.weight, self.weight_bits, method=self.method, block=self.weight_block,
                                        lam=self.lam, sparsity=self.sparsity, grid=self.weight_grid)

    def weight_codes_key(self) -> tuple:
        """Every setting :meth:`quantize_weight_codes` and :meth:`operator` read besides the weight
        and bias: the key under which :func:`tbnn.engine.cached_weight_codes` keeps this layer's
        codes between calls."""
        return (type(self).quantize_weight_codes, type(self)._op, self.weight_bits, self.method, self.weight_block,
                self.lam, self.sparsity, self.weight_grid, *self._operator_settings())

    def _operator_settings(self) -> tuple:
        return ()

    def weight_codes(self) -> WeightCodes:
        """The weight as integer codes ``Q`` and per-channel ``alpha``, ``gamma`` (:mod:`tbnn.engine`),
        kept while the weight is unchanged (:func:`tbnn.engine.cached_weight_codes`)."""
        return engine.cached_weight_codes(self)

    def exact(self, code: SpikeCode, wc: WeightCodes | None = None) -> Tensor:
        """Integer-code evaluation (no gradient): :func:`tbnn.engine.exact`."""
        return engine.exact(self, code, wc)

    @property
    def mode(self) -> str:
        """Deprecated spelling of :attr:`evaluation`."""
        warn_deprecated(f"{type(self).__name__}.mode", f"{type(self).__name__}.evaluation")
        return self.evaluation

    @mode.setter
    def mode(self, value: str) -> None:
        warn_deprecated(f"{type(self).__name__}.mode", f"{type(self).__name__}.evaluation")
        self.evaluation = check_choice(value, EVALUATIONS, "mode")

    def forward(self, inp: Tensor | SpikeCode, evaluation: str | None = None, *, mode: str | None = None) -> Tensor:
        """Input current of the layer (``[B, out, ...]``) from an analog tensor or a spike code.

        A linear layer reads a spike code's features flat (a convolution's ``[B, C, ...]``
        spikes included), as a spike train cannot be flattened outside a tbnn module.
        ``evaluation`` overrides the layer's (:data:`EVALUATIONS`); ``mode`` is its deprecated
        spelling.
        """
        if mode is not None:
            evaluation = renamed_keyword(f"{type(self).__name__}.forward", "mode", "evaluation", mode, evaluation,
                                         None, stacklevel=6)  # warns at the caller of module.__call__
        if isinstance(inp, SpikeCode) and self.is_linear and inp.shape is not None and len(inp.shape) != 2:
            inp = replace(inp, shape=None)
        if isinstance(inp, SpikeCode) and session.active() is not None:
            return session.active().layer_current(self, inp)
        if not isinstance(inp, SpikeCode):
            return self._op(inp, self.quantized_weight(), self.bias)
        how = evaluation or (self.evaluation if self.training else "exact")
        check_choice(how, EVALUATIONS, "evaluation")
        if how == "exact":  # integer codes: the float weight is not fake-quantized
            return self.exact(inp)
        w = self.quantized_weight()
        if how == "fused":
            return self._op(inp.unflatten(inp.read()), w, self.bias)
        g, o = inp.feature_gain()
        s = inp.step_values() * g  # [T, B, F]: spikes scaled by their block's gain
        wt = inp.weights
        if how == "folded":
            # the offsets ride along as step T + 1 with weight 1: one op on [(T+1)*B, ...]
            T, B = s.shape[:2]
            su = inp.unflatten(torch.cat([s, o.unsqueeze(0)], 0))
            y = self._op(su.reshape((T + 1) * B, *su.shape[2:]), w, None)
            y = torch.tensordot(torch.cat([wt, wt.new_ones(1)]), y.reshape(T + 1, B, *y.shape[1:]), dims=1)
            if self.bias is not None:
                y = y + self.bias.view(-1, *[1] * (y.dim() - 2))
            return y
        out = self._op(inp.unflatten(o), w, self.bias)
        for t in range(s.shape[0]):
            out = out + wt[t] * self._op(inp.unflatten(s[t]), w, None)
        return out


class TBLinear(TBLayer):
    """Linear layer with quantized weights taking a spike train (or an analog tensor).

    ``weight_bits``: 1, 1.5 (ternary), 2, 3, 4, 8 or ``None`` (float); DAT per output
    channel (``weight_block=None``) unless a block is given; ``sparsity``: ``"M:N"`` or a
    fraction; ``weight_grid``: ``meanstd`` (1-bit threshold at the channel mean: sign-like)
    or ``minmax``. ``evaluation`` (training): ``fused`` / ``folded`` / ``step``; eval mode uses
    ``exact`` (see module docstring); ``mode`` is its deprecated spelling.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_bits: float | None = 1, method: str = "dat", lam: float = 0.01,
                 weight_block: int | None = None, sparsity: str | float | None = None,
                 weight_grid: str = "meanstd", evaluation: str = "fused", *, mode: str | None = None) -> None:
        super().__init__()
        lin = nn.Linear(in_features, out_features, bias=bias)
        self.weight, self.bias = lin.weight, lin.bias
        self.in_features, self.out_features = in_features, out_features
        self._setup(weight_bits, method, lam, weight_block, sparsity, weight_grid, evaluation, mode)

    is_linear = True

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, w, bias)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, weight_bits={self.weight_bits}, "
                f"method={self.method}, sparsity={self.sparsity}, evaluation={self.evaluation}")


class TBConv(TBLayer):
    _nd: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, weight_bits: float | None = 1,
                 method: str = "dat", lam: float = 0.01, weight_block: int | None = None,
                 sparsity: str | float | None = None, weight_grid: str = "meanstd",
                 evaluation: str = "fused", *, mode: str | None = None) -> None:
        super().__init__()
        conv = (nn.Conv1d if self._nd == 1 else nn.Conv2d)(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding = conv.stride, conv.padding
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = conv.kernel_size
        self._setup(weight_bits, method, lam, weight_block, sparsity, weight_grid, evaluation, mode)

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        fn = F.conv1d if self._nd == 1 else F.conv2d
        return fn(x, w, bias, stride=self.stride, padding=self.padding)

    def _operator_settings(self) -> tuple:
        return (self._nd, tuple(self.stride), self.padding if isinstance(self.padding, str) else tuple(self.padding))

    def weight_positions(self, in_shape: tuple[int, ...]) -> Tensor:
        """Outputs each input element ``[C, *spatial]`` reaches through every weight position of
        the kernel, pruned (zero) weights included (exact at the borders, any stride).

        The synapses that exist (nonzero weight codes) are what a simulation counts
        (:meth:`tbnn.engine.session.SimulationSession.synapse_counts`).
        """
        return engine.fanout(self, in_shape, dense=True).reshape(in_shape)

    def fanout(self, in_shape: tuple[int, ...]) -> Tensor:
        """Deprecated: :meth:`weight_positions` (every weight position, not only the synapses that exist)."""
        warn_deprecated(f"{type(self).__name__}.fanout", f"{type(self).__name__}.weight_positions")
        return self.weight_positions(in_shape)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, weight_bits={self.weight_bits}, "
                f"method={self.method}, sparsity={self.sparsity}, evaluation={self.evaluation}")


class TBConv1d(TBConv):
    """1-D convolution with quantized weights on spike trains ``[T, B, C, L]`` (see :class:`TBLinear`)."""

    _nd = 1


class TBConv2d(TBConv):
    """2-D convolution with quantized weights on spike trains ``[T, B, C, H, W]`` (see :class:`TBLinear`)."""

    _nd = 2
