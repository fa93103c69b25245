"""``python -m tbnn`` (and ``torchrun -m tbnn``): the ``tbnn`` command line (:mod:`tbnn.cli`)."""

import sys

from tbnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
