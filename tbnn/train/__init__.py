"""Layer 3, training: :mod:`~tbnn.train.trainer` (``fit`` for any model, ``train`` for a run
folder, ``evaluate``). Its names are re-exported here."""

from tbnn.train.trainer import *  # noqa: F401,F403
from tbnn.train.trainer import __all__  # noqa: F401
