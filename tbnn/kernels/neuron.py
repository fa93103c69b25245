r"""The binary neuron in one compiled pass: grid, codes, integrate-and-fire and its check.

A binary neuron layer (Ye et al., arXiv:2409.09245; :mod:`tbnn.nn.neurons`) turns its input
``x`` into codes on a per-block grid and fires their bits by integrate-and-fire. In torch
that is a dozen passes over the data (the block range, the codes' subtraction, division,
floor and clip, the grid values' own range, subtraction, division and clip, then the firing
loop). ``tb_neuron`` (``neuron.c``, :mod:`tbnn.kernels.build`) makes them in one pass per
block, each operation the float32 operation torch makes:

.. math::

    q = \min\big(\max(\lfloor (u - lo_b) / (s_b / L) \rfloor, 0), L - 1\big), \qquad
    v = \min\big(\max((x - lo_b) / s_b, 0), 1\big), \qquad s_b = hi_b - lo_b,

with :math:`L = 2^T`, :math:`u` the rectified input where the grid rectifies, and the block
range :math:`(lo_b, hi_b)` of the ``rectify``, ``unit`` or ``minmax`` grid
(:func:`tbnn.core.quant.fast.grid_values`). The membranes start at :math:`v` and fire with
halving thresholds (:func:`tbnn.core.firing.integrate_and_fire`); their weighted spikes are
checked against :math:`q` in the same pass, and the codes' block sums :math:`\sum q` and
:math:`\sum q^2` (exact integers) come out of it too. :func:`dat_fit` then fits the read-out
(Ye et al., §3) compiled: the block sums of the target and of :math:`q t` added in the order
of torch's CPU sum, the ridge fit's float32 operations as torch makes them (its ``addcmul`` a
fused multiply-add here), so the gains and offsets are the bits the eval forward computes;
where that order or rounding is not torch's (checked once per process and thread count) the
fit stays in torch. Tested equal, code for code, spike for spike and gain for gain, to the
torch path on every dispatch path.

>>> import torch
>>> out = fire_codes(torch.tensor([[0.8125, 0.0, 1.0, -2.0]]), 4, "rectify", 4, relu=True, path=0)
>>> out is None or (out[0].tolist(), out[1][:, 0].int().T.tolist(), out[2]) == (
...     [[13.0, 0.0, 15.0, 0.0]], [[1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], 0)
True
"""

from __future__ import annotations

import functools
import sys
from typing import NamedTuple

import torch
from torch import Tensor

from tbnn.core.firing import binary_thresholds
from tbnn.core.quant.spec import TINY

from .packed import best_path, kernel

__all__ = ["GRIDS", "MIN_PATH", "Fired", "dat_fit", "fire_codes", "fit_agrees", "path_agrees", "ready"]

#: The grids the compiled neuron runs (others keep the torch path).
GRIDS: dict[str, int] = {"rectify": 0, "unit": 1, "minmax": 2}
#: The slowest dispatch path used unasked (2: AVX2): the scalar paths take longer than torch's
#: vectorised passes (measured: 1.39 ms against 0.37 ms for 256 x 256, AMD EPYC), so there the
#: neuron stays in torch; a test may still force them.
MIN_PATH = 2


@functools.cache
def _steps(timesteps: int) -> tuple[Tensor, Tensor]:
    """The thresholds and step weights of ``T`` steps, float32 (kept: never written)."""
    th = torch.tensor(binary_thresholds(timesteps), dtype=torch.float32)
    return th, 2.0 ** torch.arange(timesteps - 1, -1, -1, dtype=torch.float32)


@functools.cache
def path_agrees(path: int) -> bool:
    """Whether the compiled neuron on ``path`` makes torch's codes, spikes and relu target, checked once per
    process on a small problem (every grid, ragged blocks, zeros, negative zeros, constant and
    all-negative rows, a subnormal, values on and one ulp off the grid's levels). A path that
    disagrees is not used (one line on stderr): the neuron then stays in torch."""
    from tbnn.core.firing import integrate_and_fire
    from tbnn.core.quant.fast import affine_fast, grid_values, rectifies

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 100, generator=gen) * 3
    levels = torch.arange(17, dtype=torch.float32) / 16
    x[0, :17], x[1, :17] = levels, torch.nextafter(levels, torch.zeros(17))
    x[2], x[3], x[4, :40] = 0.0, -1.0, 2.5
    x[5, :9] = -0.0
    x[6, 3] = torch.finfo(torch.float32).tiny / 4
    for grid, target in (("rectify", "relu"), ("rectify", "x"), ("unit", "relu"), ("minmax", "x")):
        for T in (1, 4):
            got = fire_codes(x, 32, grid, T, rectifies(grid, target), path=path, target=True)
            q = affine_fast(x, 32, grid, 2**T, 0.01, target, fused=False)[0]
            spikes = integrate_and_fire(grid_values(x, 32, grid, 2**T), binary_thresholds(T))
            if (got is None or got.differ or not torch.equal(got.q, q) or not torch.equal(got.spikes, spikes)
                    or not torch.equal(got.code_sums, torch.stack(_block_sums(q, 32)))
                    or not torch.equal(got.target.view(torch.int32), torch.relu(x).view(torch.int32))):  # the bits
                print(f"tbnn: the compiled neuron's {kernel().tb_path_name(path).decode()} path failed its "
                      "self-test; the neuron stays in torch.", file=sys.stderr)
                return False
    return True


class Fired(NamedTuple):
    """What :func:`fire_codes` makes."""

    q: Tensor  #: float32 codes ``[B, K]``
    spikes: Tensor  #: boolean spikes ``[T, B, K]``
    differ: int  #: membranes whose weighted spikes differ from their codes (0 unless there is a bug)
    code_sums: Tensor | None  #: ``[2, B, nb]`` block sums of ``q`` and ``q^2``; ``None`` where float32 is not exact
    counts: Tensor  #: ``[K]`` int32: each neuron's spikes over the samples and steps
    target: Tensor | None = None  #: ``torch.relu(x)`` ``[B, K]``, the same bits, where asked
    words: Tensor | None = None  #: the spikes packed, ``pack_bits(spikes, None)`` ``[T, B, words]``, where made


def _block_sums(q: Tensor, block: int) -> tuple[Tensor, Tensor]:
    """The block sums of ``q`` and ``q^2`` ``[B, nb]``, in float64 then float32 (exact integers)."""
    parts = q.double().split(block, -1)
    return (torch.stack([p.sum(-1) for p in parts], -1).float(),
            torch.stack([(p * p).sum(-1) for p in parts], -1).float())


def fire_codes(x: Tensor, block: int | None, grid: str, timesteps: int, relu: bool,
               path: int | None = None, target: bool = False, words: bool = False) -> Fired | None:
    """Codes, spikes and their check of a binary neuron layer's input ``x`` ``[B, K]``.

    Returns a :class:`Fired`: the codes, the spikes, how many membranes' weighted spikes differ
    from their codes, the codes' block sums of ``q`` and ``q^2`` (integers, given where they
    stay below :math:`2^{24}`, so exact in float32 whatever the order) and each neuron's spike
    count; or ``None`` where the kernel does not run (no compiled kernel, ``x`` not a float32
    CPU matrix, a grid of its own, ``T`` over 24, a CPU without AVX2 unless ``path`` is given)
    or ``x`` holds a value that is not finite: then the caller takes the torch path. ``relu``:
    the codes are those of ``max(x, 0)`` (the rectified input of the ``rectify`` and ``unit``
    grids with the ``relu`` target). ``path``: as :func:`tbnn.kernels.packed.block_terms`
    (default: :func:`tbnn.kernels.packed.best_path`). ``target``: also write ``torch.relu(x)``
    (:attr:`Fired.target`, bit for bit: ``-0.0`` kept) in the same pass. ``words``: also pack the
    spikes as :func:`tbnn.kernels.packed.pack_bits` packs them (:attr:`Fired.words`), where the
    pass can (the AVX-512 path, blocks a multiple of 16 features long; else ``None``).
    """
    if (x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or grid not in GRIDS
            or not 1 <= timesteps <= 24 or x.requires_grad and torch.is_grad_enabled()):
        return None
    lib = kernel()
    if lib is None or x.numel() == 0:
        return None
    if path is None:
        path = _unasked_path()
        if path is None:
            return None
    xc = (x.detach() if x.requires_grad else x).contiguous()
    rows, k = xc.shape
    bs = k if block is None else max(1, min(int(block), k))
    th, w = _steps(timesteps)
    q = torch.empty(rows, k, dtype=torch.float32)
    spikes = torch.empty(timesteps, rows, k, dtype=torch.bool)
    exact = (2**timesteps - 1) ** 2 * bs < 2**24
    sums = torch.empty(2, rows, -(-k // bs), dtype=torch.float32) if exact else None
    counts = torch.zeros(k, dtype=torch.int32)
    tgt = torch.empty(rows, k, dtype=torch.float32) if target else None
    packed = torch.empty(timesteps, rows, -(-k // 64), dtype=torch.int64) if words and path == 3 and bs % 16 == 0 else None
    differ = lib.tb_neuron(path, xc.data_ptr(), rows, k, bs, GRIDS[grid],
                           int(bool(relu)), TINY, timesteps, th.data_ptr(), w.data_ptr(), q.data_ptr(),
                           spikes.data_ptr(), None if sums is None else sums.data_ptr(), counts.data_ptr(),
                           None if tgt is None else tgt.data_ptr(), None if packed is None else packed.data_ptr())
    if differ < 0:
        return None
    return Fired(q, spikes, int(differ), sums, counts, tgt, packed)


def dat_fit(x: Tensor, fired: Fired, block: int | None, relu: bool, lam: float) -> tuple[Tensor, Tensor] | None:
    """``(gain, offset)`` ``[B, nb, 1]`` of the DAT read-out of :func:`fire_codes`' codes onto
    ``relu(x)`` (``relu``) or ``x``, compiled (``tb_dat_fit``): the block sums of the target and
    of the codes times the target added in the order of torch's CPU sum, then the ridge fit's
    float32 operations as :func:`tbnn.core.quant.fast.dat_readout` makes them, so the same bits
    (checked once per process and thread count, :func:`fit_agrees`). ``None`` where it does not
    run (``lam = 0``, a block under 8 features, no exact code sums, a check that failed): then
    the caller fits in torch.
    """
    lib = kernel()
    rows, k = x.shape
    bs = k if block is None else max(1, min(int(block), k))
    if (lib is None or fired.code_sums is None or not lam > 0 or min(bs, k % bs or bs) < 8  # the last block too
            or not fit_agrees(torch.get_num_threads())):
        return None
    return _fit(lib, x, fired, bs, relu, lam)


def _fit(lib, x: Tensor, fired: Fired, bs: int, relu: bool, lam: float) -> tuple[Tensor, Tensor]:
    rows, k = x.shape
    nb = -(-k // bs)
    xc = (x.detach() if x.requires_grad else x).contiguous()
    gain = torch.empty(rows, nb, 1, dtype=torch.float32)
    offset = torch.empty(rows, nb, 1, dtype=torch.float32)
    levels2 = fired.spikes.shape[0] == 1
    lib.tb_dat_fit(best_path(), xc.data_ptr(), fired.q.data_ptr(), fired.code_sums.data_ptr(), rows, k, bs,
                   int(bool(relu)), float(lam), int(levels2), gain.data_ptr(), offset.data_ptr())
    return gain, offset


@functools.cache
def fit_agrees(threads: int) -> bool:
    """Whether :func:`dat_fit` gives torch's gains and offsets with ``threads`` intra-op threads,
    checked once per process on blocks of 8, 37, 100 (a ragged last block), 128 and 600
    features (the sums' leftover vectors, scalar tails and cascade), rows not a multiple of a
    vector, both targets and 0/1 codes. If not, the read-out is fitted in torch (one line on stderr)."""
    from tbnn.core.quant.fast import dat_readout

    lib = kernel()
    if lib is None or best_path() is None:
        return False
    gen = torch.Generator().manual_seed(2)
    for block, k, T in ((128, 256, 4), (100, 250, 4), (37, 74, 3), (600, 1200, 4), (8, 24, 1), (128, 128, 5)):
        x = torch.randn(13, k, generator=gen) * torch.exp(torch.randn(13, k, generator=gen))
        x[0, :5] = 0.0
        for grid, relu in (("rectify", True), ("minmax", False), ("minmax", True)):
            fired = fire_codes(x, block, grid, T, grid == "rectify", path=0)
            if fired is None or fired.code_sums is None:
                return False
            got = _fit(lib, x, fired, block, relu, 0.01)
            rect = torch.relu(x) if grid == "rectify" else x
            want = dat_readout(rect, fired.q, block, 2**T, 0.01, relu and grid != "rectify")
            if not (torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])):
                print("tbnn: the compiled read-out fit does not add as torch does here; the neuron's read-out "
                      "stays in torch.", file=sys.stderr)
                return False
    return True


def ready() -> bool:
    """Run the compiled neuron's once-per-process checks now (:func:`path_agrees` on the path
    :func:`fire_codes` takes unasked, :func:`fit_agrees` for this thread count), so that a timed
    run does not pay them; whether the neuron will run compiled."""
    if _unasked_path() is None:
        return False
    fit_agrees(torch.get_num_threads())
    return True


def _unasked_path() -> int | None:
    """The path :func:`fire_codes` takes when none is asked for: the best one, if it is a vector
    path (the portable ones are slower than torch's passes) that passes :func:`path_agrees`."""
    path = best_path()
    return path if path is not None and path >= MIN_PATH and path_agrees(path) else None
