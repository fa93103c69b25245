"""Layer 3, spiking inference: :mod:`~tbnn.sim.simulator` runs a trained network as binary
events (``simulate``, ``simulate_run``, ``SimulationResult``). Its names are re-exported here."""

from tbnn.sim.simulator import *  # noqa: F401,F403
from tbnn.sim.simulator import __all__  # noqa: F401
