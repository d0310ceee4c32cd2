"""The exceptions opmerge raises for bad input.

Every check of user input (a parameter of a public function, a command-line option, a file the
user names) raises :class:`InputError`. It subclasses :class:`ValueError`, so library callers may
catch either; the command line catches :class:`InputError` (and :class:`InputTypeError`) and turns
it into one line on stderr with exit status 2, while any other exception is a bug and keeps its
traceback. The message names the parameter and the range it must lie in.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError"]


class InputError(ValueError):
    """A value given by the user is out of range, malformed or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong, naming the parameter (``"lam must be finite and > 0, got -1"``).
    """


class InputTypeError(InputError, TypeError):
    """A value given by the user has the wrong type (``lam=True``, ``weights="ab"``).

    It is both an :class:`InputError` (so the command line reports it as a usage error) and a
    :class:`TypeError` (so library callers that expect Python's convention catch it).
    """
