"""One-line errors and exit statuses of the ``opmerge`` command lines (private; public names in :mod:`opmerge.cli_options`).

:class:`ArgumentParser` prints argparse's errors as one line; :func:`run_main` runs a command and
turns user mistakes (every :class:`~opmerge.errors.InputError`, a missing file) and Ctrl-C into one
stderr line and an exit status, while any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Callable, Sequence

from ._signals import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, sigint_raises, sigterm_raises
from ._validate import echo
from .errors import InputError

__all__ = ["PROG", "EXIT_OK", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "MAX_ERROR_LENGTH", "DEFAULT_MEMORY_HINT", "UsageError", "ArgumentParser",
           "run_main", "is_out_of_memory", "unrecognized_message"]

PROG = "opmerge"
EXIT_OK = 0
#: bad command-line input: an option value, a plan text, a missing file
EXIT_USAGE = 2
# EXIT_INTERRUPTED (Ctrl-C, 128 + SIGINT = 130) and EXIT_TERMINATED (SIGTERM, 128 + 15 = 143), the
# shell's convention, come from opmerge._signals


class UsageError(InputError):
    """Bad command-line input (an :class:`~opmerge.errors.InputError` that names an option).

    :func:`run_main` prints ``opmerge: error: <message>`` and exits with status 2, as for every
    :class:`~opmerge.errors.InputError`.
    """


# ---------------------------------------------------------------------------------------------
# parser with one-line errors
# ---------------------------------------------------------------------------------------------


#: attribute of the parsed namespace naming the innermost parser that parsed it (removed before returning)
_PARSER_ATTR = "_opmerge_parser"


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` whose errors are ONE line on stderr, then exit status 2.

    argparse prints the usage block and then the error; here the message is
    ``opmerge: error: <message> (see '<prog> --help')``. Subparsers made with
    ``add_subparsers`` inherit this class. Beyond argparse:

    * a value that starts with ``-`` is taken as the value of an option that takes one argument
      (``--lam -inf`` is read as ``--lam=-inf``, so that the check of the value answers, not
      "expected one argument"), unless it is one of the parser's own options;
    * an unknown option is reported by the subcommand that was given (``see 'opmerge plan --help'``),
      with the closest option name when there is one (:mod:`difflib`).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = f" (see '{self.prog} --help')"
        _print_error(f"{_one_line(message)}{hint}")
        self.exit(EXIT_USAGE)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = _join_dash_values(self, list(sys.argv[1:] if args is None else args))
        if namespace is None:
            namespace = argparse.Namespace()
        setattr(namespace, _PARSER_ATTR, self)  # a subparser, parsing after this one, overwrites it
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        owner = getattr(parsed, _PARSER_ATTR, self)
        if hasattr(parsed, _PARSER_ATTR):
            delattr(parsed, _PARSER_ATTR)
        if extras:
            owner = owner if isinstance(owner, argparse.ArgumentParser) else self
            owner.error(unrecognized_message(owner, extras))
        return parsed


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def _single_value_action(parser: argparse.ArgumentParser, token: str) -> argparse.Action | None:
    """The action of option ``token`` (exact or unique prefix) when it takes exactly one value, else ``None``."""
    if not token.startswith("--") or "=" in token:
        return None
    actions = parser._option_string_actions
    action = actions.get(token)
    if action is None and parser.allow_abbrev:
        found = {id(a): a for s, a in actions.items() if s.startswith(token)}
        action = next(iter(found.values())) if len(found) == 1 else None
    if action is None or action.nargs is not None:  # nargs None: exactly one value (store, append)
        return None
    return action


def _join_dash_values(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """``[..., "--opt", "-value", ...]`` -> ``[..., "--opt=-value", ...]`` where ``--opt`` takes one value.

    Only a value with a single leading dash (``-inf``, ``-1,2``, ``-1e3``) that is not an option of
    ``parser`` is joined; ``--`` ends the options and everything after it is left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        if i + 1 < len(args) and _single_value_action(parser, token) is not None:
            value = args[i + 1]
            if value.startswith("-") and len(value) > 1 and not value.startswith("--") and value not in parser._option_string_actions:
                out.append(f"{token}={value}")
                i += 2
                continue
        out.append(token)
        i += 1
    return out


def unrecognized_message(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """``unrecognized arguments: ...`` with the closest option name of ``parser`` (``did you mean --steps?``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The (sub)command's parser.
    extras : sequence of str
        The arguments it did not recognise.

    Returns
    -------
    str
    """
    message = f"unrecognized arguments: {echo(' '.join(extras))}"
    unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("--") and len(e) > 2), None)
    if unknown is not None:
        close = difflib.get_close_matches(unknown, _long_options(parser), n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]}?"
    return message


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


#: what :func:`run_main` tells the user to reduce after running out of memory, unless the command says
DEFAULT_MEMORY_HINT = "reduce the size of the job (batch sizes, numbers of samples or points, network width, steps) or free memory"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a failed allocation: :class:`MemoryError`, torch's ``OutOfMemoryError`` or its CPU allocator's error.

    torch is not imported: its ``OutOfMemoryError`` is recognised by class name, and a failed CPU
    allocation (a ``RuntimeError`` whose message says ``can't allocate memory``) by its message.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    if isinstance(exc, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "CUDA out of memory" in text)


def run_main(fn: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, memory_hint: str | None = None) -> int:
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
    ``KeyboardInterrupt`` (Ctrl-C), also as the cause or context of    130, ``opmerge: interrupted``
    another exception (Python wraps it, e.g. in ``__set_name__``)
    SIGTERM (raised as :class:`~opmerge._signals.Terminated`)          143, ``opmerge: terminated``
    ``BrokenPipeError`` (``opmerge ... | head``)                       0, nothing
    ``MemoryError``, torch's ``OutOfMemoryError`` (by class name),     2, ``opmerge: error: out of
    a ``RuntimeError`` saying ``can't allocate memory``                memory ...: <what to reduce>``
    anything else, a plain ``ValueError``/``TypeError`` included       raised, with its traceback
    (a bug)
    =================================================================  ===========================

    Which errors are the user's is decided by their type alone: the library raises
    :class:`~opmerge.errors.InputError` where it checks user input. Setting the environment
    variable ``OPMERGE_DEBUG=1`` re-raises every exception with its traceback. While ``fn`` runs,
    SIGTERM raises :class:`~opmerge._signals.Terminated` (:func:`~opmerge._signals.sigterm_raises`),
    so ``finally`` blocks run (workers are stopped, finished work is kept) as after a Ctrl-C, and
    neither signal is raised inside a call-back of Numba's or llvmlite's C code
    (:func:`~opmerge._signals.sigint_raises`: it waits until control is back in Python code).

    Parameters
    ----------
    fn : callable
        The command: takes the argument list, returns an exit status or ``None``.
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).
    memory_hint : str, optional
        What to reduce after running out of memory (default :data:`DEFAULT_MEMORY_HINT`), e.g.
        ``"reduce --batch or --n-eval"``.

    Returns
    -------
    int
        The exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("OPMERGE_DEBUG", "") not in ("", "0")
    try:
        with sigint_raises(), sigterm_raises():
            code = fn(args)
    except Terminated:
        if debug:
            raise
        _print_error_line("terminated")
        return EXIT_TERMINATED
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
    except Exception as exc:
        stop = None if debug else _signal_in_chain(exc)
        if stop is not None:
            # a Ctrl-C or SIGTERM that Python wrapped on its way up (an exception raised while a
            # class is created, e.g. during an import, becomes a RuntimeError): still the signal
            _print_error_line("terminated" if isinstance(stop, Terminated) else "interrupted")
            return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
        if debug or not is_out_of_memory(exc):
            raise
        reason = echo(_one_line(str(exc)) or type(exc).__name__, limit=160)
        _print_error(f"out of memory ({type(exc).__name__}: {reason}): {memory_hint or DEFAULT_MEMORY_HINT}")
        return EXIT_USAGE
    return _exit_code(code)


def _signal_in_chain(exc: BaseException) -> BaseException | None:
    """The ``KeyboardInterrupt`` or :class:`~opmerge._signals.Terminated` among the causes and
    contexts of ``exc`` (``None``: there is none)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc.__cause__, exc.__context__]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (KeyboardInterrupt, Terminated)):
            return item
        todo += [item.__cause__, item.__context__]
    return None


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
