"""Layer 3, spiking inference: :mod:`~tbnn.sim.simulator` runs a trained network as binary
events (``simulate``, ``simulate_run``, ``SimulationResult``). Its names are re-exported here."""

from tbnn.sim.simulator import *  # noqa: F401,F403
from tbnn.sim.simulator import __all__  # noqa: F401
from tbnn.core.deprecation import deprecated_attributes
from tbnn.sim.simulator import SIM_SCHEDULES, SIMULATION_FORMAT_VERSION

#: Deprecated names, served with a DeprecationWarning naming the new one.
__getattr__ = deprecated_attributes(__name__, {
    "FORMAT_VERSION": ("tbnn.sim.SIMULATION_FORMAT_VERSION", lambda: SIMULATION_FORMAT_VERSION),
    "SIM_MODES": ("tbnn.sim.SIM_SCHEDULES", lambda: SIM_SCHEDULES)})
