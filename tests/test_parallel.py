"""The unit executors (opmerge.parallel): one contract for the local, process and Ray engines.

Every engine returns results in input order, raises the first failing unit's exception in input
order, resubmits a unit whose worker died, and, with the unit cache, neither loses nor recomputes a
finished unit. The Ray tests start and stop their own local instance (two CPUs).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import _parallel_units as units
from opmerge.errors import InputError, InputTypeError
from opmerge.io import ResultCache
from opmerge.parallel import (EXECUTOR_NAMES, CachedUnit, ExecutorConfig, LocalExecutor, ProcessExecutor, UnitExecutor, UnitLost,
                              make_executor, run_cached)


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with two CPUs for this module's Ray tests (stopped after them)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    # the workers import the unit functions of tests/_parallel_units.py
    path = os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def _engine(name, request, **fields):
    if name == "ray":
        request.getfixturevalue("ray_instance")
    if name == "process":
        fields.setdefault("workers", 2)
    return make_executor(name, **fields)


ENGINES = pytest.mark.parametrize("name", EXECUTOR_NAMES)


# ------------------------------------------------------------------------------ configuration


def test_config_refuses_bad_fields_naming_them():
    with pytest.raises(InputError, match="executor must be one of local, process, ray"):
        ExecutorConfig(kind="dask")
    with pytest.raises(InputError, match=r"workers must be >= 1"):
        ExecutorConfig(kind="process", workers=0)
    with pytest.raises(InputTypeError, match="workers must be an int"):
        ExecutorConfig(kind="process", workers=1.5)
    with pytest.raises(InputError, match="address is for the ray executor only"):
        ExecutorConfig(kind="process", address="auto")
    with pytest.raises(InputError, match="address must not be empty"):
        ExecutorConfig(kind="ray", address=" ")
    with pytest.raises(InputError, match="gpus_per_unit must be finite and >= 0"):
        ExecutorConfig(kind="ray", gpus_per_unit=-0.5)
    with pytest.raises(InputTypeError, match="cpus_per_unit must be a real number"):
        ExecutorConfig(kind="ray", cpus_per_unit=True)
    with pytest.raises(InputError, match="retries must be >= 0"):
        ExecutorConfig(retries=-1)
    with pytest.raises(InputError, match="start_method must be one of"):
        ExecutorConfig(kind="process", start_method="thread")
    with pytest.raises(InputError, match="this is the 'process' executor"):
        ProcessExecutor(ExecutorConfig(kind="local"))
    with pytest.raises(InputTypeError, match="not beside it"):
        make_executor(ExecutorConfig(), workers=2)
    assert ExecutorConfig(kind="ray", address="auto", gpus_per_unit=0.25).to_dict()["gpus_per_unit"] == 0.25


def test_ray_missing_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r'pip install "opmerge\[cluster\]"'):
        make_executor("ray")


# ------------------------------------------------------------------------------ the contract, per engine


@ENGINES
def test_results_come_back_in_input_order(name, request):
    # later units finish first: the order is the input's, not the finish order
    tasks = [(0.3 if k == 0 else 0.0, k) for k in range(6)]
    with _engine(name, request) as executor:
        seen = []
        out = executor.map(units.square_after, tasks, on_result=lambda i, r: seen.append(i))
        assert executor.map(units.add, [], shared=1) == []
    assert out == [k * k for k in range(6)]
    assert sorted(seen) == list(range(6))
    assert executor.totals["units"] == 6


@ENGINES
def test_shared_reaches_every_unit(name, request):
    with _engine(name, request) as executor:
        assert executor.map(units.add, [1, 2, 3], shared=100) == [101, 102, 103]


@ENGINES
def test_the_first_failing_unit_in_input_order_is_raised(name, request):
    # unit 1 fails late, unit 3 fails early: a serial run would raise unit 1's error
    tasks = [(0.0, 0, False), (0.5, 1, True), (0.0, 2, False), (0.0, 3, True), (0.0, 4, False)]
    with _engine(name, request) as executor:
        with pytest.raises(ValueError, match=r"^unit 1$") as info:
            executor.map(units.fail_some, tasks)
    assert type(info.value) is ValueError or isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["process", "ray"])
def test_a_unit_whose_worker_died_is_run_again(name, request, tmp_path):
    # units 1 and 3 kill their worker on their first attempt (a dead process worker breaks the
    # whole pool, so the units in flight with it are resubmitted too)
    with _engine(name, request) as executor:
        out = executor.map(units.die_once, [(k, k in (1, 3)) for k in range(5)], shared=str(tmp_path))
    assert out == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.died", "3.died"]
    assert executor.totals["resubmitted"] >= 2
    assert executor.totals["units"] == 5


@pytest.mark.parametrize("name", ["process", "ray"])
def test_a_unit_lost_more_often_than_its_retries_stops_the_run(name, request):
    with _engine(name, request, retries=1) as executor:
        with pytest.raises(UnitLost, match="unit 0 lost its worker 2 times"):
            executor.map(units.die_always, [0])


def test_the_local_engine_lets_ctrl_c_through_at_once():
    calls = []

    def interrupted(shared, task):
        calls.append(task)
        if task == 1:
            raise KeyboardInterrupt
        return task

    with pytest.raises(KeyboardInterrupt):
        with LocalExecutor() as executor:
            executor.map(interrupted, [0, 1, 2])
    assert calls == [0, 1]


class _RecordingEngine(UnitExecutor):
    """An in-process engine whose units finish in a given order (tests the loop alone); units 2 and 5 fail."""

    name = "local"
    remote = False

    def __init__(self, capacity, finish_order):
        super().__init__(ExecutorConfig())
        self._capacity = capacity
        self.finish_order = list(finish_order)
        self.cancelled = []
        self.submitted = []

    @property
    def capacity(self):
        return self._capacity

    def _submit(self, fn, shared, task):
        self.submitted.append(task)
        return ("handle", task)

    def _wait(self, handles):
        return [min(handles, key=lambda h: self.finish_order.index(h[1]))]

    def _outcome(self, handle):
        task = handle[1]
        return ("failed", ValueError(f"unit {task}")) if task in (2, 5) else ("ok", task * 10)

    def _cancel(self, handles):
        self.cancelled.extend(h[1] for h in handles)


def test_the_loop_cancels_units_after_a_failure_and_raises_the_first_in_input_order():
    # all in flight: 5 fails first (6 and 7 cancelled), then 2 (3 and 4 cancelled); 0 and 1 finish
    engine = _RecordingEngine(capacity=100, finish_order=[5, 2, 0, 1, 3, 4, 6, 7])
    with pytest.raises(ValueError, match="unit 2"):
        engine.map(None, range(8))
    assert engine.cancelled == [6, 7, 3, 4]
    # three in flight: after unit 2 fails nothing later is submitted
    engine = _RecordingEngine(capacity=3, finish_order=[2, 0, 1, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="unit 2"):
        engine.map(None, range(8))
    assert engine.submitted == [0, 1, 2]
    assert _RecordingEngine(capacity=2, finish_order=[3, 1, 0]).map(None, [0, 1, 3]) == [0, 10, 30]


# ------------------------------------------------------------------------------ with the unit cache


def _cache(path):
    return ResultCache(path, "parallel-test", packages=())


@ENGINES
def test_run_cached_stores_every_unit_and_a_rerun_computes_nothing(name, request, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    todo = [CachedUnit({"unit": k}, k) for k in range(5)]
    with _engine(name, request) as executor:
        first, stats1 = run_cached(executor, _cache(tmp_path / "units"), units.logged_slow_unit, todo, shared=str(work))
        second, stats2 = run_cached(executor, _cache(tmp_path / "units"), units.logged_slow_unit, todo, shared=str(work))
    assert first == second == [{"unit": k, "value": k * k} for k in range(5)]
    assert (stats1["computed"], stats1["cached"], stats2["computed"], stats2["cached"]) == (5, 0, 0, 5)
    assert sorted((work / "finished.log").read_text().split()) == [str(k) for k in range(5)]
    assert len(list((tmp_path / "units").glob("*/*.json"))) == 5


def test_a_worker_finds_a_unit_another_attempt_finished(tmp_path):
    # the driver saw a miss, but a finished earlier attempt stored the unit before this one ran
    cache = _cache(tmp_path / "units")
    from opmerge.parallel._cached import _cached_call

    cache.store({"unit": 7}, {"unit": 7, "value": -1})
    value, computed = _cached_call((units.logged_slow_unit, str(tmp_path), cache, None), CachedUnit({"unit": 7}, 7))
    assert (value, computed) == ({"unit": 7, "value": -1}, False)
    assert not (tmp_path / "finished.log").exists()


@pytest.mark.slow
def test_ray_worker_killed_part_way_every_unit_present_exactly_once(ray_instance, tmp_path):
    """A Ray worker is killed from outside while it runs a unit; the run completes, each unit once."""
    work = tmp_path / "work"
    work.mkdir()
    todo = [CachedUnit({"unit": k}, k) for k in range(8)]
    outcome = {}

    def run():
        with make_executor("ray") as executor:
            outcome["results"], outcome["stats"] = run_cached(executor, _cache(tmp_path / "units"), units.logged_slow_unit, todo,
                                                              shared=str(work))
            outcome["resubmitted"] = executor.totals["resubmitted"]

    thread = threading.Thread(target=run)
    thread.start()
    started = work / "started"
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline:
        running = sorted(started.glob("*.*")) if started.exists() else []
        finished = set((work / "finished.log").read_text().split()) if (work / "finished.log").exists() else set()
        for path in running:
            task, pid = path.name.split(".")
            if task not in finished:
                victim = (task, int(pid))
                break
        time.sleep(0.02)
    assert victim is not None, "no unit started within 60 s"
    os.kill(victim[1], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert outcome["results"] == [{"unit": k, "value": k * k} for k in range(8)]
    finished = (work / "finished.log").read_text().split()
    assert sorted(finished) == sorted(str(k) for k in range(8)), "every unit finished exactly once"
    attempts = [p.name.split(".")[0] for p in started.iterdir()]
    assert attempts.count(victim[0]) == 2, "the killed unit ran again"
    assert outcome["resubmitted"] >= 1
    assert len(list((tmp_path / "units").glob("*/*.json"))) == 8


# ------------------------------------------------------------------------------ a sweep on every engine


@ENGINES
def test_a_sweep_gives_the_same_result_on_every_engine(name, request, monkeypatch, tmp_path):
    import numpy as np

    from opmerge.analysis import runner as runner_module
    from opmerge.analysis.sweeps import sweep_lambda

    lams = np.geomspace(0.05, 100, 24)
    reference = sweep_lambda(lams, schedule="vp-cosine", steps=10, progress=False, executor="local").to_dict()
    if name == "ray":
        request.getfixturevalue("ray_instance")
    monkeypatch.setattr(runner_module, "PARALLEL_MIN_SECONDS", 0.0)  # always hand the batch to the engine
    sweep = sweep_lambda(lams, schedule="vp-cosine", steps=10, progress=False, executor=name, workers=None if name == "local" else 2,
                         cache_dir=tmp_path / "cache")
    assert sweep.stats["parallel"] is (name != "local")
    assert sweep.to_dict() == reference
    assert len(list((tmp_path / "cache").glob("*/*.json"))) == sweep.stats["points"] + sweep.stats["threshold_points"]


class _OtherMachine(LocalExecutor):
    """A local engine that pretends its units ran on another machine with its own disk."""

    remote = True

    def __init__(self, elsewhere):
        super().__init__()
        self.elsewhere = elsewhere

    def _submit(self, fn, shared, task):
        fn_, shared_, cache, validate = shared
        return super()._submit(fn, (fn_, shared_, _cache(self.elsewhere), validate), task)


def test_units_computed_on_another_machine_are_kept_here_too(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    todo = [CachedUnit({"unit": k}, k) for k in range(3)]
    results, stats = run_cached(_OtherMachine(tmp_path / "remote-disk"), _cache(tmp_path / "units"), units.logged_slow_unit, todo,
                                shared=str(work))
    assert stats["computed"] == 3
    assert len(list((tmp_path / "remote-disk").glob("*/*.json"))) == 3
    again, stats = run_cached(LocalExecutor(), _cache(tmp_path / "units"), units.logged_slow_unit, todo, shared=str(work))
    assert again == results and stats == {"units": 3, "cached": 3, "computed": 0, "executor": "local"}
