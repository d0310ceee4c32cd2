"""One-line errors and exit statuses of the ``opmerge`` command lines (private; public names in :mod:`opmerge.cli_options`).

:class:`ArgumentParser` prints argparse's errors as one line; :func:`run_main` runs a command and
turns user mistakes (every :class:`~opmerge.errors.InputError`, a missing file) and Ctrl-C into one
stderr line and an exit status, while any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from ._validate import echo
from .errors import InputError

__all__ = ["PROG", "EXIT_OK", "EXIT_USAGE", "EXIT_INTERRUPTED", "MAX_ERROR_LENGTH", "UsageError", "ArgumentParser", "run_main"]

PROG = "opmerge"
EXIT_OK = 0
#: bad command-line input: an option value, a plan text, a missing file
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT), the shell's convention
EXIT_INTERRUPTED = 130


class UsageError(InputError):
    """Bad command-line input (an :class:`~opmerge.errors.InputError` that names an option).

    :func:`run_main` prints ``opmerge: error: <message>`` and exits with status 2, as for every
    :class:`~opmerge.errors.InputError`.
    """


# ---------------------------------------------------------------------------------------------
# parser with one-line errors
# ---------------------------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` whose errors are ONE line on stderr, then exit status 2.

    argparse prints the usage block and then the error; here the message is
    ``opmerge: error: <message> (see '<prog> --help')``. Subparsers made with
    ``add_subparsers`` inherit this class.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = f" (see '{self.prog} --help')"
        _print_error(f"{_one_line(message)}{hint}")
        self.exit(EXIT_USAGE)


def _one_line(text: str) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


#: longest error line printed; longer messages (an echoed 10,000-character value) are cut in the middle
MAX_ERROR_LENGTH = 600


def _shorten(message: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``message`` cut to ``limit`` characters, keeping its start and end around a `` ... ``."""
    if len(message) <= limit:
        return message
    keep = (limit - 5) // 2
    return f"{message[:keep]} ... {message[-keep:]}"


def _print_error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_shorten(message)}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# user errors versus bugs
# ---------------------------------------------------------------------------------------------


def _message_of(exc: BaseException) -> str:
    """One line for an :class:`~opmerge.errors.InputError`; a plan parse error shows a short excerpt, once."""
    problem = getattr(exc, "problem", None)  # opmerge.plans.PlanParseError
    text = getattr(exc, "text", None)
    position = getattr(exc, "position", None)
    if isinstance(problem, str) and isinstance(text, str) and isinstance(position, int):
        return f"{problem}, in {echo(text, position)!r}"
    return _one_line(str(exc)) or type(exc).__name__


def run_main(fn: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command ``fn(argv)`` and turn user mistakes into one stderr line and an exit status.

    =================================================================  ===========================
    what happened                                                      exit status, stderr
    =================================================================  ===========================
    ``fn`` returned ``None`` or an int                                 that int (``None`` -> 0)
    :class:`~opmerge.errors.InputError` (incl. :class:`UsageError`,    2, ``opmerge: error: <msg>``
    :class:`~opmerge.errors.InputTypeError`, a plan parse error)
    ``FileNotFoundError``, ``IsADirectoryError``,                      2, ``opmerge: error: <msg>: <file>``
    ``NotADirectoryError``, ``PermissionError``
    ``SystemExit`` (argparse: ``--help``, bad option)                  its code
    ``KeyboardInterrupt`` (Ctrl-C)                                     130, ``opmerge: interrupted``
    ``BrokenPipeError`` (``opmerge ... | head``)                       0, nothing
    anything else, a plain ``ValueError``/``TypeError`` included       raised, with its traceback
    (a bug)
    =================================================================  ===========================

    Which errors are the user's is decided by their type alone: the library raises
    :class:`~opmerge.errors.InputError` where it checks user input. Setting the environment
    variable ``OPMERGE_DEBUG=1`` re-raises every exception with its traceback.

    Parameters
    ----------
    fn : callable
        The command: takes the argument list, returns an exit status or ``None``.
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("OPMERGE_DEBUG", "") not in ("", "0")
    try:
        code = fn(args)
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except InputError as exc:
        if debug:
            raise
        _print_error(_message_of(exc))
        return EXIT_USAGE
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if debug:
            raise
        _print_error(_file_error_message(exc))
        return EXIT_USAGE
    return _exit_code(code)


def _print_error_line(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _file_error_message(exc: OSError) -> str:
    reason = exc.strerror or _one_line(str(exc)) or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename is not None else reason


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code
    # SystemExit("message"): Python prints the message and exits with 1
    _print_error(_one_line(str(code)))
    return 1


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
