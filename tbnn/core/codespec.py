"""A neuron's spike code as one validated record: :class:`CodeSpec`.

The arguments that decide how a layer of neurons turns its input into spikes and reads them
out (``timesteps``, ``scheme``, ``lam``, ``block``, ``grid``, ``target``, ``method``) travel
together as a frozen dataclass checked once, as :class:`tbnn.core.quant.QuantSpec` does for a
quantizer. :class:`tbnn.nn.neurons.TemporalBinary` takes one (``code=CodeSpec(...)``) or the
same arguments one by one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tbnn.core.coding import SCHEMES, check_timesteps
from tbnn.core.quant import GRIDS, METHODS, TARGETS
from tbnn.core.validate import check_block, check_choice, check_lam

__all__ = ["CodeSpec", "NEURON_GRIDS"]

#: Grids of a neuron: those of :data:`tbnn.core.quant.GRIDS` but ``unit``, and ``running``
#: (rectifying on a running scale that does not depend on the sample; the neuron divides its
#: input by that scale and puts it on the ``unit`` grid).
NEURON_GRIDS: tuple[str, ...] = tuple(g for g in GRIDS if g != "unit") + ("running",)


@dataclass(frozen=True)
class CodeSpec:
    r"""How a layer of neurons encodes its input as spikes and reads them out, validated once.

    Fields
    ------
    timesteps : ``T >= 1`` (at most 24 for ``binary``: its codes are exact float32 integers).
    scheme : spike code, one of :data:`tbnn.core.coding.SCHEMES`; ``binary`` is the reference.
    lam : ridge penalty :math:`\lambda \ge 0` of the read-out (Ye et al. 2024,
        arXiv:2409.09245: 0.01).
    block : neurons per read-out block (``None``: the whole layer of one sample).
    grid : :data:`NEURON_GRIDS`: ``rectify`` (hidden neurons, the default), ``minmax`` (an
        input encoder of signed data), ``meanstd``, or ``running``.
    target : what the read-out regresses onto, ``x`` or ``relu``; ``None`` (default) picks
        ``relu`` for the rectifying grids (``rectify``, ``running``) and ``x`` otherwise, and
        the spec stores the choice.
    method : ``dat`` (the ridge read-out) or the STE baselines ``ste`` / ``ste_clip``.

    Raises
    ------
    ValueError
        A field outside what it allows: one sentence naming the field.

    Examples
    --------
    >>> spec = CodeSpec(4, grid="minmax", block=64)
    >>> spec.target, spec.kwargs()["block"]
    ('x', 64)
    >>> CodeSpec(4).target
    'relu'
    >>> CodeSpec(4, scheme="morse")
    Traceback (most recent call last):
    ...
    ValueError: scheme must be one of binary, sigma_delta, rate, thermometer, latency; got 'morse'.
    """

    timesteps: int
    scheme: str = "binary"
    lam: float = 0.01
    block: int | None = 128
    grid: str = "rectify"
    target: str | None = None
    method: str = "dat"

    def __post_init__(self) -> None:
        check_choice(self.scheme, SCHEMES, "scheme")
        check_timesteps(self.timesteps, self.scheme)
        check_choice(self.grid, NEURON_GRIDS, "grid")
        check_choice(self.method, METHODS, "method")
        check_lam(self.lam)
        check_block(self.block)
        if self.target is not None:
            check_choice(self.target, TARGETS, "target")
        object.__setattr__(self, "timesteps", int(self.timesteps))
        object.__setattr__(self, "lam", float(self.lam))
        object.__setattr__(self, "target", self.target or ("relu" if self.grid in ("rectify", "running") else "x"))

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (of :class:`~tbnn.nn.neurons.TemporalBinary`)."""
        return asdict(self)
