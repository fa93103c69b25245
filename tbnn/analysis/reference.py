"""Biological reference ranges for firing statistics, as data.

The bands are part of the measures' records (:mod:`tbnn.analysis.measures`);
:data:`REFERENCES` is their live view by key. Each :class:`Reference` holds the measure it
applies to, a range ``[low, high]`` in
``units``, the summary statistic of the network's values that is compared with it
(``statistic``: "median" or "mean" across neurons, pairs or steps), the citation
(journal, volume and first page) and a note saying how the range was read from the
sources. The ranges are order-of-magnitude bands for cortex in vivo, not sharp limits: a
verdict of "inside" means "within the range reported for cortex", nothing stronger.

Rates in Hz, and hence the rate verdicts, depend on the declared time step ``dt_ms``; the
dimensionless measures (CV, LV, Fano, correlations, sparseness) do not, except LvR through
its refractoriness constant R = 5 ms.
"""

from __future__ import annotations

import math

from tbnn.analysis.measures import BANDS
from tbnn.analysis.measures.registry import Reference

__all__ = ["QUALITATIVE", "REFERENCES", "Reference", "verdict"]


#: Numeric ranges by measure key: the bands of the registered measures (a live view).
REFERENCES = BANDS

QUALITATIVE: dict[str, tuple[str, str]] = {
    "rate_distribution": (
        "heavy-tailed, roughly log-normal across neurons",
        "Buzsáki & Mizuseki 2014, Nat Rev Neurosci 15:264",
    ),
    "population_sparseness": (
        "sparse: a few percent of neurons respond to a stimulus",
        "Vinje & Gallant 2000, Science 287:1273; Lennie 2003, Curr Biol 13:493",
    ),
}
"""Statements without a numeric range: measure -> (statement, citation)."""


def verdict(value: float, ref: Reference | str) -> str:
    """Place ``value`` against a biological range: "inside", "below" or "above".

    Bounds are inclusive. ``ref`` is a :class:`Reference` or a key of :data:`REFERENCES`.
    A NaN value (undefined measure) gives "undefined" rather than a false verdict.

    >>> verdict(1.1, 'cv'), verdict(0.2, 'cv'), verdict(float('nan'), 'cv')
    ('inside', 'below', 'undefined')
    """
    if isinstance(ref, str):
        if ref not in REFERENCES:
            raise ValueError(f"ref must be a Reference or one of {', '.join(REFERENCES)}, "
                             f"got {ref!r}.")
        ref = REFERENCES[ref]
    if not isinstance(ref, Reference):
        raise ValueError(f"ref must be a Reference or a measure name, got {type(ref).__name__}.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"value must be a number, got {value!r}.") from None
    if math.isnan(v):
        return "undefined"
    if v < ref.low:
        return "below"
    if v > ref.high:
        return "above"
    return "inside"
