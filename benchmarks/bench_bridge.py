"""Training throughput of the torch bridge on the current device.

Usage::

    python benchmarks/bench_bridge.py [--device auto|cpu|cuda] [--quick] [--threads T (default 1)]

Measures, after a warm-up, the median over repeats of

1. **MLP plan student**: one merge node (``experiments.executor.GaussianPlanExecutor.train_node``) of a
   residual MLP (``mlp``, width 64, 2 hidden layers, Adam) on a 16-direction Gaussian, batch 256:
   training samples per second = ``steps * batch / seconds`` (input draw, teacher target,
   forward, backward, Adam update all included);
2. the same for the separable MLP family (``mlp-separable``, the ranking study's student);
3. **SCoT** (``experiments.trajectory.TrajectoryTrainer``, width 128, 3 hidden layers, adaptive
   weights and denoising loss) and **TraFlow** on the same data, rf teacher N = 8, batch 256:
   samples per second, where one sample is one teacher pair of the batch (each update evaluates
   the network several times per sample: jvp for the velocity loss, EMA targets, ...).

float64 on the CPU, float32 on CUDA (as the studies). Nothing is asserted; no test times anything.
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

from opmerge.plans import MergeNode  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402

from opmerge.experiments._torch import resolve_device  # noqa: E402
from opmerge.experiments.executor import GaussianPlanExecutor, TrainConfig  # noqa: E402
from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher, TeacherStep  # noqa: E402
from opmerge.experiments.trajectory import TrajectoryConfig, TrajectoryTrainer  # noqa: E402

BATCH = 256
DIM = 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_plan_student(device: torch.device, family: str, steps: int, repeats: int) -> list[float]:
    """Samples per second of one merge node's training (per repeat)."""
    schedule = make_schedule("vp-cosine", 8)
    teacher = GaussianTeacher(schedule, make_gaussian(np.geomspace(0.1, 10.0, DIM), rotated=family == "mlp", seed=0), device=device)
    node = MergeNode((8, 7, 6))
    children = [TeacherStep(teacher, n) for n in node.children]
    cfg = TrainConfig(family=family, optimizer="adam", lr=1e-3, steps=steps, batch=BATCH, hidden=64, depth=2)
    executor = GaussianPlanExecutor(teacher, cfg, seed=0)
    executor.train_node(node, children, "warmup")
    rates = []
    for r in range(repeats):
        _sync(device)
        start = time.perf_counter()
        executor.train_node(node, children, f"repeat{r}")
        _sync(device)
        rates.append(steps * BATCH / (time.perf_counter() - start))
    return rates


def bench_trajectory(device: torch.device, method: str, steps: int, repeats: int) -> list[float]:
    """Samples (teacher pairs) per second of SCoT / TraFlow training (per repeat)."""
    schedule = make_schedule("rf", 8)
    teacher = GaussianTeacher(schedule, make_gaussian(np.geomspace(0.1, 10.0, DIM)), device=device)
    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method=method, steps=steps, batch=BATCH, hidden=128, depth=3), seed=0)
    trainer.train(3)
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        trainer.train(steps)
        _sync(device)
        rates.append(steps * BATCH / (time.perf_counter() - start))
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1, as the studies; see docs/bridge.md)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, repeats = (20, 2) if args.quick else (100, 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"dtype {'float64' if device.type == 'cpu' else 'float32'}, batch {BATCH}, d = {DIM}")
    rows = [
        ("MLP plan student (mlp, width 64x2, Adam)", lambda: bench_plan_student(device, "mlp", steps, repeats)),
        ("MLP plan student (mlp-separable, width 64x2)", lambda: bench_plan_student(device, "mlp-separable", steps, repeats)),
        ("SCoT (width 128x3, adaptive weights, denoising)", lambda: bench_trajectory(device, "scot", max(steps // 2, 5), repeats)),
        ("TraFlow (width 128x3)", lambda: bench_trajectory(device, "traflow", max(steps // 2, 5), repeats)),
    ]
    for label, fn in rows:
        rates = fn()
        print(f"  {label:50s} median {statistics.median(rates):12,.0f} samples/s  (min {min(rates):,.0f}, max {max(rates):,.0f}, {len(rates)} repeats)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
