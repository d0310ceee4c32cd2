"""Module-level unit functions for the executor tests (importable by worker processes and Ray workers)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def add(shared, task):
    """``shared + task``."""
    return shared + task


def square_after(shared, task):
    """``task[1] ** 2`` after sleeping ``task[0]`` seconds (units that finish out of order)."""
    time.sleep(task[0])
    return task[1] ** 2


def fail_some(shared, task):
    """Sleep ``task[0]``, then raise ``ValueError('unit <k>')`` when ``task[2]`` is true, else return ``task[1]``."""
    seconds, k, fail = task
    time.sleep(seconds)
    if fail:
        raise ValueError(f"unit {k}")
    return k


def die_once(shared, task):
    """Unit ``task = (k, dies)``: if ``dies``, kill this worker (SIGKILL) the first time it runs under the folder ``shared``; return ``k``.

    The first attempt claims ``<shared>/<k>.died`` atomically, so exactly one attempt dies.
    """
    task, dies = task
    if not dies:
        return task
    marker = Path(shared) / f"{task}.died"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return task
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # pragma: no cover - never reached


def die_always(shared, task):
    """Kill this worker every time."""
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # pragma: no cover


def logged_slow_unit(shared, task):
    """A unit of the worker-kill test: log its start (pid) and its end under ``shared``, sleep between.

    ``<shared>/started/<task>.<pid>`` appears when an attempt starts; ``<shared>/finished.log`` gets
    one line per finished attempt.
    """
    folder = Path(shared)
    (folder / "started").mkdir(exist_ok=True)
    (folder / "started" / f"{task}.{os.getpid()}").touch()
    time.sleep(0.4)
    with open(folder / "finished.log", "a") as log:
        log.write(f"{task}\n")
    return {"unit": task, "value": task * task}
