r"""Signals of long runs: SIGTERM as an exception, signals deferred to step boundaries, workers that die with their parent.

Four helpers shared by the sweeps (:mod:`opmerge.analysis.runner`) and the training loops
(:mod:`opmerge.experiments.images.teacher_training`); ``docs/reliability.md`` describes the
behaviour they give the command lines.

* :func:`sigint_raises` — while active, Ctrl-C raises ``KeyboardInterrupt`` as usual, except
  inside the Python call-backs of Numba's and llvmlite's C code (a kernel boxing its result, LLVM
  compiling a kernel), where the exception would be lost or corrupt the caller: there it is
  raised 5 ms later, back in ordinary Python code.
* :func:`sigterm_raises` — while active, SIGTERM raises :class:`Terminated` in the main thread, so
  ``finally`` blocks and context managers run (the pool is shut down, finished work is kept) and
  the process exits with status :data:`EXIT_TERMINATED` :math:`= 128 + 15 = 143`, as a shell
  reports a process killed by SIGTERM.
* :class:`deferred_signals` — while active, SIGINT and SIGTERM are only recorded; the loop calls
  :meth:`deferred_signals.raise_pending` between whole steps (after writing its checkpoint), so a
  checkpoint never holds a half-finished step. A second signal of the same kind raises at once.
* :func:`die_with_parent` — the initializer of worker processes: Ctrl-C is left to the parent
  (SIGINT ignored), SIGTERM has its default action, and the worker is killed when its parent dies
  (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, plus a watchdog thread that polls
  :func:`os.getppid` on every platform), so a killed parent never leaves orphans behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "WATCHDOG_INTERVAL",
    "RETRY_SECONDS",
    "deferred_inside_numba",
    "Terminated",
    "sigint_raises",
    "sigterm_raises",
    "deferred_signals",
    "die_with_parent",
]

#: exit status after SIGINT (Ctrl-C): 128 + 2
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)
#: exit status after SIGTERM: 128 + 15
EXIT_TERMINATED = 128 + int(signal.SIGTERM)
#: seconds between two checks of the worker watchdog (a worker outlives its parent by at most this)
WATCHDOG_INTERVAL = 0.5

#: Linux ``prctl`` option: signal sent to this process when its parent thread exits
_PR_SET_PDEATHSIG = 1


class Terminated(SystemExit):
    """SIGTERM received: a :class:`SystemExit` with code :data:`EXIT_TERMINATED` (143).

    Being a :class:`SystemExit`, it passes through ``except Exception`` blocks, runs every
    ``finally`` and makes the interpreter (or the command line's ``run_main``) exit with 143.

    Parameters
    ----------
    code : int
        The exit status (default 143).
    """

    def __init__(self, code: int = EXIT_TERMINATED) -> None:
        super().__init__(code)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


#: modules whose Python code runs as a call-back from C code that does not expect an exception:
#: Numba's compiled code boxing its results (``numba.core.serialize._numba_unpickle``) and
#: llvmlite's ctypes call-backs while Numba compiles a kernel (``_raw_object_cache_notify``: a
#: ``KeyboardInterrupt`` there is printed as "Exception ignored ..." with a traceback and lost, and
#: the compilation then fails with ``RuntimeError: no compiled object yet``)
_UNSAFE_CALLBACK_MODULES = ("numba.core.serialize", "llvmlite.")
#: delay before a signal that arrived inside Numba's call-back is sent again (seconds)
RETRY_SECONDS = 0.005
_retry_timers: dict[int, threading.Timer] = {}


def _inside_numba(frame: FrameType | None) -> bool:
    """Whether the running Python frames include a call-back from Numba's or llvmlite's C code.

    A Numba kernel that returns new arrays calls back into Python
    (``numba.core.serialize._numba_unpickle``) while it converts them; Python runs its signal
    handlers at such calls, and an exception raised there is one Numba's C code does not expect
    (``SystemError: ... returned a result with an exception set``, or a segmentation fault when
    the half-made result is used). While a kernel is compiled (first use without a cache), LLVM
    calls llvmlite's Python call-backs through ctypes; an exception raised there is swallowed
    ("Exception ignored on calling ctypes callback function" and a traceback) and the compilation
    ends in ``RuntimeError``.
    """
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_UNSAFE_CALLBACK_MODULES):
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int) -> None:
    _retry_timers.pop(signum, None)
    os.kill(os.getpid(), signum)


def deferred_inside_numba(signum: int, frame: FrameType | None) -> bool:
    """For a signal handler that raises: ``True`` (and the signal sent again 5 ms later) when
    ``frame`` is inside a call-back of Numba or llvmlite, where no exception may be raised.

    The signal is re-sent from a helper thread (raising it from the handler itself would run the
    handler again at once), so it is handled once control is back in Python code.

    Parameters
    ----------
    signum : int
    frame : frame or None
        The handler's arguments.

    Returns
    -------
    bool
        Whether the handler must return without raising.
    """
    if not _inside_numba(frame):
        return False
    if signum not in _retry_timers:
        timer = threading.Timer(RETRY_SECONDS, _send_again, args=(signum,))
        timer.daemon = True
        _retry_timers[signum] = timer
        timer.start()
    return True


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    if deferred_inside_numba(signum, frame):
        return
    raise Terminated()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if deferred_inside_numba(signum, frame):
        return
    signal.default_int_handler(signum, frame)


@contextmanager
def sigint_raises() -> Iterator[None]:
    """While active, SIGINT raises ``KeyboardInterrupt`` in the main thread, never inside a call-back.

    Python's own Ctrl-C handler raises wherever the main thread happens to be, including the
    Python call-backs of Numba's and llvmlite's C code (see :func:`deferred_inside_numba`), where
    the exception is lost or corrupts the caller. This handler raises the same exception, except
    there: then the signal is sent again 5 ms later, once control is back in ordinary Python code.
    Installed only in the main thread and only over Python's default handler (a handler the
    program set itself is left alone); restored on exit; nesting is harmless.

    Yields
    ------
    None
    """
    installed = False
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupt)
        installed = True
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` in the main thread.

    Installed only in the main thread and only over the default action (a handler the program set
    itself, or ``SIG_IGN``, is left alone); the previous handler is restored on exit. Nesting is
    harmless.

    Yields
    ------
    None
    """
    installed = False
    previous = None
    if _in_main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_terminated)
            installed = True
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


class deferred_signals:
    """Context manager: SIGINT and SIGTERM are recorded, not acted on, until :meth:`raise_pending`.

    A loop that must never be stopped inside a step (a checkpoint would catch it half-done) runs
    its steps inside ``with deferred_signals() as signals:`` and, after each whole step,
    ``if signals.pending: save(); signals.raise_pending()``. :meth:`raise_pending` raises
    :class:`KeyboardInterrupt` for SIGINT (exit status 130) and :class:`Terminated` for SIGTERM
    (143). A second signal of a kind already pending raises at once (press Ctrl-C twice to stop
    without waiting for the step to end). A signal still pending when the block ends is raised then.

    Only the main thread can handle signals: elsewhere, and for a signal whose handler is neither
    the default nor Python's Ctrl-C handler, nothing is deferred.
    """

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}
        self._received: list[int] = []

    @property
    def pending(self) -> int | None:
        """The first signal received and not yet raised (``None``: none)."""
        return self._received[0] if self._received else None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum in self._received:
            if deferred_inside_numba(signum, frame):
                return
            self._restore()
            self._received.clear()
            raise _exception_for(signum)
        self._received.append(signum)

    def __enter__(self) -> "deferred_signals":
        if _in_main_thread():
            for signum, ours in ((signal.SIGINT, (signal.default_int_handler, _raise_interrupt)),
                                 (signal.SIGTERM, (signal.SIG_DFL, _raise_terminated))):
                previous = signal.getsignal(signum)
                if previous in ours:
                    self._previous[signum] = previous
                    signal.signal(signum, self._handler)
        return self

    def raise_pending(self) -> None:
        """Raise the exception of the first pending signal (nothing when none is pending)."""
        if self._received:
            signum = self._received[0]
            self._received.clear()
            raise _exception_for(signum)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous = {}

    def __exit__(self, exc_type, exc, tb) -> None:
        self._restore()
        if exc_type is None:
            self.raise_pending()


def _set_parent_death_signal() -> bool:
    """Linux: ask the kernel to send SIGKILL to this process when its parent dies. ``True`` on success."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc or no prctl: the watchdog still works
        return False


def _watchdog(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int, interval: float = WATCHDOG_INTERVAL) -> None:
    """Initializer of a worker process: let the parent handle signals, and die with it.

    * SIGINT is ignored (Ctrl-C reaches the whole process group; the parent stops the workers);
    * SIGTERM gets its default action back (a forked worker inherits the parent's handler);
    * Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker when the parent
      dies, even by SIGKILL;
    * everywhere: a daemon thread checks every ``interval`` seconds that :func:`os.getppid` is
      still ``parent_pid`` and kills the worker otherwise (also covers a parent that died before
      this initializer ran).

    Parameters
    ----------
    parent_pid : int
        ``os.getpid()`` of the parent, taken before the pool starts.
    interval : float
        Seconds between two checks of the watchdog.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watchdog, args=(parent_pid, interval), name="opmerge-parent-watchdog", daemon=True).start()
