r"""Training the MLP diffusion teacher on image data (:func:`train_teacher`), resumable bit for bit.

Adam on seeded batches (rows, times :math:`t \sim U(t_\text{min}, 1)` of the training schedule,
noise), gradient clipping, an EMA of the weights (used for sampling); checkpoints
(:mod:`~experiments.images.checkpoints`) written atomically with the full configuration, the step,
the optimizer state, the random generator's state and a provenance block, so that a resumed run
continues bit for bit on the CPU.

Checkpoints hold whole steps only: SIGINT (Ctrl-C) and SIGTERM are deferred while a step runs
(:class:`opmerge._signals.deferred_signals`); at the next step boundary a checkpoint is written and
the run stops with :class:`KeyboardInterrupt` (exit status 130) or
:class:`~opmerge._signals.Terminated` (143). A rerun resumes bit for bit, as after SIGKILL (which
loses the steps since the last periodic checkpoint). A diverging run (a non-finite loss, or a loss
more than :data:`DIVERGENCE_FACTOR` times the first step's) stops with an
:class:`~opmerge.errors.InputError` naming ``lr`` and writes no checkpoint of the diverged weights.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from opmerge._signals import deferred_signals
from opmerge.errors import InputError, InputTypeError
from opmerge.io import provenance, write_json

from .._torch import resolve_device
from ._records import device_label
from ._schedule import alpha_sigma
from .checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    SUMMARY_NAME,
    TeacherCheckpoint,
    build_net,
    dataset_of,
    read_checkpoint,
    save_checkpoint_atomic,
)
from .data import ImageDataset, fit_gaussian
from .denoiser import dtype_of
from .teacher_config import TeacherConfig

__all__ = ["DIVERGENCE_FACTOR", "train_teacher"]

#: a step loss above this multiple of the first step's loss means the training diverged
DIVERGENCE_FACTOR = 1e3


def _check_divergence(value: float, reference: float, step: int, config: TeacherConfig) -> None:
    r"""Raise :class:`~opmerge.errors.InputError` (naming ``lr``) when the loss is not finite or exceeds
    :data:`DIVERGENCE_FACTOR` :math:`\times` ``reference`` (the first step's loss)."""
    if math.isfinite(value) and value <= DIVERGENCE_FACTOR * reference:
        return
    raise InputError(
        f"the teacher's training diverged at step {step}: loss {value:.3g}, more than {DIVERGENCE_FACTOR:g} times the "
        f"first step's {reference:.3g}; lr = {config.lr:g} is too large for this network, use a smaller lr "
        f"(the default is {TeacherConfig.lr:g}); no checkpoint was written for the diverged weights"
    )


def _check_resumable(stored: dict, config: TeacherConfig, path: Path) -> None:
    """Refuse to resume a checkpoint whose configuration differs outside :attr:`TeacherConfig.RESUMABLE`."""
    for key, value in config.to_dict().items():
        if key in TeacherConfig.RESUMABLE:
            continue
        if stored.get(key) != value:
            raise InputError(
                f"the checkpoint {path} was trained with {key} = {stored.get(key)!r}, not {value!r}; "
                "resume with the same configuration, or start over (--no-resume / resume=False, or another output folder)"
            )


def train_teacher(config: TeacherConfig, out_dir: str | os.PathLike, resume: bool = True, progress: bool = True, *,
                  device: str | torch.device = "auto", dataset: ImageDataset | None = None, log_every: int = 100,
                  stop_after: int | None = None, callback: Callable[[int, float], None] | None = None) -> TeacherCheckpoint:
    r"""Train (or resume training) the MLP diffusion teacher and return its checkpoint.

    Each step: rows :math:`x_0` uniform over the training set, times :math:`t = t_\text{min} + (1 - t_\text{min})u`,
    :math:`u \sim U(0, 1)`, noise :math:`\varepsilon`, :math:`(\alpha, \sigma) = (\alpha(t), \sigma(t))` of
    ``config.schedule``; loss :meth:`DenoiserMLP.loss`; Adam; gradient clipping; EMA update
    :math:`\bar\theta \leftarrow d_k\bar\theta + (1 - d_k)\theta`, :math:`d_k = \min(d, (1 + k)/(10 + k))`.
    All draws come from one CPU generator seeded by ``config.seed``; its state is stored in every
    checkpoint.

    Parameters
    ----------
    config : TeacherConfig
    out_dir : path            folder of ``teacher.pt`` and ``teacher.json``
    resume : bool             continue from ``out_dir/teacher.pt`` if present (same configuration except
                              :attr:`TeacherConfig.RESUMABLE` fields); ``False`` starts over
    progress : bool           tqdm bar
    device : {"auto", "cpu", "cuda"}
    dataset : ImageDataset    use this instead of loading ``config.data`` (must match it)
    log_every : int           steps per loss record
    stop_after : int          stop (with a checkpoint) after this many steps in this call (for tests)
    callback : callable       ``callback(step, loss)`` after every step

    Raises
    ------
    InputError
        When the training diverges (non-finite loss, or a loss above :data:`DIVERGENCE_FACTOR` times
        the first step's): the message names ``lr``; the diverged weights are not saved.
    KeyboardInterrupt, opmerge._signals.Terminated
        On SIGINT / SIGTERM, after the step in progress has finished and its checkpoint is written.

    Notes
    -----
    SIGINT (Ctrl-C) and SIGTERM are deferred to the end of the step in progress; then a checkpoint
    is written and the signal's exception raised (exit status 130 / 143 on the command line); a
    rerun resumes there bit for bit. A second Ctrl-C stops at once, without a checkpoint.
    """
    if not isinstance(config, TeacherConfig):
        raise InputTypeError(f"config must be a TeacherConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT_NAME
    device = resolve_device(device)
    dataset = dataset_of(config) if dataset is None else dataset
    fit = fit_gaussian(dataset.train)
    net = build_net(config, dataset, fit, device)
    dtype = dtype_of(config.dtype)
    ema = copy.deepcopy(net)
    for q in ema.parameters():
        q.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    step, losses, elapsed = 0, [], 0.0
    block: list[float] = []
    stored_provenance = None
    loss_start: float | None = None  # the first step's loss: the reference of the divergence check
    if resume and path.is_file():
        try:
            state = read_checkpoint(path)
        except InputError as exc:
            raise InputError(f"{exc} (start over with --no-resume / resume=False, or another output folder)") from None
        _check_resumable(state["config"], config, path)
        if state["data"]["fingerprint"] != dataset.fingerprint():
            raise InputError(f"the checkpoint {path} was trained on other data (fingerprint mismatch)")
        try:
            net.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # a tampered optimizer or generator state: read_checkpoint checks the weights only
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"checkpoint {path} cannot be resumed: its saved training state does not fit ({reason[:160]}); "
                             "start over with --no-resume / resume=False") from None
        step, losses, elapsed = int(state["step"]), list(state["losses"]), float(state["elapsed"])
        block = [float(v) for v in state.get("loss_block", [])]
        stored_provenance = state.get("provenance")
        loss_start = state.get("loss_start", losses[0] if losses else None)
    train_x = torch.tensor(np.array(dataset.train), dtype=dtype, device=device)
    n_train = train_x.shape[0]

    def save() -> TeacherCheckpoint:
        state = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "step": step, "model": net.state_dict(),
                 "ema": ema.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(), "losses": list(losses),
                 "loss_block": list(block), "loss_start": loss_start, "data": dataset.to_dict(), "elapsed": elapsed,
                 "provenance": provenance(device=device_label(device), config=config.to_dict())}
        save_checkpoint_atomic(state, path)
        summary = TeacherCheckpoint(path=path, config=config, step=step, losses=tuple(losses), data=dataset.to_dict(), elapsed=elapsed,
                                    provenance=state["provenance"])
        write_json(out_dir / SUMMARY_NAME, {**summary.to_dict(), "provenance": state["provenance"]})
        return summary

    target = config.train_steps if stop_after is None else min(config.train_steps, step + int(stop_after))
    if step >= target:
        if not path.is_file():
            return save()
        return TeacherCheckpoint(path, config, step, tuple(losses), dataset.to_dict(), elapsed, provenance=stored_provenance)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=step, desc="teacher", leave=False)
    start = time.perf_counter()
    t_min = config.t_min

    def _train_step() -> float:
        """One whole Adam step (batch draws, loss, update, EMA); returns the loss."""
        idx = torch.randint(n_train, (config.batch_size,), generator=gen)
        u = torch.rand(config.batch_size, 1, generator=gen, dtype=torch.float64)
        eps = torch.randn(config.batch_size, dataset.dim, generator=gen, dtype=torch.float64)
        t = t_min + (1.0 - t_min) * u
        alpha, sigma = alpha_sigma(config.schedule, t)
        x0 = train_x[idx.to(device)]
        for group in opt.param_groups:
            group["lr"] = _learning_rate(config, step)
        loss = net.loss(x0, alpha.to(dtype=dtype, device=device), sigma.to(dtype=dtype, device=device), eps.to(dtype=dtype, device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
        decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        return float(loss.detach())

    try:
        with deferred_signals() as signals:
            while step < target:
                value = _train_step()
                step += 1
                if loss_start is None:
                    loss_start = value
                _check_divergence(value, loss_start, step, config)
                block.append(value)
                if callback is not None:
                    callback(step, value)
                if len(block) == log_every or step == config.train_steps:
                    losses.append(float(np.mean(block)))
                    block = []
                if bar is not None:
                    bar.update(1)
                    if step % 50 == 0:
                        bar.set_postfix(loss=f"{value:.4f}")
                if signals.pending is not None:
                    # a whole step is done: checkpoint it, then stop as the signal asked
                    elapsed += time.perf_counter() - start
                    save()
                    signals.raise_pending()
                if step % config.checkpoint_every == 0 and step < target:
                    elapsed_now = time.perf_counter() - start
                    elapsed, start = elapsed + elapsed_now, time.perf_counter()
                    save()
            elapsed += time.perf_counter() - start
            return save()
    finally:
        if bar is not None:
            bar.close()


def _learning_rate(config: TeacherConfig, step: int) -> float:
    r"""Adam's step at update ``step``: constant, or :math:`\eta(0.1 + 0.9\cdot\tfrac12(1 + \cos(\pi k/K)))`."""
    if config.lr_schedule == "constant":
        return config.lr
    frac = min(step / config.train_steps, 1.0)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))
