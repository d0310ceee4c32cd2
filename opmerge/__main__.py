"""``python -m opmerge ...`` runs the ``opmerge`` command line (:func:`opmerge.cli.main`)."""

import sys

from ._entry import main

if __name__ == "__main__":
    sys.exit(main())
