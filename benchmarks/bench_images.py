"""Throughput of the image bridge: teacher training/sampling and student training, samples per second.

Run from the repository root: ``python benchmarks/bench_images.py [--device auto|cpu|cuda] [--seconds S] [--threads T] [--json]``.
Needs torch. The numbers come from :func:`experiments.images.throughput.image_throughput`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, as for opmerge train-teacher and validate images: faster for these small networks)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    from opmerge.experiments.images.throughput import image_throughput

    result = image_throughput(args.device, seconds=args.seconds, batch=args.batch)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"image bridge throughput on {result['device']} ({result['dtype']}, {result['threads']} threads; batch {result['batch']},"
          f" MLP width {result['hidden']} x {result['depth']}, {result['dim']} pixels)")
    for key, label in (("teacher_train", "teacher training (Adam)"), ("teacher_sample", "teacher sampling (per DDIM step)"),
                       ("student_network", "network student training (Adam, 2-step target)"),
                       ("student_linear", "affine student training (SGD, 2-step target)")):
        r = result[key]
        print(f"  {label:48s} {r['samples_per_s']:12,.0f} samples/s  ({r['steps_per_s']:8.1f} steps/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
