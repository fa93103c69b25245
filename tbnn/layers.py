"""Layers of temporal binary networks: quantized weights, spike-train inputs.

A layer's weight is fake-quantized per output channel by :func:`tbnn.quant.fake_quantize`
(1, 2, 3, 4, 8 bits, ternary, optionally M:N sparse; DAT or STE). Its input is either an
analog tensor or a :class:`~tbnn.coding.SpikeCode`. Because the read-out of a spike code is
affine per block, ``x^ = a (sum_t w_t s_t) + c``, the input current of a linear operator
``L`` (matmul or convolution) is

    L(x^) = sum_t w_t L(a * s_t) + L(c)

so a layer can run **fused** (sum the spikes first, one op: the default), **folded** (``T``
folded into the batch, one op on ``[T*B, ...]``) or **step** by step (one op per step,
only the steps' spikes contribute). All three give the same numbers, forward and backward.

In eval mode a layer uses ``exact``: integer-code evaluation (the matmul shortcut of Ye
et al. 2024) with the integer terms summed in float64, where they are exact, so that the
simulator's step-by-step and time-folded engines (:mod:`tbnn.sim`) reproduce the eval
forward pass bit for bit, and so its predictions on every sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .coding import SpikeCode
from .quant import GRIDS, METHODS, fake_quantize, parse_sparsity, quantize, validate_bits
from .validate import check_block, check_choice, check_lam

__all__ = ["MODES", "TBLayer", "TBConv", "WeightCodes", "FakeQuantize", "TBLinear", "TBConv1d", "TBConv2d", "conv_fanout"]

MODES: tuple[str, ...] = ("fused", "folded", "step", "exact")


class FakeQuantize(nn.Module):
    """Module form of :func:`tbnn.quant.fake_quantize` (quantize activations along ``dim``)."""

    def __init__(self, bits: float = 1, method: str = "dat", block: int | None = 128,
                 lam: float = 0.01, dim: int = -1, sparsity: str | float | None = None,
                 grid: str | None = None, target: str = "x") -> None:
        super().__init__()
        validate_bits(bits)
        parse_sparsity(sparsity)
        self.kw = dict(bits=bits, method=method, block=block, lam=lam, dim=dim,
                       sparsity=sparsity, grid=grid, target=target)

    def forward(self, x: Tensor) -> Tensor:
        return fake_quantize(x, **self.kw)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kw.items())


def conv_fanout(op: Callable[[Tensor, Tensor], Tensor], weight_shape: torch.Size,
                in_shape: tuple[int, ...]) -> Tensor:
    """Number of outputs each input element of ``op(x, w)`` reaches (``[C, *spatial]``).

    The gradient of ``sum(op(x, ones))`` with respect to ``x``: exact for any stride and
    padding, borders included.
    """
    x = torch.zeros(1, *in_shape, requires_grad=True)
    with torch.enable_grad():
        op(x, torch.ones(weight_shape)).sum().backward()
    return x.grad[0].detach()


@dataclass
class WeightCodes:
    """A layer's weight as integer codes with a per-channel affine: ``W^ = alpha * Q + gamma``.

    ``w_hat`` is that weight in floats; ``ones`` an all-ones kernel with one output channel
    (its response is the same for every output channel: the rank-1 correction); ``qmax``
    the largest ``|Q|`` when the codes are integers (``inf`` for float weights); ``cache``
    the block-dependent tensors the integer-code evaluation derives from them (per dtype
    and input layout), made on first use.
    """

    q: Tensor
    alpha: Tensor
    gamma: Tensor
    w_hat: Tensor
    ones: Tensor
    qmax: float = math.inf
    cache: dict = field(default_factory=dict, repr=False, compare=False)


class TBLayer(nn.Module):
    """Shared machinery: weight quantization and the execution modes."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _setup(self, weight_bits: float | None, method: str, lam: float, weight_block: int | None,
               sparsity: str | float | None, weight_grid: str, mode: str) -> None:
        if weight_bits is not None:
            validate_bits(weight_bits, "weight_bits")
        check_choice(method, METHODS, "method")
        check_choice(weight_grid, GRIDS, "weight_grid")
        check_choice(mode, MODES, "mode")
        check_lam(lam)
        check_block(weight_block, "weight_block")
        parse_sparsity(sparsity)
        self.weight_bits = weight_bits
        self.method = method
        self.lam = float(lam)
        self.weight_block = weight_block
        self.sparsity = sparsity
        self.weight_grid = weight_grid
        self.mode = mode

    def quantized_weight(self) -> Tensor:
        """The weight as the layer uses it: fake-quantized per output channel (or float)."""
        if self.weight_bits is None:
            return self.weight
        w2 = self.weight.reshape(self.weight.shape[0], -1)
        wq = fake_quantize(w2, bits=self.weight_bits, method=self.method, block=self.weight_block,
                           lam=self.lam, dim=-1, sparsity=self.sparsity, grid=self.weight_grid)
        return wq.reshape(self.weight.shape)

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def weight_codes(self) -> WeightCodes:
        """The weight as integer codes ``Q`` and per-channel ``alpha``, ``gamma`` (no gradient)."""
        w2 = self.weight.detach().reshape(self.weight.shape[0], -1)
        if self.weight_bits is None:
            q, alpha, gamma = w2, torch.ones_like(w2[:, 0]), torch.zeros_like(w2[:, 0])
        else:
            bc = quantize(w2, bits=self.weight_bits, method=self.method, block=self.weight_block,
                          lam=self.lam, dim=-1, sparsity=self.sparsity, grid=self.weight_grid)
            if bc.q.shape[-2] != 1:
                raise ValueError("integer-code evaluation needs weights quantized per output channel "
                                 "(weight_block=None).")
            q, alpha, gamma = bc.codes(), bc.gain.reshape(-1), bc.offset.reshape(-1)
        q = q.reshape(self.weight.shape)
        shape = (-1, *[1] * (q.dim() - 1))
        w_hat = alpha.view(shape) * q + gamma.view(shape)
        qmax = float(q.abs().max()) if q.numel() and bool((q == q.round()).all()) else math.inf
        return WeightCodes(q, alpha, gamma, w_hat, torch.ones(1, *q.shape[1:], dtype=q.dtype, device=q.device),
                           qmax)

    def term_dtype(self, code: SpikeCode, wc: WeightCodes) -> torch.dtype:
        """The dtype that holds every integer term, and its sums over the ``T`` steps, exactly.

        A term sums at most ``per = min(block, fan-in)`` products ``|Q| |q|`` per output,
        and the simulator adds the terms of the steps with weights ``w_t``; float32 holds
        integers exactly below ``2^24``, so it is used when
        ``max(max|Q|, 1) * per * max(sum|w_t|, max|q|) < 2^24``; else float64.
        """
        per = min(code._bsize(), wc.q[0].numel())
        qmax = max(float(code.weights.abs().sum()), float(code.q.detach().abs().max()) if code.q.numel() else 0.0)
        return torch.float32 if max(wc.qmax, 1.0) * per * qmax < 2**24 else torch.float64

    def _blocked_codes(self, wc: WeightCodes, code: SpikeCode, dtype: torch.dtype) -> Tensor:
        """Linear layers: the codes as ``[nb, bs, out]`` blocks along the input (tail zero-padded)."""
        f, bs = code.q.shape[-1], code._bsize()
        key = ("blocked", f, bs, dtype)
        if key not in wc.cache:
            nb = -(-f // bs)
            qt = F.pad(wc.q.reshape(wc.q.shape[0], -1).t().to(dtype), (0, 0, 0, nb * bs - f))
            wc.cache[key] = qt.reshape(nb, bs, -1).contiguous()
        return wc.cache[key]

    def integer_terms(self, q: Tensor, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor]:
        """Per input block ``b``: ``N_b = L_Q(q m_b)`` and ``S_b = L_1(q m_b)``, ``[nb, *out]``.

        ``q`` is a code or a spike matrix ``[..., F]`` (flat features; 0/1 floats or bool);
        ``L_Q`` applies the layer with the integer weight codes, ``L_1`` with the all-ones
        kernel. Every value is an exact integer in :meth:`term_dtype` (returned in it), so
        per-step sums of these terms equal the terms of the summed code bit for bit.

        Linear layers: one batched matmul over the blocks of a ``[M, nb, bs]`` view, and
        ``S_b`` is a row sum. The matmul runs in bfloat16 when every partial sum is an integer
        of magnitude ``<= 256`` (``max|Q| * per * max|q| <= 256``: e.g. spikes and 1- or
        2-bit codes in blocks of up to 128 inputs), which bfloat16 (and its float32
        accumulator) holds exactly. Convolutions: one op on the masked copies stacked in
        the batch.
        """
        dtype = self.term_dtype(code, wc)
        f, bs = q.shape[-1], code._bsize()
        nb = -(-f // bs)
        lead = q.shape[:-1]
        q = q.detach()
        if q.dtype == torch.bool:
            q, top = q.view(torch.uint8), 1.0  # (uint8 converts to floats faster than bool)
        else:
            top = float(q.abs().max()) if q.numel() else 0.0
        if isinstance(self, TBLinear):
            per = min(bs, f)
            mm = torch.bfloat16 if wc.qmax * per * top <= 256 else dtype
            qd = q.to(mm)
            if nb * bs != f:
                qd = F.pad(qd, (0, nb * bs - f))
            qv = qd.reshape(-1, nb, bs).transpose(0, 1)  # [nb, M, bs]
            n = torch.bmm(qv, self._blocked_codes(wc, code, mm)).to(dtype)  # [nb, M, out]
            s = qv.sum(-1, keepdim=True, dtype=dtype)  # [nb, M, 1]
            return n.reshape(nb, *lead, -1), s.reshape(nb, *lead, 1)
        qd = q.to(dtype)
        masks = code.block_masks(dtype).view(nb, *[1] * len(lead), f)
        x = code.unflatten((qd.unsqueeze(0) * masks).reshape(-1, f))  # [nb * M, ...]
        n, s = self._op(x, wc.q.to(dtype), None), self._op(x, wc.ones.to(dtype), None)
        return n.reshape(nb, *lead, *n.shape[1:]), s.reshape(nb, *lead, *s.shape[1:])

    def _mask_terms(self, code: SpikeCode, wc: WeightCodes) -> tuple[Tensor, Tensor]:
        """``r_b = L_Q(m_b)`` and ``k_b = L_1(m_b)`` (float64, ``[nb, 1, *out]``), cached per input layout."""
        key = ("masks", code.q.shape[-1], code._bsize(), code.shape[1:] if code.shape is not None else None)
        if key not in wc.cache:
            masks = code.block_masks(torch.float64)
            x = code.unflatten(masks)
            r = self._op(x, wc.q.to(torch.float64), None).unsqueeze(1)
            k = self._op(x, wc.ones.to(torch.float64), None).unsqueeze(1)
            wc.cache[key] = (r, k)
        return wc.cache[key]

    def combine(self, n: Tensor, s: Tensor, code: SpikeCode, wc: WeightCodes) -> Tensor:
        """The input current from the integer terms (the matmul shortcut of Ye et al. 2024).

        With the input read out per block as ``a_b q + c_b`` and ``W^ = alpha Q + gamma``::

            I = sum_b a_b (alpha N_b + gamma S_b) + c_b (alpha L_Q(m_b) + gamma L_1(m_b)) + bias

        in float64, on contiguous terms (so every engine's terms give the same rounding).
        ``r_b`` and ``k_b`` are made once per weight codes and input layout.
        """
        r, k = self._mask_terms(code, wc)
        f64 = torch.float64
        n, s = n.contiguous(), s.contiguous()  # exact integers (float32 or float64)
        extra = [1] * (n.dim() - 3)
        a = code.gain.detach().to(f64).squeeze(-1).transpose(0, 1).reshape(n.shape[0], -1, 1, *extra)
        c = code.offset.detach().to(f64).squeeze(-1).transpose(0, 1).reshape(n.shape[0], -1, 1, *extra)
        shape = (-1, *extra)
        al, ga = wc.alpha.to(f64).view(shape), wc.gamma.to(f64).view(shape)
        # sum_b a_b N_b and sum_b a_b S_b first (float64 products of exact integers), then
        # the per-channel alpha and gamma once
        cur = al * (a * n).sum(0) + ga * (a * s).sum(0) + (c * (al * r + ga * k)).sum(0)
        if self.bias is not None:
            cur = cur + self.bias.detach().to(f64).view(shape)
        return cur.to(code.q.dtype)

    def exact(self, code: SpikeCode, wc: WeightCodes | None = None) -> Tensor:
        """Integer-code evaluation (no gradient): the current from the code's exact integer terms.

        Used in eval mode, and by the simulator, whose step-by-step and time-folded sums give
        the same integer terms and therefore the same numbers, bit for bit.
        """
        wc = wc if wc is not None else self.weight_codes()
        return self.combine(*self.integer_terms(code.q, code, wc), code, wc)

    def forward(self, inp: Tensor | SpikeCode, mode: str | None = None) -> Tensor:
        """Input current of the layer (``[B, out, ...]``) from an analog tensor or a spike code."""
        w = self.quantized_weight()
        if not isinstance(inp, SpikeCode):
            return self._op(inp, w, self.bias)
        mode = mode or (self.mode if self.training else "exact")
        check_choice(mode, MODES, "mode")
        if mode == "exact":
            return self.exact(inp)
        if mode == "fused":
            return self._op(inp.unflatten(inp.read()), w, self.bias)
        g, o = inp.feature_gain()
        s = inp.step_values() * g  # [T, B, F]: spikes scaled by their block's gain
        wt = inp.weights
        if mode == "folded":
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
    or ``minmax``. ``mode`` (training): ``fused`` / ``folded`` / ``step``; eval mode uses
    ``exact`` (see module docstring).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_bits: float | None = 1, method: str = "dat", lam: float = 0.01,
                 weight_block: int | None = None, sparsity: str | float | None = None,
                 weight_grid: str = "meanstd", mode: str = "fused") -> None:
        super().__init__()
        lin = nn.Linear(in_features, out_features, bias=bias)
        self.weight, self.bias = lin.weight, lin.bias
        self.in_features, self.out_features = in_features, out_features
        self._setup(weight_bits, method, lam, weight_block, sparsity, weight_grid, mode)

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, w, bias)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, weight_bits={self.weight_bits}, "
                f"method={self.method}, sparsity={self.sparsity}, mode={self.mode}")


class TBConv(TBLayer):
    _nd: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, weight_bits: float | None = 1,
                 method: str = "dat", lam: float = 0.01, weight_block: int | None = None,
                 sparsity: str | float | None = None, weight_grid: str = "meanstd",
                 mode: str = "fused") -> None:
        super().__init__()
        conv = (nn.Conv1d if self._nd == 1 else nn.Conv2d)(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding = conv.stride, conv.padding
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = conv.kernel_size
        self._setup(weight_bits, method, lam, weight_block, sparsity, weight_grid, mode)

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        fn = F.conv1d if self._nd == 1 else F.conv2d
        return fn(x, w, bias, stride=self.stride, padding=self.padding)

    def fanout(self, in_shape: tuple[int, ...]) -> Tensor:
        """Synaptic targets of each input element ``[C, *spatial]`` (exact at the borders)."""
        return conv_fanout(lambda x, w: self._op(x, w, None), self.weight.shape, in_shape)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, weight_bits={self.weight_bits}, "
                f"method={self.method}, sparsity={self.sparsity}, mode={self.mode}")


class TBConv1d(TBConv):
    """1-D convolution with quantized weights on spike trains ``[T, B, C, L]`` (see :class:`TBLinear`)."""

    _nd = 1


class TBConv2d(TBConv):
    """2-D convolution with quantized weights on spike trains ``[T, B, C, H, W]`` (see :class:`TBLinear`)."""

    _nd = 2
