r"""Training throughput of the image bridge: samples per second for the teacher and the students.

:func:`image_throughput` times, on random digits-shaped data (64 pixels; no training set needed):

* ``teacher_train`` — Adam steps of the MLP teacher (:class:`~experiments.images.teachers.DenoiserMLP`,
  the full preset: width 384, 3 layers, batch 256): forward, backward, update;
* ``teacher_sample`` — DDIM steps of that network (one network evaluation per sample and step);
* ``student_network`` — a denoiser student (copy of the teacher network) trained with Adam against a
  2-step teacher composite (one student forward/backward plus two teacher evaluations per sample);
* ``student_linear`` — an affine student trained with SGD against the same target.

Each entry reports ``samples_per_s`` (batch x updates / seconds) and ``steps_per_s``, after
``warmup`` untimed updates; CUDA runs synchronise before reading the clock.
"""

from __future__ import annotations

import math
import time

import torch

from .._torch import resolve_device
from .teachers import DenoiserMLP

__all__ = ["image_throughput"]


def _timed(fn, seconds: float, warmup: int, device: torch.device) -> tuple[int, float]:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        if device.type == "cuda" and count % 10:
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count, elapsed


def image_throughput(device: str | torch.device = "auto", *, seconds: float = 1.0, batch: int = 256, hidden: int = 384, depth: int = 3,
                     dim: int = 64, warmup: int = 3, seed: int = 0) -> dict:
    """Samples per second of teacher training, teacher sampling and student training (module docstring).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or torch.device
    seconds : float      timed duration of each measurement (after ``warmup`` updates)
    batch, hidden, depth, dim : sizes (defaults: the full teacher preset on 8x8 digits)

    Returns
    -------
    dict
        ``device``, ``dtype``, ``batch``, ``hidden``, ``depth``, ``dim``, ``threads`` and one entry per
        measurement with ``samples_per_s``, ``steps_per_s``, ``steps``, ``seconds``.
    """
    dev = resolve_device(device)
    dtype = torch.float32
    gen = torch.Generator().manual_seed(seed)
    mean = torch.zeros(dim)
    net = DenoiserMLP(dim, hidden, depth, 32, "x0", mean, 0.6, gen, dtype).to(dev)
    x0 = torch.rand(4096, dim, generator=gen).mul(2).sub(1).to(dev, dtype)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g_dev = torch.Generator(device=dev).manual_seed(seed)
    out: dict = {"device": str(dev), "dtype": "float32", "batch": batch, "hidden": hidden, "depth": depth, "dim": dim,
                 "threads": torch.get_num_threads()}

    def teacher_step():
        idx = torch.randint(x0.shape[0], (batch,), generator=g_dev, device=dev)
        t = torch.rand(batch, 1, generator=g_dev, device=dev, dtype=dtype) * 0.999 + 1e-3
        eps = torch.randn(batch, dim, generator=g_dev, device=dev, dtype=dtype)
        loss = net.loss(x0[idx], 1.0 - t, t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def record(name, fn, per_step_samples):
        steps, secs = _timed(fn, seconds, warmup, dev)
        out[name] = {"samples_per_s": per_step_samples * steps / secs, "steps_per_s": steps / secs, "steps": steps, "seconds": secs}

    record("teacher_train", teacher_step, batch)
    z = torch.randn(batch, dim, generator=g_dev, device=dev, dtype=dtype)

    def teacher_sample():
        with torch.no_grad():
            net(z, 0.5, 0.5)

    record("teacher_sample", teacher_sample, batch)

    import copy

    student = copy.deepcopy(net)
    s_opt = torch.optim.Adam(student.parameters(), lr=1e-4)

    def target(x):
        with torch.no_grad():
            h = 0.75 * x + 0.25 * net(x, 0.25, 0.75)
            return 0.5 * h + 0.5 * net(h, 0.5, 0.5)

    def student_network():
        zz = torch.randn(batch, dim, generator=g_dev, device=dev, dtype=dtype)
        y = target(zz)
        loss = (0.75 * zz + 0.25 * student(zz, 0.25, 0.75) - y).pow(2).sum(1).mean()
        s_opt.zero_grad(set_to_none=True)
        loss.backward()
        s_opt.step()

    record("student_network", student_network, batch)
    weight = torch.eye(dim, device=dev, dtype=dtype).requires_grad_(True)
    bias = torch.zeros(dim, device=dev, dtype=dtype, requires_grad=True)

    def student_linear():
        zz = torch.randn(batch, dim, generator=g_dev, device=dev, dtype=dtype)
        y = target(zz)
        loss = (zz @ weight.T + bias - y).pow(2).sum(1).mean()
        gw, gb = torch.autograd.grad(loss, (weight, bias))
        with torch.no_grad():
            weight.sub_(0.01 * gw)
            bias.sub_(0.01 * gb)

    record("student_linear", student_linear, batch)
    for key in ("teacher_train", "teacher_sample", "student_network", "student_linear"):
        if not math.isfinite(out[key]["samples_per_s"]):
            raise RuntimeError(f"throughput measurement {key} failed")
    return out
