r"""The one training loop of the bridge: plain gradient steps or Adam on a loss, and the EMA of a network.

Every student of the bridge is trained here: the merge-node students of both plan executors
(:mod:`experiments.executor`, :mod:`experiments.images.distill`) and the SCoT / TraFlow students
(:mod:`experiments.trajectory`).

* ``exact-gd`` and ``sgd`` are the same update, :math:`\theta \leftarrow \theta - \eta \nabla_\theta L`
  (no momentum), on the population loss (a deterministic closure) or on a fresh minibatch loss
  (a closure that draws its batch);
* ``adam`` is :class:`torch.optim.Adam` with its defaults (:math:`\beta = (0.9, 0.999)`,
  :math:`\epsilon = 10^{-8}`) and step size :math:`\eta`.

:class:`EMA` keeps an exponential moving average of a network's parameters,

.. math:: \theta^- \leftarrow r_k\,\theta^- + (1 - r_k)\,\theta, \qquad r_k = \min\Big(r, \frac{1 + k}{10 + k}\Big)

at update :math:`k` (with the warm-up; without it :math:`r_k = r`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterable

import torch
from torch import nn

from opmerge.errors import InputError

__all__ = ["OPTIMIZERS", "GradientStepper", "run_updates", "EMA"]

#: the optimisers of the bridge (``exact-gd`` and ``sgd`` differ only in the loss they are given)
OPTIMIZERS = ("exact-gd", "sgd", "adam")


class GradientStepper:
    r"""One optimiser over a list of parameters; :meth:`step` applies one update for a loss tensor.

    Parameters
    ----------
    name : {"exact-gd", "sgd", "adam"}
    params : iterable of tensors
        The trainable parameters (``requires_grad`` set).
    lr : float
        Step size :math:`\eta > 0`.
    """

    def __init__(self, name: str, params: Iterable[torch.Tensor], lr: float) -> None:
        if name not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise InputError(f"lr must be a finite number > 0, got {lr!r}")
        self.name, self.lr = name, float(lr)
        self.params = list(params)
        self.adam = torch.optim.Adam(self.params, lr=self.lr) if name == "adam" else None

    def step(self, loss: torch.Tensor) -> float:
        r"""Update the parameters once from ``loss`` and return its value (before the update)."""
        if self.adam is None:
            grads = torch.autograd.grad(loss, self.params)
            with torch.no_grad():
                for p, g in zip(self.params, grads):
                    p.sub_(self.lr * g)
        else:
            self.adam.zero_grad(set_to_none=True)
            loss.backward()
            self.adam.step()
        return float(loss.detach())


def run_updates(stepper: GradientStepper, loss_fn: Callable[[], torch.Tensor], steps: int, *,
                final_loss: bool = False) -> list[float]:
    r"""``steps`` updates of ``stepper`` on ``loss_fn()`` (called once per update).

    Parameters
    ----------
    stepper : GradientStepper
    loss_fn : callable
        Returns the loss to differentiate (a population loss, or the loss of a fresh batch).
    steps : int
        Number of updates :math:`K \ge 1`.
    final_loss : bool
        Also evaluate ``loss_fn()`` once after the last update (without gradients) and append it:
        for deterministic losses, whose value after training is then known exactly.

    Returns
    -------
    list of float
        The loss before each update (and after the last one with ``final_loss``).
    """
    losses = [stepper.step(loss_fn()) for _ in range(int(steps))]
    if final_loss:
        with torch.no_grad():
            losses.append(float(loss_fn()))
    return losses


class EMA:
    r"""Exponential moving average :math:`\theta^-` of a network's parameters (module docstring).

    Parameters
    ----------
    module : nn.Module
        The network; the average starts as a deep copy of it, without gradients.
    rate : float
        :math:`r \in [0, 1)`.
    warmup : bool
        Use :math:`r_k = \min(r, (1 + k)/(10 + k))`: short runs do not chase their random start.

    Attributes
    ----------
    module : nn.Module
        The averaged copy :math:`G^-`.
    updates : int
        Number of :meth:`update` calls so far.
    """

    def __init__(self, module: nn.Module, rate: float, warmup: bool = True) -> None:
        if not 0.0 <= float(rate) < 1.0:
            raise InputError(f"ema rate must be in [0, 1), got {rate!r}")
        self.rate, self.warmup = float(rate), bool(warmup)
        self.module = copy.deepcopy(module)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def rate_at(self, k: int) -> float:
        r""":math:`r_k` of update number ``k`` (1 for the first update)."""
        return min(self.rate, (1.0 + k) / (10.0 + k)) if self.warmup else self.rate

    def update(self, source: nn.Module, k: int | None = None) -> float:
        r"""One update :math:`\theta^- \leftarrow r_k\theta^- + (1 - r_k)\theta` from ``source``'s parameters.

        Parameters
        ----------
        source : nn.Module
            The trained network (same architecture as :attr:`module`).
        k : int, optional
            The update number in :math:`r_k`; default: the number of updates including this one
            (1 for the first). A loop that counts from 0 (a resumed checkpoint's step) passes its own.

        Returns
        -------
        float
            The rate :math:`r_k` used.
        """
        self.updates += 1
        rate = self.rate_at(self.updates if k is None else int(k))
        with torch.no_grad():
            for p_ema, p in zip(self.module.parameters(), source.parameters()):
                p_ema.mul_(rate).add_(p, alpha=1.0 - rate)
        return rate
