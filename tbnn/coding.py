"""Spike codes: values carried as binary spike trains over ``T`` time steps, and their read-out.

``encode(x, T, scheme)`` returns a :class:`SpikeCode` whose ``spikes`` are a 0/1 tensor
``[T, *x.shape]`` (snnTorch's time-first layout). Every scheme here is *linear in its
spikes*: the code value is ``q = sum_t w_t s_t`` with fixed per-step weights ``w_t``, and
the read-out is the denoising affine transform of Ye et al. (arXiv:2409.09245) fitted per
block, ``x^ = gain * q + offset`` (DESIGN §1.1–1.2). Schemes:

* ``binary`` (the reference): an integrate-and-fire neuron with reset by subtraction and a
  halving threshold ``theta_t = 2^-t``, started at the grid value ``r_0 = v`` in ``[0, 1]``::

      s_t = 1[r_{t-1} >= 2^-t],   r_t = r_{t-1} - 2^-t s_t

  so ``s_1 .. s_T`` are the bits, most significant first, of the ``T``-bit code
  ``min(floor(2^T v), 2^T - 1)``; ``w_t = 2^(T-t)``. At ``T = k`` it is exactly the k-bit DAT.
* ``sigma_delta``: integrate-and-fire with constant input ``v`` per step and threshold 1
  (reset by subtraction; a first-order sigma-delta modulator), ``w_t = 1``.
* ``rate``: Bernoulli spikes with probability ``v`` per step (seeded), ``w_t = 1``.
* ``thermometer``: the first ``c`` steps spike, ``c = min(floor((T+1) v), T)``, ``w_t = 1``.
* ``latency``: one spike at step ``T + 1 - c`` (none when ``c = 0``), ``w_t = T + 1 - t``
  (earlier means larger: time-to-first-spike).

The read-out after ``steps < T`` refits the DAT on the partial code (the anytime read-out);
it improves with every step. Codes from other libraries (``snntorch.spikegen``) are read
with :meth:`SpikeCode.from_spikes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .quant import (
    GRIDS,
    METHODS,
    to_blocks,
    affine_codes,
    affine_fast,
    check_finite,
    grid_range,
    ridge_fit,
)
from .validate import check_block, check_choice, check_int, check_lam

__all__ = ["SCHEMES", "SpikeCode", "encode", "decode", "step_weights", "if_binary_step", "if_binary_run"]

SCHEMES: tuple[str, ...] = ("binary", "sigma_delta", "rate", "thermometer", "latency")


def step_weights(scheme: str, timesteps: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Per-step weights ``w_t`` with ``q = sum_t w_t s_t`` for each scheme (``t = 1..T``)."""
    t = torch.arange(1, timesteps + 1, dtype=dtype, device=device)
    if scheme == "binary":
        return 2.0 ** (timesteps - t)
    if scheme == "latency":
        return timesteps + 1 - t
    return torch.ones_like(t)


def check_timesteps(timesteps: int, scheme: str = "binary") -> int:
    """``T >= 1``, and ``T <= 24`` for the binary code (its codes are exact float32 integers)."""
    return check_int(timesteps, "timesteps", 1, 24 if scheme == "binary" else None,
                     " for the binary code (float32 codes)")


def _levels(scheme: str, timesteps: int) -> int:
    """Number of distinct code values ``q`` a scheme can take."""
    return 2**timesteps if scheme == "binary" else timesteps + 1


def _validate(timesteps: int, scheme: str, block: int | None, lam: float, grid: str, x: Tensor) -> None:
    check_choice(scheme, SCHEMES, "scheme")
    check_timesteps(timesteps, scheme)
    check_choice(grid, GRIDS, "grid")
    check_block(block)
    check_lam(lam)
    check_finite(x, "x")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension (features last); got a scalar.")


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

    def unflatten(self, t: Tensor) -> Tensor:
        """Reshape a per-feature tensor ``[..., F]`` to the encoded input's shape (``shape``)."""
        if self.shape is None:
            return t
        return t.reshape(*t.shape[:-1], *self.shape[1:])

    def block_masks(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """One 0/1 row per read-out block over the flat features: ``[nb, F]``."""
        k, bs = self.q.shape[-1], self._bsize()
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
        if self.raw is not None:
            return self.raw.bool()
        code = self.q.detach().round().to(torch.int64)
        T = self.timesteps
        if self.scheme == "binary":
            shifts = torch.arange(T - 1, -1, -1, device=code.device).view(-1, *[1] * code.dim())
            return ((code.unsqueeze(0) >> shifts) & 1).bool()
        t = torch.arange(1, T + 1, device=code.device).view(-1, *[1] * code.dim())
        if self.scheme == "thermometer":
            return t <= code.unsqueeze(0)
        if self.scheme == "latency":
            return (t == T + 1 - code.unsqueeze(0)) & (code.unsqueeze(0) > 0)
        raise AssertionError(self.scheme)

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
        if self.scheme == "latency":
            w = (self.timesteps + 1 - torch.arange(1, steps + 1, dtype=s.dtype, device=s.device))
        else:
            w = step_weights(self.scheme, steps, s.dtype, s.device)
        return torch.tensordot(w, s, dims=1)

    def feature_gain(self) -> tuple[Tensor, Tensor]:
        """Gain and offset expanded to one value per feature (``[*shape]`` each)."""
        k = self.q.shape[-1]
        g = self.gain.expand(*self.gain.shape[:-1], self._bsize()).reshape(*self.q.shape[:-1], -1)[..., :k]
        o = self.offset.expand(*self.offset.shape[:-1], self._bsize()).reshape(*self.q.shape[:-1], -1)[..., :k]
        return g, o

    def read(self, q: Tensor | None = None) -> Tensor:
        """``gain * q + offset`` per block, shaped like ``q`` (default: the full code ``self.q``).

        Works on the blocked view when the features divide into whole blocks (no per-feature
        copies of the gain and offset); the numbers are those of ``feature_gain``.
        """
        q = self.q if q is None else q
        k, bs = q.shape[-1], self._bsize()
        nb = self.gain.shape[-2]
        if nb * bs == k and tuple(self.gain.shape[:-2]) == tuple(q.shape[:-1]):
            qv = q.reshape(*q.shape[:-1], nb, bs)
            return (qv * self.gain + self.offset).reshape(q.shape)
        g, o = self.feature_gain()
        return g * q + o

    def _bsize(self) -> int:
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
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}.")
        s = spikes.detach()
        if not bool(((s == 0) | (s == 1)).all()):
            raise ValueError("spikes must hold only 0 and 1.")
        T = s.shape[0]
        w = step_weights(scheme, T, torch.float32, s.device)
        q = torch.tensordot(w, s.float(), dims=1)
        code = cls(q, q, q, scheme, T, block, target, raw=s.bool(), lam=lam)
        gain, offset = code._fit(q, T)
        return replace(code, gain=gain, offset=offset)

    def _fit(self, q: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        if self.target is None:
            top = float(step_weights(self.scheme, steps).sum()) if self.scheme != "latency" else float(self.timesteps)
            qb, _, _ = to_blocks(q, -1, self.block)
            return torch.full_like(qb[..., :1], 1.0 / top), torch.zeros_like(qb[..., :1])
        xb, valid, n = to_blocks(self.target, -1, self.block)
        qb, _, _ = to_blocks(q, -1, self.block)
        return ridge_fit(xb, qb, valid, n, self.lam, self.affine)


def _if_counts(v: Tensor, timesteps: int) -> Tensor:
    """Spikes ``[T, *v.shape]`` of an IF neuron with constant input ``v`` and threshold 1."""
    r = torch.zeros_like(v)
    out = []
    for _ in range(timesteps):
        r = r + v
        s = (r >= 1.0).to(v.dtype)
        r = r - s
        out.append(s)
    return torch.stack(out)


def if_binary_step(r: Tensor, t: int) -> tuple[Tensor, Tensor]:
    """One step of the binary neuron: ``s = 1[r >= 2^-t]``, ``r <- r - 2^-t s`` (``t >= 1``).

    The functional neuron step; :func:`encode` uses the equivalent closed form (the bits of
    the code) so that no Python loop over ``T`` is needed.
    """
    theta = 2.0**-t
    s = (r >= theta).to(r.dtype)
    return s, r - theta * s


def if_binary_run(v: Tensor, timesteps: int) -> Tensor:
    """Run :func:`if_binary_step` for ``T`` steps from ``r_0 = v``: spikes ``[T, *v.shape]``."""
    r, out = v, []
    for t in range(1, timesteps + 1):
        s, r = if_binary_step(r, t)
        out.append(s)
    return torch.stack(out)


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
    _validate(timesteps, scheme, block, lam, grid, x)
    check_choice(target, ("x", "relu"), "target")
    check_choice(method, METHODS, "method")
    return _encode(x, timesteps, scheme, grid, block, lam, target, method, seed, generator)


def _encode(
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
    """:func:`encode` without validation (the hot path of the neuron layers)."""
    levels = _levels(scheme, timesteps)
    tgt = torch.relu(x) if target == "relu" else x
    if scheme in ("binary", "thermometer", "latency") and x.shape[-1] > 0:
        # the fast affine path (tbnn.quant.affine_fast): same values and gradients as below
        q, gain, offset = affine_fast(x, block, grid, levels, lam, target, method, fused=False,
                                      grid_levels=levels if scheme == "binary" else 2)
        return SpikeCode(q, gain, offset, scheme, timesteps, block, tgt, None, lam)
    xb, valid, n = to_blocks(x, -1, block)
    lo, hi = grid_range(xb, valid, n, grid, levels if scheme == "binary" else 2)
    raw = None
    if scheme in ("binary", "thermometer", "latency"):
        qb = affine_codes(xb, lo, hi, levels, clip_grad=method == "ste_clip")
    else:
        v = ((xb - lo) / (hi - lo)).clamp(0.0, 1.0)
        u = v * timesteps
        if scheme == "rate":
            if generator is None and seed is not None:
                generator = torch.Generator(device=x.device).manual_seed(seed)
            vv = v.detach().unsqueeze(0).expand(timesteps, *v.shape)
            sb = torch.rand(vv.shape, generator=generator, device=x.device, dtype=x.dtype) < vv
        else:
            sb = _if_counts(v.detach(), timesteps).bool()
        count = sb.to(x.dtype).sum(0)
        qb = u + (count - u).detach()
        k = x.shape[-1]
        raw = sb.reshape(timesteps, *sb.shape[1:-2], -1)[..., :k]
    qb = torch.where(valid, qb, torch.zeros((), dtype=qb.dtype, device=qb.device))
    tgt_b = torch.relu(xb) if target == "relu" else xb
    if method == "dat":
        gain, offset = ridge_fit(tgt_b, qb, valid, n, lam, affine=True)
    else:  # fixed inverse map: the centre of each bin of v, mapped back through the grid
        top = levels if scheme == "binary" else timesteps + (scheme in ("thermometer", "latency"))
        gain = (hi - lo) / top
        offset = lo + (0.5 * gain if scheme in ("binary", "thermometer", "latency") else 0.0)
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
