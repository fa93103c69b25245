r"""Spike codes: values carried as binary spike trains over ``T`` time steps, and their read-out.

``encode(x, T, scheme)`` returns a :class:`SpikeCode` whose ``spikes`` are a 0/1 tensor
``[T, *x.shape]`` (snnTorch's time-first layout). Every scheme here is *linear in its
spikes*: the code value is ``q = sum_t w_t s_t`` with fixed per-step weights ``w_t``, and
the read-out is the denoising affine transform of Ye et al. (arXiv:2409.09245) fitted per
block, ``x^ = gain * q + offset``:

.. math::

    \hat x = \frac{\mathrm{Cov}(x, q)}{\mathrm{Var}(q) + \lambda} (q - \bar q) + \bar x

with population statistics over the block (Ye et al., eq. of the ridge dequantizer).

Each scheme is one class of :mod:`tbnn.core.codes`, whose file states its firing rule and
weights ``w_t`` (a new code is one file there plus one registration; :data:`SCHEMES` lists
the registered names). ``binary`` is the reference: an integrate-and-fire neuron with a
halving threshold whose spikes are the bits of the ``T``-bit code, so at ``T = k`` it is
exactly the k-bit DAT.

>>> list(SCHEMES)
['binary', 'sigma_delta', 'rate', 'thermometer', 'latency']

The read-out after ``steps < T`` refits the DAT on the partial code (the anytime read-out);
it improves with every step. Codes from other libraries (``snntorch.spikegen``) are read
with :meth:`SpikeCode.from_spikes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from tbnn.core.codes import SCHEMES, get_code
from tbnn.core.quant import (
    GRIDS,
    METHODS,
    affine_codes,
    affine_fast,
    check_finite,
    grid_range,
    ridge_fit,
    to_blocks,
)
from tbnn.core.validate import check_block, check_choice, check_int, check_lam, check_tensor, compute_in_float32

__all__ = ["SCHEMES", "SpikeCode", "SpikeTrainError", "encode", "encode_unchecked", "decode", "step_weights",
           "check_timesteps"]


def step_weights(scheme: str, timesteps: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Per-step weights ``w_t`` with ``q = sum_t w_t s_t`` of a scheme (``t = 1..T``).

    >>> step_weights("binary", 4).tolist()
    [8.0, 4.0, 2.0, 1.0]
    """
    return get_code(scheme).step_weights(timesteps, dtype, device)


def check_timesteps(timesteps: int, scheme: str = "binary") -> int:
    """``T >= 1``, and ``T <= 24`` for the binary code (its codes are exact float32 integers)."""
    top = get_code(scheme).max_timesteps
    return check_int(timesteps, "timesteps", 1, top, f" for the {scheme} code (float32 codes)")


def _validate(timesteps: int, scheme: str, block: int | None, lam: float, grid: str, x: Tensor) -> None:
    check_choice(scheme, SCHEMES, "scheme")
    check_timesteps(timesteps, scheme)
    check_choice(grid, GRIDS, "grid")
    check_block(block)
    check_lam(lam)
    check_finite(x, "x")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension (features last); got a scalar.")


class SpikeTrainError(TypeError):
    """An operation was applied to a spike train outside a tbnn module."""


def _refuse(op: str) -> SpikeTrainError:
    return SpikeTrainError(
        f"{op} cannot be applied to a spike train (SpikeCode) outside a tbnn module; feed it to a "
        "TBLinear / TBConv1d / TBConv2d layer, or read it out first with code.decode().")


_BINARY_OPS = ("add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod", "and", "or", "xor",
               "lt", "le", "gt", "ge")


@dataclass
class SpikeCode:
    """A tensor carried as spikes over ``T`` steps, with what its read-out needs.

    Attributes
    ----------
    q : code value ``sum_t w_t s_t`` per element, shaped like ``x`` (float, integer-valued;
        carries the straight-through gradient of the encoder during training).
    gain, offset : per-block read-out ``x^ = gain * q + offset``, ``[*lead, nb, 1]`` for
        blocks along the last axis (feature axis).
    scheme : the code's scheme; ``timesteps``: ``T``; ``block``: block length along features.
    target : what the read-out regresses onto (kept for the anytime read-out; may be None).
    raw : stored spikes ``[T, *shape]`` for schemes whose spikes are not a function of ``q``
        (``rate``, ``sigma_delta``); ``None`` otherwise.
    lam : the ridge penalty of the read-out.
    shape : the encoded input's shape ``[B, ...]`` (features flattened in ``q``).
    source : name of the neuron layer that emitted the spikes (set while simulating).
    packed : ``(raw, words)``: ``raw`` packed 64 to a word (``[T, B, words]`` int64, as
        :func:`tbnn.kernels.packed.pack_bits` packs ``raw`` in one block) where the firing made
        them in the same pass; read only while ``raw`` is still that tensor.
    """

    q: Tensor
    gain: Tensor
    offset: Tensor
    scheme: str
    timesteps: int
    block: int | None
    target: Tensor | None = None
    raw: Tensor | None = None
    lam: float = 0.01
    affine: bool = True
    shape: tuple[int, ...] | None = None
    source: str | None = None
    packed: tuple[Tensor, Tensor] | None = None

    # -- a spike train is not a tensor: operations outside tbnn modules are refused ----------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise _refuse(f"torch function {getattr(func, '__name__', func)!s}")

    for _op in _BINARY_OPS:
        def _make(name: str):
            def method(self, other):
                raise _refuse(f"the operator {name!r}")
            method.__name__ = f"__{name}__"
            return method
        locals()[f"__{_op}__"] = _make(_op)
        locals()[f"__r{_op}__"] = _make(_op)
    del _op, _make

    def __neg__(self):
        raise _refuse("negation")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"SpikeCode has no attribute {name!r}: a spike train is not a tensor; feed it to a "
                             "tbnn layer, or use code.spikes / code.decode().")

    def unflatten(self, t: Tensor) -> Tensor:
        """Reshape a per-feature tensor ``[..., F]`` to the encoded input's shape (``shape``)."""
        if self.shape is None:
            return t
        return t.reshape(*t.shape[:-1], *self.shape[1:])

    def block_masks(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """One 0/1 row per read-out block over the flat features: ``[nb, F]``."""
        k, bs = self.q.shape[-1], self.block_size()
        idx = torch.arange(k, device=self.q.device) // bs
        return (idx.unsqueeze(0) == torch.arange(-(-k // bs), device=self.q.device).unsqueeze(1)).to(dtype)

    # -- spikes ------------------------------------------------------------------------
    @property
    def weights(self) -> Tensor:
        """Per-step weights ``w_t`` (``[T]``)."""
        return step_weights(self.scheme, self.timesteps, self.q.dtype, self.q.device)

    @property
    def spikes(self) -> Tensor:
        """The spike train as a boolean tensor ``[T, *shape]`` (no gradient)."""
        if self.raw is not None:  # (already bool: itself, without a dispatch)
            return self.raw if self.raw.dtype == torch.bool else self.raw.bool()
        return get_code(self.scheme).spikes_of(self.q.detach().round().to(torch.int64), self.timesteps)

    def step_values(self) -> Tensor:
        """Spikes as floats ``[T, *shape]`` carrying the code's gradient.

        ``s_t + (q - sg(q)) / sum_t w_t``: the values are exactly 0/1 and
        ``sum_t w_t s_t`` has the gradient of ``q``, so step-by-step and time-folded layers
        agree forward and backward.
        """
        s = self.spikes.to(self.q.dtype)
        w = self.weights
        return s + ((self.q - self.q.detach()) / w.sum()).unsqueeze(0)

    def partial_code(self, steps: int) -> Tensor:
        """Code value of the first ``steps`` spikes, on the scale where each step is one bit.

        ``binary``: ``sum_{tau<=t} 2^(t-tau) s_tau`` (the leading ``t`` bits); others: the
        weighted count with the scheme's weights for ``T = steps``.
        """
        if steps == self.timesteps:
            return self.q
        s = self.spikes[:steps].to(self.q.dtype)
        w = get_code(self.scheme).partial_weights(steps, self.timesteps, s.dtype, s.device)
        return torch.tensordot(w, s, dims=1)

    def feature_gain(self) -> tuple[Tensor, Tensor]:
        """Gain and offset expanded to one value per feature (``[*shape]`` each)."""
        k = self.q.shape[-1]
        g = self.gain.expand(*self.gain.shape[:-1], self.block_size()).reshape(*self.q.shape[:-1], -1)[..., :k]
        o = self.offset.expand(*self.offset.shape[:-1], self.block_size()).reshape(*self.q.shape[:-1], -1)[..., :k]
        return g, o

    def read(self, q: Tensor | None = None) -> Tensor:
        """``gain * q + offset`` per block, shaped like ``q`` (default: the full code ``self.q``).

        Works on the blocked view when the features divide into whole blocks (no per-feature
        copies of the gain and offset); the numbers are those of ``feature_gain``.
        """
        q = self.q if q is None else q
        k, bs = q.shape[-1], self.block_size()
        nb = self.gain.shape[-2]
        if nb * bs == k and tuple(self.gain.shape[:-2]) == tuple(q.shape[:-1]):
            qv = q.reshape(*q.shape[:-1], nb, bs)
            return (qv * self.gain + self.offset).reshape(q.shape)
        g, o = self.feature_gain()
        return g * q + o

    def with_source(self, source: str | None) -> SpikeCode:
        """This code (the same tensors) with ``source`` set: ``dataclasses.replace(self, source=source)``,
        without its look-up of every field (a simulation does it for every layer and batch).

        >>> code = SpikeCode(torch.ones(1, 2), torch.ones(1, 1, 1), torch.zeros(1, 1, 1), "binary", 2, None)
        >>> tagged = code.with_source("hidden1")
        >>> tagged.source, code.source, tagged.q is code.q
        ('hidden1', None, True)
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.source = source
        return new

    def block_size(self) -> int:
        """Features per read-out block (the whole feature axis when ``block`` is ``None``)."""
        k = self.q.shape[-1]
        return k if self.block is None else min(self.block, k)

    def float(self) -> Tensor:
        """Spikes as a float tensor ``[T, *shape]`` (for snnTorch neurons)."""
        return self.spikes.float()

    # -- read-out ----------------------------------------------------------------------
    def decode(self, steps: int | None = None) -> Tensor:
        """Read-out after ``steps`` steps (default all); see :func:`decode`."""
        return decode(self, steps)

    @classmethod
    def from_spikes(
        cls,
        spikes: Tensor,
        scheme: str = "rate",
        target: Tensor | None = None,
        lam: float = 0.01,
        block: int | None = 128,
    ) -> "SpikeCode":
        """Wrap spikes ``[T, *shape]`` made elsewhere (e.g. ``snntorch.spikegen.rate``).

        With a ``target`` the read-out is the DAT fit onto it; without one it is the
        scheme's fixed inverse map onto ``[0, 1]`` (``q / sum_t w_t``; a rate for ``rate``).
        """
        if spikes.dim() < 2:
            raise ValueError(f"spikes must be [T, ...features] with rank >= 2; got rank {spikes.dim()}.")
        code = get_code(scheme)
        s = spikes.detach()
        if not bool(((s == 0) | (s == 1)).all()):
            raise ValueError("spikes must hold only 0 and 1.")
        T = s.shape[0]
        q = torch.tensordot(code.step_weights(T, torch.float32, s.device), s.float(), dims=1)
        sc = cls(q, q, q, scheme, T, block, target, raw=s.bool(), lam=lam)
        gain, offset = sc._fit(q, T)
        return replace(sc, gain=gain, offset=offset)

    def _fit(self, q: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        if self.target is None:
            top = get_code(self.scheme).readout_scale(steps, self.timesteps)
            qb, _, _ = to_blocks(q, -1, self.block)
            return torch.full_like(qb[..., :1], 1.0 / top), torch.zeros_like(qb[..., :1])
        xb, valid, n = to_blocks(self.target, -1, self.block)
        qb, _, _ = to_blocks(q, -1, self.block)
        return ridge_fit(xb, qb, valid, n, self.lam, self.affine)


@compute_in_float32
def encode(
    x: Tensor,
    timesteps: int,
    scheme: str = "binary",
    *,
    grid: str = "minmax",
    block: int | None = 128,
    lam: float = 0.01,
    target: str = "x",
    method: str = "dat",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> SpikeCode:
    """Encode ``x`` (features last) as spikes over ``timesteps`` steps.

    Parameters
    ----------
    x : finite tensor ``[..., features]``.
    timesteps : ``T >= 1``.
    scheme : one of :data:`SCHEMES`.
    grid : how each block is mapped onto ``v`` in ``[0, 1]``: ``minmax`` (default for data),
        ``meanstd`` or ``rectify`` (hidden neurons: below zero is silence).
    block : features per block for the grid and the read-out (``None``: all).
    lam : ridge penalty of the DAT read-out.
    target : the read-out regresses onto ``"x"`` or ``"relu"`` (``relu(x)``).
    method : ``"dat"`` (ridge read-out) or ``"ste"``/``"ste_clip"`` (fixed inverse grid map).
    seed, generator : randomness of the ``rate`` scheme.

    Returns a :class:`SpikeCode`; ``code.spikes`` is ``[T, *x.shape]`` boolean.
    """
    check_tensor(x, "x", allow_empty_axis=x.dim() - 1 if isinstance(x, Tensor) and x.dim() else None)
    _validate(timesteps, scheme, block, lam, grid, x)
    check_choice(target, ("x", "relu"), "target")
    check_choice(method, METHODS, "method")
    return encode_unchecked(x, timesteps, scheme, grid, block, lam, target, method, seed, generator)


def encode_unchecked(
    x: Tensor,
    timesteps: int,
    scheme: str,
    grid: str,
    block: int | None,
    lam: float,
    target: str,
    method: str,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> SpikeCode:
    """:func:`encode` without argument checks (the hot path of the neuron layers, whose
    constructor checked them once)."""
    code = get_code(scheme)
    levels = code.levels(timesteps)
    tgt = torch.relu(x) if target == "relu" else x
    if code.deterministic and x.shape[-1] > 0:
        # the fast affine path (tbnn.core.quant.affine_fast): same values and gradients as below
        q, gain, offset = affine_fast(x, block, grid, levels, lam, target, method, fused=False,
                                      grid_levels=code.grid_levels(timesteps))
        return SpikeCode(q, gain, offset, scheme, timesteps, block, tgt, None, lam)
    xb, valid, n = to_blocks(x, -1, block)
    lo, hi = grid_range(xb, valid, n, grid, code.grid_levels(timesteps))
    raw = None
    if code.deterministic:
        qb = affine_codes(xb, lo, hi, levels, clip_grad=method == "ste_clip")
    else:
        v = ((xb - lo) / (hi - lo)).clamp(0.0, 1.0)
        u = v * timesteps
        if generator is None and seed is not None:
            generator = torch.Generator(device=x.device).manual_seed(seed)
        sb = code.draw(v.detach(), timesteps, generator)
        count = sb.to(x.dtype).sum(0)
        qb = u + (count - u).detach()
        k = x.shape[-1]
        raw = sb.reshape(timesteps, *sb.shape[1:-2], -1)[..., :k]
    qb = torch.where(valid, qb, torch.zeros((), dtype=qb.dtype, device=qb.device))
    tgt_b = torch.relu(xb) if target == "relu" else xb
    if method == "dat":
        gain, offset = ridge_fit(tgt_b, qb, valid, n, lam, affine=True)
    else:  # fixed inverse map: the centre of each bin of v, mapped back through the grid
        top, half = code.ste_levels(timesteps)
        gain = (hi - lo) / top
        offset = lo + half * gain
    k = x.shape[-1]
    q = qb.reshape(*qb.shape[:-2], -1)[..., :k]
    return SpikeCode(q, gain, offset, scheme, timesteps, block, tgt, raw, lam)


def decode(code: SpikeCode, steps: int | None = None) -> Tensor:
    """Read a :class:`SpikeCode` out after ``steps`` steps (default: all ``T``).

    ``x^ = gain_t * q_t + offset_t`` per block, where ``q_t`` is the code of the first
    ``t`` spikes and ``(gain_t, offset_t)`` the ridge fit of the target on it (Ye et al.
    2024); at ``t = T`` the encoder's fit is used. Returns a tensor shaped like ``x``.
    """
    T = code.timesteps
    steps = T if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in [1, {T}]; got {steps!r}.")
    if steps == T:
        return code.read()
    q = code.partial_code(steps)
    gain, offset = code._fit(q, steps)
    return replace(code, q=q, gain=gain, offset=offset).read()
