"""The ``opmerge`` console script and ``python -m opmerge``: import the command line, then run it.

A Ctrl-C while the command line is still being imported (numpy, scipy, the Numba kernels: about
half a second) ends with exit status 130 and the one line ``opmerge: interrupted``, as a Ctrl-C
at any later point does (:func:`opmerge.cli_options.run_main`), never with a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

from ._signals import EXIT_INTERRUPTED, EXIT_TERMINATED

__all__ = ["main"]


def main() -> int:
    """Import :mod:`opmerge.cli` and run :func:`opmerge.cli.main` on ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status of the command. After a Ctrl-C (130) or SIGTERM (143) the process
        exits at once (``os._exit``, streams flushed) instead of returning; otherwise SIGINT is
        ignored while the interpreter shuts down.
    """
    # bit-for-bit CPU results of the torch bridge (see opmerge.experiments._torch): MKL reads this
    # when first used, so it is set before anything is imported; a value the user set is kept
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        sys.stderr.write("opmerge: interrupted\n")
    else:
        code = cli_main()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        # stopped by a signal, cleanly: finished work is on disk, workers are stopped, the one line
        # is printed. Exit at once: a KeyboardInterrupt that once passed through C code that ran
        # Python code (PyRun_*) leaves CPython's "unhandled Ctrl-C" flag set even though it was
        # caught, and the normal shutdown would then kill the process with SIGINT (status -2)
        # instead of returning 130; a second Ctrl-C during that shutdown would print a traceback
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    # the command has finished: a Ctrl-C from now on (while the interpreter shuts down) must not
    # turn its exit status into death by SIGINT or print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code
