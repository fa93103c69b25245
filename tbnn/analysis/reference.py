"""Biological reference ranges for firing statistics, as data.

Each :class:`Reference` holds the measure it applies to, a range ``[low, high]`` in
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
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["QUALITATIVE", "REFERENCES", "Reference", "reference_for", "verdict"]


@dataclass(frozen=True)
class Reference:
    """A biological range for one measure.

    ``measure`` is the key used in ``analysis.json``; ``low``/``high`` bound the range
    (inclusive) in ``units``; ``statistic`` is the summary of the network's values that is
    compared; ``citation`` gives authors, year, journal, volume:page.
    """

    measure: str
    low: float
    high: float
    units: str
    statistic: str
    citation: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON."""
        return asdict(self)


_REFS = [
    Reference(
        "rate_hz", 0.1, 5.0, "Hz", "median",
        "Buzsáki & Mizuseki 2014, Nat Rev Neurosci 15:264; Hromádka et al. 2008, PLoS Biol 6:e16",
        "Rates across cortical neurons are heavy-tailed, roughly log-normal; most neurons "
        "fire below a few Hz and a small minority fire fast, so the median rate is compared "
        "with a band of 0.1-5 Hz.",
    ),
    Reference(
        "cv", 0.7, 1.3, "", "median",
        "Softky & Koch 1993, J Neurosci 13:334",
        "ISIs of cortical neurons are highly irregular, CV near 1 (Poisson-like).",
    ),
    Reference(
        "cv2", 0.7, 1.3, "", "median",
        "Softky & Koch 1993, J Neurosci 13:334; Holt et al. 1996, J Neurophysiol 75:1806",
        "Local irregularity of cortical ISIs is near the Poisson value 1.",
    ),
    Reference(
        "lv", 0.3, 1.5, "", "median",
        "Shinomoto et al. 2009, PLoS Comput Biol 5:e1000433",
        "LV/LvR classify firing as regular (motor areas, below ~0.5), random (visual, ~1) or "
        "bursty (prefrontal, above 1); the band spans the areas.",
    ),
    Reference(
        "lvr", 0.3, 1.5, "", "median",
        "Shinomoto et al. 2009, PLoS Comput Biol 5:e1000433",
        "LvR (R = 5 ms) classifies firing as regular (motor), random (visual) or bursty "
        "(prefrontal); the band spans the areas.",
    ),
    Reference(
        "fano_trial", 1.0, 1.5, "", "mean",
        "Churchland et al. 2010, Nat Neurosci 13:369",
        "Trial-to-trial Fano factor of spike counts is ~1-1.5 in vivo and falls at stimulus "
        "onset.",
    ),
    Reference(
        "fano_stream", 1.0, 1.5, "", "mean",
        "Churchland et al. 2010, Nat Neurosci 13:369",
        "The in-vivo range ~1-1.5 (measured across trials) shown for the stream view too.",
    ),
    Reference(
        "noise_correlation", 0.0, 0.3, "", "mean",
        "Cohen & Kohn 2011, Nat Neurosci 14:811; Ecker et al. 2010, Science 327:584",
        "Mean spike-count noise correlations are ~0.01-0.3 across studies, near zero in "
        "awake V1.",
    ),
    Reference(
        "fraction_active", 0.005, 0.05, "", "mean",
        "Attwell & Laughlin 2001, J Cereb Blood Flow Metab 21:1133; Lennie 2003, Curr Biol "
        "13:493",
        "The energy budget allows only a few percent of cortical neurons to be active at once.",
    ),
    Reference(
        "lifetime_sparseness", 0.4, 0.7, "", "median",
        "Vinje & Gallant 2000, Science 287:1273",
        "Vinje-Gallant lifetime sparseness of V1 neurons under natural stimulation is about "
        "0.4-0.7 (higher with the non-classical receptive field stimulated).",
    ),
]

REFERENCES: dict[str, Reference] = {r.measure: r for r in _REFS}
"""Numeric ranges by measure key."""

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


def reference_for(measure: str) -> Reference | None:
    """The numeric reference for ``measure``, or None if there is none.

    >>> reference_for('cv').low, reference_for('cv').high
    (0.7, 1.3)
    """
    return REFERENCES.get(measure)


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
