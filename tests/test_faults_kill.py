"""Processes, signals and resumption: workers die with their parent, SIGINT / SIGTERM / SIGKILL then resume.

Fast in-process tests: exceptions cross process boundaries unchanged, deferred signals, SIGTERM as
an exception, a failing worker reports the first failing point, SIGTERM terminates the pool, the
sweep size limit, the watchdog and the Linux parent-death signal of workers.

Slow tests (subprocesses of the real command line): ``opmerge phase --workers 2``,
``opmerge validate exactness --quick`` and ``opmerge train-teacher`` are stopped by SIGINT, SIGTERM
or SIGKILL at a seeded random moment, resumed with the same command and compared with an
uninterrupted run (bit for bit, provenance and timings excluded). See docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from opmerge._signals import EXIT_TERMINATED, Terminated, deferred_signals, sigterm_raises
from opmerge.errors import InputError, InputTypeError

psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[1]
POSIX = os.name == "posix"
needs_posix = pytest.mark.skipif(not POSIX, reason="POSIX signals")


# =============================================================================================
# helpers
# =============================================================================================


def _alive(pids: list[int]) -> list[int]:
    """The pids that still run (zombies count as gone: they hold nothing and run no code)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


def _kill_all(pids: list[int]) -> None:
    for pid in _alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _env() -> dict:
    env = dict(os.environ)
    env.pop("OPMERGE_DEBUG", None)
    env["PYTHONHASHSEED"] = "0"
    return env


def _drain(stream, sink: list[str]) -> threading.Thread:
    """Read ``stream`` into ``sink`` as it comes (progress bars write no newline)."""
    def run():
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            sink.append(chunk.decode(errors="replace"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _source_digest() -> str:
    """Digest of the package sources: the caches are keyed by them, so an edit made while a test runs
    (several people working in one tree) rightly makes the resumed run recompute instead of reuse."""
    digest = hashlib.sha256()
    for folder in ("opmerge", "analysis", "experiments"):
        for path in sorted((REPO / folder).rglob("*.py")):
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def _normalise(obj, out: str):
    """``obj`` without provenance and timings, with the output folder replaced by ``<out>``."""
    if isinstance(obj, dict):
        return {k: _normalise(v, out) for k, v in obj.items() if k not in ("provenance", "elapsed_s", "unit_cache", "seconds")}
    if isinstance(obj, list):
        return [_normalise(v, out) for v in obj]
    if isinstance(obj, str):
        return obj.replace(out, "<out>")
    return obj


# =============================================================================================
# fast, in-process
# =============================================================================================


def test_input_errors_cross_process_boundaries_unchanged():
    from opmerge.cli_options import UsageError
    from opmerge.plans import PlanParseError

    for error in (InputError("lam must be > 0, got -1"), InputTypeError("lam must be a number, got bool"),
                  UsageError("--points must be <= 100000"), PlanParseError("unbalanced parenthesis", 3, "((1 2)")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.args == error.args
        assert back.__dict__ == error.__dict__
    assert isinstance(pickle.loads(pickle.dumps(InputTypeError("x"))), TypeError)


def _signal_during_a_step(signum: int) -> None:
    try:
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler has run by now
    except (KeyboardInterrupt, Terminated):
        pytest.fail("the signal interrupted the step instead of waiting for its end")


@needs_posix
def test_deferred_signals_wait_for_the_step_boundary():
    with deferred_signals() as signals:
        _signal_during_a_step(signal.SIGINT)
        assert signals.pending == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signals.raise_pending()
        assert signals.pending is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(Terminated) as info:
        with deferred_signals() as signals:
            _signal_during_a_step(signal.SIGTERM)
            assert signals.pending == signal.SIGTERM
            # nothing raised yet: the block ends normally and the pending signal is raised then
    assert info.value.code == EXIT_TERMINATED == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@needs_posix
def test_second_ctrl_c_stops_at_once():
    with deferred_signals() as signals:
        _signal_during_a_step(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        assert signals.pending is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@needs_posix
def test_sigterm_raises_terminated_and_restores_the_default():
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(Terminated) as info:
            with sigterm_raises():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1.0)
        assert info.value.code == 143
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the pool: a failing worker, SIGTERM --------------------------------------------------------

#: fake points: lam < 0 fails after sleeping -lam / 10 seconds; lam >= 1000 sleeps 30 s; others pass
def _fake_solve(spec) -> dict:
    lam = spec.lam[0]
    if lam < 0:
        time.sleep(-lam / 10)
        raise InputError(f"point lam = {lam:g} is bad")
    if lam >= 1000:
        time.sleep(30)
    return {"lam": [lam], "family": "vanilla"}


def _fake_specs(lams: list[float]):
    from opmerge import make_schedule
    from opmerge.analysis.points import PointSpec
    from opmerge.model import StudentModel

    schedule = make_schedule("vp-cosine", 4)
    return [PointSpec(schedule, (float(x),), None, StudentModel(), "ddim", "teacher", 1, 1000, 1.0) for x in lams]


@pytest.fixture
def fake_runner(monkeypatch):
    from opmerge.analysis import runner

    monkeypatch.setattr(runner, "solve_point", _fake_solve)
    monkeypatch.setattr(runner, "PARALLEL_MIN_SECONDS", 0.0)
    return runner


@needs_posix
def test_worker_error_is_the_first_failing_point_and_the_pool_stops(fake_runner):
    # 2 points in-process, then 16 in chunks of 2: chunk 0 (points 2, 3) fails slowly at lam = -10,
    # chunk 1 (points 4, 5) fails at once; a serial run raises lam = -10's error, so must the pool
    lams = [1.0, 2.0, -10.0, 3.0, -0.01, 4.0] + [5.0 + k for k in range(12)]
    with pytest.raises(InputError, match=r"^point lam = -10 is bad$") as info:
        with fake_runner.PointRunner(workers=2) as runner:
            runner.run(_fake_specs(lams))
    assert type(info.value) is InputError
    assert runner.executor is None
    assert _wait_gone([c.pid for c in psutil.Process().children(recursive=True)], 3.0) == []


@needs_posix
def test_sigterm_terminates_the_workers_at_once(fake_runner):
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.monotonic()
    try:
        timer.start()
        with pytest.raises(Terminated):
            with fake_runner.PointRunner(workers=2) as runner:
                runner.run(_fake_specs([1.0, 2.0, 1000.0, 1001.0, 1002.0, 1003.0]))  # workers busy for 30 s
        children = [c.pid for c in psutil.Process().children(recursive=True)]
        assert _wait_gone(children, 3.0) == []
        assert time.monotonic() - start < 10.0  # not after the 30-s chunks
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)


# --- the size of a sweep ------------------------------------------------------------------------


def test_point_count_is_checked_before_allocation():
    from opmerge.analysis.points import MAX_POINTS, check_point_count
    from opmerge.analysis.sweeps import lambda_grid, sweep_lambda, sweep_lambda_eta

    with pytest.raises(InputError, match=r"points must be <= 100000 \(allowed range \[1, 100000\]\), got 1000000000000"):
        lambda_grid(0.05, 100.0, 10**12)  # 7 TiB if allocated
    with pytest.raises(InputError, match="points"):
        lambda_grid(0.05, 100.0, 0)
    with pytest.raises(InputTypeError, match="points"):
        check_point_count(True)
    assert check_point_count(MAX_POINTS) == MAX_POINTS
    assert np.array_equal(lambda_grid(0.1, 10.0, 3), np.geomspace(0.1, 10.0, 3))
    assert lambda_grid(0.1, 10.0, 1).tolist() == [0.1]
    with pytest.raises(InputError, match=r"lams has 100001 grid points"):
        sweep_lambda(np.arange(MAX_POINTS + 1, dtype=float), schedule="vp-cosine", steps=4, progress=False)
    with pytest.raises(InputError, match=r"lams x eta_taus has 100002 grid points"):
        sweep_lambda_eta(np.arange(50001, dtype=float), [0.5, 1.0], schedule="vp-cosine", steps=4, progress=False)


# --- workers die with their parent --------------------------------------------------------------

_ORPHAN_SCRIPT = r"""
import multiprocessing, os, sys, time
import opmerge._signals as s
if sys.argv[1] == "watchdog":
    s._set_parent_death_signal = lambda: False   # the portable path alone
    interval = 0.1
else:
    interval = 3600.0                            # the Linux parent-death signal alone
def work(parent):
    s.die_with_parent(parent, interval)
    time.sleep(60)
if __name__ == "__main__":
    p = multiprocessing.get_context("fork").Process(target=work, args=(os.getpid(),))
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""


@needs_posix
@pytest.mark.parametrize("mechanism", ["watchdog", "pdeathsig"])
def test_worker_dies_when_its_parent_is_killed(mechanism, tmp_path):
    if mechanism == "pdeathsig" and not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux only")
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), mechanism], stdout=subprocess.PIPE, env=_env())
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.3)  # the initializer has run
        assert _alive([child]) == [child]
        parent.kill()
        parent.wait()
        assert _wait_gone([child], 3.0) == []
    finally:
        parent.kill()
        _kill_all([child] if "child" in locals() else [])


# =============================================================================================
# slow: the real command lines, stopped and resumed
# =============================================================================================

PHASE = ["phase", "--workers", "2", "--steps", "400", "--segments", "10", "--points", "40", "--no-plot", "--no-progress"]


def _phase(out: Path) -> list[str]:
    return [sys.executable, "-m", "opmerge", *PHASE, "--out", str(out)]


def _load(path: Path, out: Path):
    return _normalise(json.loads(path.read_text()), str(out))


@pytest.fixture(scope="module")
def phase_reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("phase-reference")
    done = subprocess.run(_phase(out), capture_output=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return _load(out / "phase.json", out)


#: the signal, the exit status it must give, and the seed of the moment it is sent
KILLS = [(signal.SIGKILL, -signal.SIGKILL, 1), (signal.SIGTERM, 143, 2), (signal.SIGINT, 130, 3)]


@needs_posix
@pytest.mark.slow
@pytest.mark.parametrize("signum, status, seed", KILLS, ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_phase_sweep_stopped_leaves_no_worker_and_resumes_bit_for_bit(signum, status, seed, tmp_path, phase_reference):
    out = tmp_path / "phase"
    source = _source_digest()
    proc = subprocess.Popen(_phase(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    err: list[str] = []
    reader = _drain(proc.stderr, err)
    workers: list[int] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = [c.pid for c in parent.children(recursive=True)]
            time.sleep(0.02)
        assert len(workers) >= 2, "the pool never started"
        time.sleep(random.Random(seed).uniform(0.1, 1.5))
        assert proc.poll() is None, "the sweep finished before the signal"
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == status
        assert _wait_gone(workers, 3.0) == [], "workers outlived their parent"
        reader.join(timeout=5)
        if signum == signal.SIGINT:
            assert "".join(err).strip() == "opmerge: interrupted"
        elif signum == signal.SIGTERM:
            assert "Traceback" not in "".join(err)
    finally:
        proc.kill()
        _kill_all(workers)
    resumed = subprocess.run(_phase(out), capture_output=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    if _source_digest() == source:
        assert ", 0 from cache" not in resumed.stdout.decode(), resumed.stdout.decode()
    assert _load(out / "phase.json", out) == phase_reference


STUDY = ["validate", "exactness", "--quick", "--no-progress", "--device", "cpu"]


def _study(out: Path) -> list[str]:
    return [sys.executable, "-m", "opmerge", *STUDY, "--out", str(out)]


@pytest.fixture(scope="module")
def study_reference(tmp_path_factory) -> dict:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("study-reference")
    done = subprocess.run(_study(out), capture_output=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    return _load(out / "exactness.json", out)


@needs_posix
@pytest.mark.slow
@pytest.mark.parametrize("signum, status, seed", KILLS, ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_study_stopped_resumes_bit_for_bit(signum, status, seed, tmp_path, study_reference):
    out = tmp_path / "study"
    source = _source_digest()
    proc = subprocess.Popen(_study(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 300
        while not list((out / "units").rglob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list((out / "units").rglob("*.json")), "no unit finished"
        time.sleep(random.Random(seed).uniform(0.0, 0.5))
        assert proc.poll() is None, "the study finished before the signal"
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
        # SIGTERM: 143 (the command line turns it into Terminated and stops cleanly)
        assert code == status
    finally:
        proc.kill()
    resumed = subprocess.run(_study(out), capture_output=True, env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()
    result = json.loads((out / "exactness.json").read_text())
    if _source_digest() == source:
        assert result["unit_cache"]["cached"] >= 1, result["unit_cache"]
    assert _load(out / "exactness.json", out) == study_reference


TEACHER = ["train-teacher", "--quick", "--train-steps", "400", "--batch-size", "32", "--hidden", "32", "--depth", "1",
           "--no-evaluate", "--device", "cpu", "--threads", "1"]


def _teacher(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "opmerge", *TEACHER, "--out", str(out), *extra]


def _checkpoint(out: Path) -> dict:
    import torch

    return torch.load(out / "teacher.pt", map_location="cpu", weights_only=True)


def _assert_same_state(a, b, where: str = "") -> None:
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}/{k}")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def teacher_reference(tmp_path_factory) -> dict:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("teacher-reference")
    done = subprocess.run(_teacher(out, "--no-progress"), capture_output=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    return _checkpoint(out)


@needs_posix
@pytest.mark.slow
@pytest.mark.parametrize("signum, status, seed", [(signal.SIGINT, 130, 4), (signal.SIGTERM, 143, 5)], ids=["SIGINT", "SIGTERM"])
def test_train_teacher_stopped_resumes_bit_for_bit(signum, status, seed, tmp_path, teacher_reference):
    out = tmp_path / "teacher"
    # the progress bar (stderr) shows when the training loop has started
    proc = subprocess.Popen(_teacher(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    err: list[str] = []
    reader = _drain(proc.stderr, err)
    try:
        deadline = time.monotonic() + 300
        while "teacher" not in "".join(err) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.Random(seed).uniform(0.05, 0.4))
        assert proc.poll() is None, "the training finished before the signal"
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == status
    finally:
        proc.kill()
    reader.join(timeout=5)
    stopped = _checkpoint(out)
    assert 0 < stopped["step"] < 400, stopped["step"]
    resumed = subprocess.run(_teacher(out, "--no-progress"), capture_output=True, env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()
    final = _checkpoint(out)
    for key in ("model", "ema", "optimizer", "generator", "step", "losses", "loss_block", "loss_start", "config", "data"):
        _assert_same_state(final[key], teacher_reference[key], key)


@pytest.mark.slow
def test_train_teacher_divergence_is_a_usage_error_without_checkpoint(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "teacher"
    done = subprocess.run(_teacher(out, "--no-progress", "--lr", "1e10"), capture_output=True, env=_env(), timeout=600)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("opmerge: error: ") and "lr" in err and "diverged" in err
    assert not (out / "teacher.pt").exists() and not (out / "teacher.json").exists()


def test_sigterm_inside_a_numba_kernel_that_returns_arrays_is_terminated():
    """SIGTERM under :func:`sigterm_raises` while a Numba function returning arrays runs: raised in
    Numba's call-back it came out as ``SystemError``; it must be a plain :class:`Terminated`."""
    from _busy_kernel import busy_kernel, raises_when_signalled

    busy, n = busy_kernel()
    with sigterm_raises():
        raises_when_signalled(lambda: busy(n), signal.SIGTERM, Terminated)
