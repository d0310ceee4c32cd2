"""The ``opmerge`` console script and ``python -m opmerge``: import the command line, then run it.

A Ctrl-C while the command line is still being imported (numpy, scipy, the Numba kernels: about
half a second) ends with exit status 130 and the one line ``opmerge: interrupted``, as a Ctrl-C
at any later point does (:func:`opmerge.cli_options.run_main`), never with a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

#: exit status after a Ctrl-C (128 + SIGINT), as in :mod:`opmerge.cli_options`
_EXIT_INTERRUPTED = 130


def main() -> int:
    """Import :mod:`opmerge.cli` and run :func:`opmerge.cli.main` on ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status of the command; 130 when interrupted during the import.
    """
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("opmerge: interrupted\n")
        sys.stderr.flush()
        return _EXIT_INTERRUPTED
    return cli_main()
