"""Spike codes, one class per file behind the :class:`~tbnn.core.codes.base.Code` interface.

Registering a new code: write ``tbnn/codes/NAME.py`` with a :class:`Code` subclass and
add it to :data:`CODES` below; ``encode``, the neurons, the layers and the simulator then
accept ``scheme="NAME"``.

>>> sorted(CODES)
['binary', 'latency', 'rate', 'sigma_delta', 'thermometer']
"""

from __future__ import annotations

from tbnn.core.codes.base import Code
from tbnn.core.codes.binary import Binary
from tbnn.core.codes.latency import Latency
from tbnn.core.codes.rate import Rate
from tbnn.core.codes.sigma_delta import SigmaDelta
from tbnn.core.codes.thermometer import Thermometer

__all__ = ["CODES", "SCHEMES", "Code", "get_code"]

#: every registered code by name
CODES: dict[str, Code] = {c.name: c for c in (Binary(), SigmaDelta(), Rate(), Thermometer(), Latency())}
#: the scheme names, in registration order
SCHEMES: tuple[str, ...] = tuple(CODES)


def get_code(scheme: str) -> Code:
    """The :class:`Code` registered as ``scheme``; ``ValueError`` naming the choices otherwise."""
    try:
        return CODES[scheme]
    except (KeyError, TypeError):
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}.") from None
