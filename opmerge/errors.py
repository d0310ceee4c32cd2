"""The exceptions opmerge raises for bad input.

Every check of user input (a parameter of a public function, a command-line option, a file the
user names) raises :class:`InputError`. It subclasses :class:`ValueError`, so library callers may
catch either; the command line catches :class:`InputError` (and :class:`InputTypeError`) and turns
it into one line on stderr with exit status 2, while any other exception is a bug and keeps its
traceback. The message names the parameter and the range it must lie in.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError", "IndistinguishablePlansWarning"]


class InputError(ValueError):
    """A value given by the user is out of range, malformed or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong, naming the parameter (``"lam must be finite and > 0, got -1"``).

    Notes
    -----
    Instances pickle without calling ``__init__`` again (its ``args`` and attributes are restored
    as they are), so every subclass, one with its own ``__init__`` signature included, crosses a
    process boundary unchanged: an error raised in a worker process reaches the parent as the
    same type with the same message.
    """

    def __reduce__(self):
        return _rebuild_error, (type(self), self.args, dict(self.__dict__))


class InputTypeError(InputError, TypeError):
    """A value given by the user has the wrong type (``lam=True``, ``weights="ab"``).

    It is both an :class:`InputError` (so the command line reports it as a usage error) and a
    :class:`TypeError` (so library callers that expect Python's convention catch it).
    """


def _rebuild_error(cls: type, args: tuple, state: dict) -> InputError:
    """Unpickle an :class:`InputError` (any subclass) without calling its ``__init__``."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class IndistinguishablePlansWarning(UserWarning):
    r"""Every plan the solver compared has the same :math:`W_2` within its tolerance.

    Raised (as a warning) by :func:`opmerge.solvers.solve` when the canonical plans and the
    optimum cannot be told apart: the training budget drives every node to its target (for
    instance ``edm`` with raw inputs, where :math:`q_j` reaches :math:`\sigma_{\max}^2`), so a
    ranking of plans means nothing. The command line prints it as one ``opmerge: warning:`` line.
    """
