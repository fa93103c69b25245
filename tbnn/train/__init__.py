"""Layer 3, training: :mod:`~tbnn.train.trainer` (``fit`` for any model, ``train`` for a run
folder, ``evaluate``). Its names are re-exported here."""

from tbnn.train.trainer import *  # noqa: F401,F403
from tbnn.train.trainer import __all__  # noqa: F401
from tbnn.core.deprecation import deprecated_attributes
from tbnn.io.checkpoint import RUN_FORMAT_VERSION

#: Deprecated names, served with a DeprecationWarning naming the new one.
__getattr__ = deprecated_attributes(__name__, {"FORMAT_VERSION": ("tbnn.io.checkpoint.RUN_FORMAT_VERSION",
                                                                  lambda: RUN_FORMAT_VERSION)})
