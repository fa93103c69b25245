"""The registry of firing measures: one :class:`Measure` record per measure.

A record holds everything the package says about a measure: its label, units and
definition (with the source), the summary statistic compared (median or mean across
neurons, pairs or steps), whether it is drawn on a logarithmic axis, its biological band
(:class:`Reference`, range and citation), and three functions: the
values on a network layer, the analytic Bernoulli null, and the values on a recording
with their Poisson null. The catalogue (:mod:`tbnn.analysis.catalogue`), the report, the
figures and the recording comparison all read the records from here, in registration
order.

Adding a measure: write its record in a file of :mod:`tbnn.analysis.measures` (one file
per family) and call :func:`register_measure` there (or from your own code at run time).

>>> m = get_measure("cv")
>>> m.label, m.statistic, m.band.low
('CV of ISIs', 'median', 0.7)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tbnn.core.registry import MappingView, add_entry, find_entry

__all__ = ["BANDS", "MEASURES", "Measure", "Reference", "RegistryView", "get_measure", "measure_keys", "register_measure",
           "unregister_measure"]

STATISTICS = ("median", "mean")


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


@dataclass(frozen=True)
class Measure:
    """One firing measure.

    Attributes
    ----------
    key : the name in ``analysis.json`` (``rate_hz``, ``cv``, ...).
    label, units, definition : what the report and the figures print.
    statistic : ``"median"`` or ``"mean"``: the summary of the per-neuron (pair, step)
        values that is compared with the null, the band and a recording.
    network : ``f(ctx) -> values`` on a :class:`~tbnn.analysis.measures.context.LayerContext`
        (array-like, or ``None`` when the layer cannot define it, e.g. one sample only).
        The shuffled null is the same function on ``ctx.shuffled``.
    null : ``f(ctx) -> values`` of the analytic Bernoulli null, or ``None`` (shuffled only).
    null_note : how the null was formed (printed in the report).
    mask_analytic : summarise the analytic null over the neurons where the network's value is
        defined (per-neuron nulls), or as given (scalar nulls).
    recording : ``f(rctx) -> (values, null_value, note)`` on a
        :class:`~tbnn.analysis.measures.context.RecordingContext` (Elephant definitions,
        Poisson null), ``None`` when the recording cannot define it, or no function when
        the measure has no recording counterpart.
    band : the biological range with its citation, or ``None``.
    log_axis : drawn on a logarithmic axis (values span decades across neurons).
    panel : drawn as a panel of the comparison figures.
    """

    key: str
    label: str
    units: str
    definition: str
    statistic: str
    network: Callable[[Any], Any]
    null: Callable[[Any], Any] | None = None
    null_note: str = ""
    mask_analytic: bool = True
    recording: Callable[[Any], Any] | None = None
    band: Reference | None = None
    log_axis: bool = False
    panel: bool = False


_REGISTRY: dict[str, Measure] = {}


def register_measure(measure: Measure, *, replace: bool = False) -> Measure:
    """Add ``measure`` to the registry (after the ones already there) and return it.

    Raises
    ------
    ValueError
        ``measure`` is not a :class:`Measure`, its key is taken (without ``replace``), its
        statistic is not median or mean, or its band states another statistic or key.
    """
    if not isinstance(measure, Measure):
        raise ValueError(f"measure must be a tbnn.analysis.measures.Measure; got {type(measure).__name__}.")
    if not isinstance(measure.key, str) or not measure.key.isidentifier():
        raise ValueError(f"measure.key must be an identifier (letters, digits, _); got {measure.key!r}.")
    if measure.statistic not in STATISTICS:
        raise ValueError(f"measure.statistic must be one of {', '.join(STATISTICS)}; got {measure.statistic!r}.")
    band = measure.band
    if band is not None and (band.statistic != measure.statistic or band.measure != measure.key):
        raise ValueError(f"measure.band must be the band of {measure.key!r} compared by its {measure.statistic}; "
                         f"got the band of {band.measure!r} by its {band.statistic}.")
    return add_entry(_REGISTRY, measure.key, measure, "measure.key", replace=replace)


def unregister_measure(key: str) -> Measure:
    """Remove the measure ``key`` from the registry and return its record."""
    if key not in _REGISTRY:
        raise ValueError(f"key must be a registered measure ({', '.join(_REGISTRY)}); got {key!r}.")
    return _REGISTRY.pop(key)


def get_measure(key: str) -> Measure:
    """The record of ``key``; ``ValueError`` naming the registered measures otherwise."""
    return find_entry(_REGISTRY, key,
                      lambda: f"key must be a registered measure ({', '.join(_REGISTRY)}); got {key!r}.")


def measure_keys(*, panel: bool | None = None) -> tuple[str, ...]:
    """The registered keys in registration order (only the panels with ``panel=True``)."""
    return tuple(k for k, m in _REGISTRY.items() if panel is None or m.panel == panel)


def RegistryView(project: Callable[[Measure], Any]) -> Mapping[str, Any]:
    """A live read-only view ``key -> project(record)`` of the measures, leaving out the
    records where ``project`` gives None (e.g. the measures without a band)."""
    return MappingView(_REGISTRY, project)


#: every registered measure by key, in registration order (a live read-only view)
MEASURES: Mapping[str, Measure] = RegistryView(lambda m: m)

#: the biological band of every measure that has one, by key (a live read-only view)
BANDS: Mapping[str, Reference] = RegistryView(lambda m: m.band)
