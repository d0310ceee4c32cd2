r"""The trained image teacher: a :class:`~experiments.images.denoiser.DenoiserMLP` (its EMA weights)
run as the DDIM sampler of :class:`~experiments.images.teacher_base.ImageTeacher`.

Build it from a checkpoint with :func:`~experiments.images.checkpoints.load_checkpoint` or
:meth:`~experiments.images.checkpoints.TeacherCheckpoint.load_teacher`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from opmerge.schedules import Schedule

from .data import GaussianFit
from .denoiser import DenoiserMLP, FixedLevelDenoiser
from .teacher_base import ImageTeacher

if TYPE_CHECKING:  # pragma: no cover
    from .teacher_config import TeacherConfig

__all__ = ["TrainedTeacher"]


class TrainedTeacher(ImageTeacher):
    r"""A trained :class:`DenoiserMLP` (its EMA weights) with the DDIM sampler on ``schedule``.

    Build it with :meth:`TeacherCheckpoint.load_teacher` or :func:`load_checkpoint`.
    """

    kind = "trained"

    def __init__(self, net: DenoiserMLP, schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None = None,
                 config: "TeacherConfig | None" = None) -> None:
        p = next(net.parameters())
        super().__init__(schedule, fit, train, p.dtype, p.device)
        self.net = net.eval()
        for q in self.net.parameters():
            q.requires_grad_(False)
        self.config = config

    def denoise_at(self, z: torch.Tensor, alpha: float | torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""The EMA network's :math:`\hat x_0(z; \alpha, \sigma)` (see :meth:`ImageTeacher.denoise_at`)."""
        return self.net(z, alpha, sigma)

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        """A trainable copy of the network at the fixed level (:class:`FixedLevelDenoiser`)."""
        net = copy.deepcopy(self.net).train()
        for q in net.parameters():
            q.requires_grad_(True)
        return FixedLevelDenoiser(net, alpha, sigma)

    def with_schedule(self, schedule: Schedule) -> "TrainedTeacher":
        """The same network sampled on another grid (it sees only the SNR, so any grid works)."""
        return TrainedTeacher(self.net, schedule, self.fit, self.train, self.config)

    def to_dict(self) -> dict:
        """JSON-friendly description, with the training configuration."""
        out = super().to_dict()
        out["config"] = None if self.config is None else self.config.to_dict()
        return out
