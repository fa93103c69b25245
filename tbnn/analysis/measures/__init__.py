"""Every firing measure as one registered record (:class:`Measure`), one file per family.

The files register their measures on import, in this order: :mod:`.rates`,
:mod:`.irregularity`, :mod:`.variability`, :mod:`.correlation`, :mod:`.sparseness`; the
registration order is the order of ``analysis.json``, the report and the figures. A new
family is one file here plus one import below; a single measure, one
:func:`register_measure` call (also at run time, from your own code).

>>> list(MEASURES)[:4]
['rate_hz', 'rate_per_step', 'fraction_silent', 'fraction_active']
>>> measure_keys(panel=True)[:3]
('rate_hz', 'fraction_active', 'cv')
"""

# the families register their measures on import, in this order (the order of the report)
from tbnn.analysis.measures import rates  # noqa: F401  isort: skip
from tbnn.analysis.measures import irregularity  # noqa: F401  isort: skip
from tbnn.analysis.measures import variability  # noqa: F401  isort: skip
from tbnn.analysis.measures import correlation  # noqa: F401  isort: skip
from tbnn.analysis.measures import sparseness  # noqa: F401  isort: skip
from tbnn.analysis.measures.context import LayerContext, RecordingContext
from tbnn.analysis.measures.registry import (
    BANDS,
    MEASURES,
    Measure,
    Reference,
    RegistryView,
    get_measure,
    measure_keys,
    register_measure,
    unregister_measure,
)

__all__ = ["BANDS", "MEASURES", "LayerContext", "Measure", "RecordingContext", "Reference", "RegistryView", "get_measure",
           "measure_keys", "register_measure", "unregister_measure"]
