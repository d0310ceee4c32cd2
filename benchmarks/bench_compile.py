"""Eager against ``torch.compile``: training-step throughput of the bridge's own steps, measured in one run.

Usage::

    python benchmarks/bench_compile.py [--device auto|cpu|cuda] [--quick] [--threads T (default 1)]
                                       [--sizes bridge,large] [--mode default|max-autotune|reduce-overhead]

Per size and step kind, the median over repeats (after a warm-up that includes the compilation) of
training samples per second = ``updates * batch / seconds`` for the same training run eagerly
(``compile="off"``) and compiled (``compile=MODE``), and their ratio. The steps are the bridge's:

* **plan student** -- :meth:`PlanExecutorBase.fit` of a merge node's ``mlp`` student (Adam) toward
  the teacher's two-step composite ``2 -> 0`` on fresh forward-process inputs (Gaussian teacher);
* **SCoT** and **TraFlow** -- :meth:`TrajectoryTrainer.train` (teacher pairs by the DDIM sampler,
  the losses of each method, Adam, the EMA update) on an ``rf`` teacher with ``N = 8``.

Sizes: ``bridge`` (d = 16, width 128, 3 hidden layers, batch 256: the bridge's SCoT student) and
``large`` (d = 64, width 512, 3 hidden layers, batch 4,096); data eigenvalues log-spaced in
``[0.1, 10]``. float64 on the CPU, float32 on CUDA. Compiled: the network part of every loss
(forward passes, the forward-mode velocity, the squared errors); the draws, backward, Adam and EMA
run as in the eager step, so both compute the same update. Nothing is asserted and no test times
anything; the numbers are quoted in docs/parallel.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from opmerge.experiments._torch import resolve_device  # noqa: E402
from opmerge.experiments.executor import ComposedSampler, GaussianPlanExecutor, TrainConfig  # noqa: E402
from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher, TeacherStep  # noqa: E402
from opmerge.experiments.trajectory import TrajectoryConfig, TrajectoryTrainer  # noqa: E402
from opmerge.plans import MergeNode  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402

SIZES = {"bridge": {"dim": 16, "hidden": 128, "depth": 3, "batch": 256}, "large": {"dim": 64, "hidden": 512, "depth": 3, "batch": 4096}}
TEACHER_STEPS = 8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _teacher(schedule: str, size: dict, device: torch.device, dtype: torch.dtype) -> GaussianTeacher:
    lam = np.geomspace(0.1, 10.0, size["dim"])
    return GaussianTeacher(make_schedule(schedule, TEACHER_STEPS), make_gaussian(lam), dtype=dtype, device=device)


class PlanStudentRun:
    """``updates`` minibatch Adam updates of one merge node's ``mlp`` student (:meth:`PlanExecutorBase.fit`)."""

    def __init__(self, size: dict, device: torch.device, dtype: torch.dtype, mode: str) -> None:
        teacher = _teacher("vp-cosine", size, device, dtype)
        cfg = TrainConfig(family="mlp", optimizer="adam", lr=1e-3, batch=size["batch"], hidden=size["hidden"],
                          depth=size["depth"])
        self.executor = GaussianPlanExecutor(teacher, cfg, seed=0, compile=mode)
        self.generator = torch.Generator(device=device).manual_seed(0)
        node = MergeNode((2, 1))
        self.target = ComposedSampler([TeacherStep(teacher, 2), TeacherStep(teacher, 1)]).requires_grad_(False)
        self.student = self.executor.start_student(node, TeacherStep(teacher, 2), self.generator)
        for p in self.student.parameters():
            p.requires_grad_(True)

    def __call__(self, updates: int) -> None:
        self.executor.fit(self.student, self.target, 2, updates, self.generator)


class TrajectoryRun:
    """``updates`` updates of a SCoT or TraFlow student (:meth:`TrajectoryTrainer.train`)."""

    def __init__(self, method: str, size: dict, device: torch.device, dtype: torch.dtype, mode: str) -> None:
        cfg = TrajectoryConfig(method=method, batch=size["batch"], hidden=size["hidden"], depth=size["depth"])
        self.trainer = TrajectoryTrainer(_teacher("rf", size, device, dtype), cfg, seed=0, compile=mode)

    def __call__(self, updates: int) -> None:
        self.trainer.train(steps=updates, log_every=10**9)


def make_run(kind: str, size: dict, device: torch.device, dtype: torch.dtype, mode: str):
    if kind == "plan student":
        return PlanStudentRun(size, device, dtype, mode)
    return TrajectoryRun(kind.lower(), size, device, dtype, mode)


def rate(run, batch: int, updates: int, repeats: int, device: torch.device) -> list[float]:
    """Samples per second of ``run`` per repeat, after an untimed warm-up of 3 updates."""
    run(3)
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run(updates)
        _sync(device)
        rates.append(updates * batch / (time.perf_counter() - start))
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="fewer updates and repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads on the CPU (default 1, as the studies)")
    parser.add_argument("--sizes", default="bridge,large", help="comma list of bridge, large (default both)")
    parser.add_argument("--mode", default="default", choices=("default", "max-autotune", "reduce-overhead"),
                        help="torch.compile mode (reduce-overhead: CUDA graphs on a GPU)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    updates, repeats = (3, 2) if args.quick else (20, 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, dtype {str(dtype).replace('torch.', '')}, "
          f"compile mode {args.mode}")
    for size_name in args.sizes.split(","):
        size = SIZES[size_name.strip()]
        n_updates = max(2, updates // 4) if size_name == "large" and device.type == "cpu" else updates
        for label in ("plan student", "SCoT", "TraFlow"):
            medians = {}
            for compiled in (False, True):
                started = time.perf_counter()
                run = make_run(label, size, device, dtype, args.mode if compiled else "off")
                rates = rate(run, size["batch"], n_updates, repeats, device)
                medians[compiled] = statistics.median(rates)
                print(f"  {size_name:6s} {label:12s} {'compiled' if compiled else 'eager':8s} median {medians[compiled]:12,.0f} samples/s"
                      f"  (min {min(rates):,.0f}, max {max(rates):,.0f}; {repeats} x {n_updates} updates, batch {size['batch']};"
                      f" {time.perf_counter() - started:.1f} s with warm-up)")
            print(f"  {size_name:6s} {label:12s} compiled / eager = {medians[True] / medians[False]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
