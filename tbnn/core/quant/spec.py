"""What a quantizer accepts: bit widths, methods, grids, sparsity patterns, and their checks."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from tbnn.core.validate import check_block, check_choice, check_lam, check_tensor

__all__ = ["WEIGHT_BITS", "METHODS", "GRIDS", "TARGETS", "QuantSpec", "check_finite", "validate_bits", "parse_sparsity"]


#: Bit widths a weight or activation tensor can be quantized to (1.5 = ternary).
WEIGHT_BITS: tuple[float, ...] = (1, 1.5, 2, 3, 4, 8)
#: ``dat``: ridge dequantizer (the paper); ``ste``: fixed inverse grid map;
#: ``ste_clip``: the same with the hardtanh-clipped straight-through gradient.
METHODS: tuple[str, ...] = ("dat", "ste", "ste_clip")
#: How ``lo`` and ``hi`` of the affine grid come from a block: ``minmax`` (two-sided, 1-bit
#: threshold at the midpoint), ``meanstd`` (mean ± c·std, 1-bit threshold at the block
#: mean), ``rectify`` (``lo = 0``, ``hi`` = block maximum: a neuron that cannot fire negative
#: spikes, the network's nonlinearity), ``unit`` (``lo = 0``, ``hi = 1``: rectifying on an input
#: already divided by a scale that does not depend on the sample, e.g. a running statistic,
#: so that every element of a block can be silent).
GRIDS: tuple[str, ...] = ("minmax", "meanstd", "rectify", "unit")
#: What the read-out regresses onto: ``x`` itself, or ``relu(x)`` (for rectifying neurons).
TARGETS: tuple[str, ...] = ("x", "relu")

TINY = 1e-12


# --------------------------------------------------------------------------------------
# validation


def check_finite(x: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity."""
    check_tensor(x, name, allow_empty_axis=-1)
    # a finite sum proves every element finite (one reduction, no boolean temporary); only
    # when it is not (a NaN, an inf, or an overflowing sum) is the element-wise test run
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x.detach().sum())):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite; it holds NaN or inf values.")


def validate_bits(bits: float, name: str = "bits") -> float:
    """Return ``bits`` if it is one of :data:`WEIGHT_BITS`, else raise ``ValueError``."""
    if isinstance(bits, bool) or bits not in WEIGHT_BITS:
        allowed = ", ".join(str(b) for b in WEIGHT_BITS)
        raise ValueError(f"{name} must be one of {allowed} (1.5 = ternary); got {bits!r}.")
    return bits


def check_common(lam: float, block: int | None, method: str, grid: str | None) -> None:
    check_lam(lam)
    check_block(block)
    check_choice(method, METHODS, "method")
    if grid is not None:
        check_choice(grid, GRIDS, "grid")


def parse_sparsity(sparsity: str | float | None) -> tuple[int, int] | float | None:
    """Parse ``"M:N"`` (keep M of every N) or a magnitude fraction in ``[0, 1)`` to prune.

    Returns ``(M, N)``, a float fraction, or ``None``.
    """
    if sparsity is None:
        return None
    if isinstance(sparsity, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", sparsity)
        if m is None:
            raise ValueError(
                f"sparsity must be 'M:N' with integers 0 < M <= N (e.g. '2:4') or a fraction in "
                f"[0, 1); got {sparsity!r}."
            )
        keep, group = int(m.group(1)), int(m.group(2))
        if not 0 < keep <= group:
            raise ValueError(f"sparsity 'M:N' needs 0 < M <= N; got {sparsity!r}.")
        return keep, group
    if isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool):
        if not 0 <= float(sparsity) < 1:
            raise ValueError(f"sparsity as a fraction must lie in [0, 1); got {sparsity!r}.")
        return float(sparsity)
    raise ValueError(f"sparsity must be 'M:N', a fraction in [0, 1) or None; got {sparsity!r}.")


@dataclass(frozen=True)
class QuantSpec:
    """How a tensor is quantized, validated once: the arguments of :func:`fake_quantize` as one record.

    A layer keeps one spec per quantized tensor and passes it along whole, instead of the
    same eight arguments through every call. Fields as in :func:`fake_quantize`: ``bits``
    (:data:`WEIGHT_BITS`), ``method`` (:data:`METHODS`), ``block``, ``lam``, ``sparsity``
    (``"M:N"`` or a fraction), ``grid`` (:data:`GRIDS`, ``None`` for the default) and
    ``target`` (:data:`TARGETS`).

    Raises
    ------
    ValueError
        Any field outside what it allows (one sentence naming the field).

    >>> spec = QuantSpec(bits=2, block=64)
    >>> spec.levels, spec.affine, spec.kwargs()["block"]
    (4, True, 64)
    >>> QuantSpec(bits=5)
    Traceback (most recent call last):
    ...
    ValueError: bits must be one of 1, 1.5, 2, 3, 4, 8 (1.5 = ternary); got 5.
    """

    bits: float = 1
    method: str = "dat"
    block: int | None = 128
    lam: float = 0.01
    sparsity: str | float | None = None
    grid: str | None = None
    target: str = "x"

    def __post_init__(self) -> None:
        validate_bits(self.bits)
        check_common(self.lam, self.block, self.method, self.grid)
        parse_sparsity(self.sparsity)
        check_choice(self.target, TARGETS, "target")

    @property
    def affine(self) -> bool:
        """Affine codes (1, 2, 3, 4, 8 bits, dense); ternary and sparse codes are linear."""
        return self.bits != 1.5 and self.sparsity is None

    @property
    def levels(self) -> int:
        """Grid levels of the affine codes (``2^bits``; 3 for ternary)."""
        return 3 if self.bits == 1.5 else 2 ** int(self.bits)

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments of :func:`fake_quantize`."""
        return asdict(self)
