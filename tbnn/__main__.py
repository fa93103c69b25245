"""``python -m tbnn``: the ``tbnn`` command line (:mod:`tbnn.cli`)."""

import sys

from .cli import main

sys.exit(main())
