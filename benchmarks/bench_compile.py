"""Eager against ``torch.compile``: training-step throughput of the bridge's networks, measured in one run.

Usage::

    python benchmarks/bench_compile.py [--device auto|cpu|cuda] [--quick] [--threads T (default 1)]
                                       [--sizes bridge,large] [--mode default|max-autotune|reduce-overhead]

Per size and step kind, the median over repeats (after a warm-up that includes the compilation) of
training samples per second = ``updates * batch / seconds`` for the same step run eagerly and
through ``torch.compile``, and their ratio:

* **plan student** — one merge node's update: a residual MLP ``x + F(x)`` fitted by Adam to a fixed
  linear two-step teacher composite on fresh Gaussian inputs (forward, loss, backward, update);
* **SCoT-style** — one trajectory-student update: the network ``g(x, e(t), e(s))`` with time
  features, the velocity loss by forward-mode differentiation in ``s`` (``torch.func.jvp``), a
  consistency loss against an EMA copy without gradient, a denoising loss, Adam and the EMA update.

Sizes: ``bridge`` (d = 16, width 128, 3 hidden layers, batch 256: the bridge's SCoT student) and
``large`` (d = 64, width 512, 3 hidden layers, batch 4,096). float64 on the CPU, float32 on CUDA.
The compiled step is ``torch.compile`` of the loss computation (forward passes and losses);
backward, Adam and EMA run as in the eager step, so both steps compute the same update. Nothing is
asserted and no test times anything; the numbers are quoted in docs/parallel.md.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from torch import nn  # noqa: E402

from opmerge.experiments._torch import resolve_device  # noqa: E402

SIZES = {"bridge": {"dim": 16, "hidden": 128, "depth": 3, "batch": 256}, "large": {"dim": 64, "hidden": 512, "depth": 3, "batch": 4096}}
FEATURES = 4  # time features per time: t, sin 2^k pi t, cos 2^k pi t for k < FEATURES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mlp(inputs: int, hidden: int, depth: int, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inputs, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    layers.append(nn.Linear(hidden, outputs))
    return nn.Sequential(*layers)


def _embed(t: torch.Tensor) -> torch.Tensor:
    k = torch.arange(FEATURES, dtype=t.dtype, device=t.device)
    angles = math.pi * t * 2.0 ** k
    return torch.cat([t, torch.sin(angles), torch.cos(angles)], dim=-1)


class TimeNet(nn.Module):
    """``G(x, t, s) = (s/t) x + (1 - s/t) g``, ``g = x + F(x, e(t), e(s))`` (the rf trajectory map)."""

    def __init__(self, dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.f = _mlp(dim + 2 * (1 + 2 * FEATURES), hidden, depth, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        g = x + self.f(torch.cat([x, _embed(t), _embed(s)], dim=-1))
        ratio = s / t
        return ratio * x + (1.0 - ratio) * g


class PlanStudentStep:
    """One merge-node update of a residual MLP toward a linear teacher composite."""

    def __init__(self, size: dict, device: torch.device, dtype: torch.dtype, compiled: bool, mode: str) -> None:
        gen = torch.Generator().manual_seed(0)
        d = size["dim"]
        self.batch, self.dim = size["batch"], d
        self.net = _mlp(d, size["hidden"], size["depth"], d).to(device=device, dtype=dtype)
        self.target = (0.5 + torch.rand(d, generator=gen, dtype=dtype)).to(device)  # a diagonal two-step composite
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.device, self.dtype = device, dtype
        loss = self._loss
        self.loss = torch.compile(loss, mode=None if mode == "default" else mode) if compiled else loss

    def _loss(self, z: torch.Tensor) -> torch.Tensor:
        return (z + self.net(z) - self.target * z).pow(2).sum(-1).mean()

    def __call__(self) -> None:
        z = torch.randn(self.batch, self.dim, device=self.device, dtype=self.dtype)
        self.opt.zero_grad(set_to_none=True)
        self.loss(z).backward()
        self.opt.step()


class ScotStyleStep:
    """One SCoT-style update: velocity (jvp in s), consistency against an EMA copy, denoising; Adam and EMA."""

    def __init__(self, size: dict, device: torch.device, dtype: torch.dtype, compiled: bool, mode: str) -> None:
        d = size["dim"]
        self.batch, self.dim = size["batch"], d
        self.net = TimeNet(d, size["hidden"], size["depth"]).to(device=device, dtype=dtype)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.scale = torch.linspace(0.3, 3.0, d, device=device, dtype=dtype)  # data standard deviations
        self.device, self.dtype = device, dtype
        losses = self._losses
        self.losses = torch.compile(losses, mode=None if mode == "default" else mode) if compiled else losses

    def _losses(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        x_t = t * x1 + (1.0 - t) * x0
        _, d_s = torch.func.jvp(lambda s_: self.net(x_t, t, s_), (s,), (torch.ones_like(s),))
        velocity = (d_s - (x1 - x0)).pow(2).sum(-1).mean()
        with torch.no_grad():
            target = self.ema(self.ema(x_t, t, u), u, s)
        consistency = (self.net(x_t, t, s) - target).pow(2).sum(-1).mean()
        denoise = (self.net(x_t, t, torch.zeros_like(t)) - x0).pow(2).sum(-1).mean()
        return velocity + consistency + denoise

    def __call__(self) -> None:
        b, d = self.batch, self.dim
        x0 = torch.randn(b, d, device=self.device, dtype=self.dtype) * self.scale
        x1 = torch.randn(b, d, device=self.device, dtype=self.dtype)
        times = torch.sort(torch.rand(b, 3, device=self.device, dtype=self.dtype), dim=-1).values
        s, u, t = times[:, :1], times[:, 1:2], 0.05 + 0.95 * times[:, 2:]
        self.opt.zero_grad(set_to_none=True)
        self.losses(x0, x1, t, s, u).backward()
        self.opt.step()
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.net.parameters()):
                p_ema.lerp_(p, 0.001)


def rate(step, batch: int, updates: int, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Samples per second of ``step`` per repeat, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(updates):
            step()
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
        for label, cls in (("plan student", PlanStudentStep), ("SCoT-style", ScotStyleStep)):
            medians = {}
            for compiled in (False, True):
                torch.manual_seed(0)
                step = cls(size, device, dtype, compiled, args.mode)
                started = time.perf_counter()
                rates = rate(step, size["batch"], n_updates, repeats, warmup=3, device=device)
                medians[compiled] = statistics.median(rates)
                print(f"  {size_name:6s} {label:12s} {'compiled' if compiled else 'eager':8s} median {medians[compiled]:12,.0f} samples/s"
                      f"  (min {min(rates):,.0f}, max {max(rates):,.0f}; {repeats} x {n_updates} updates, batch {size['batch']};"
                      f" {time.perf_counter() - started:.1f} s with warm-up)")
            print(f"  {size_name:6s} {label:12s} compiled / eager = {medians[True] / medians[False]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
