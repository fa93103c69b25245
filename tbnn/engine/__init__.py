"""Layer 1, the exact integer engine: how a layer turns spikes into current.

:mod:`~tbnn.engine.integer` (integer codes, the matmul shortcut, arithmetic types), its
:mod:`~tbnn.engine.weights` (a layer's weight as integer codes) and
:mod:`~tbnn.engine.session` (the recorder the simulator installs while a network runs).
Imports only :mod:`tbnn.core`. The names of :mod:`~tbnn.engine.integer` are re-exported here.
"""

from tbnn.engine.integer import *  # noqa: F401,F403
from tbnn.engine.integer import __all__  # noqa: F401
