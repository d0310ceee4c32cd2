r"""SCoT and TraFlow students on image data, by reusing :mod:`experiments.trajectory` on a centred view.

:class:`experiments.trajectory.TrajectoryTrainer` is written for a centred Gaussian teacher. An image
teacher has a data mean :math:`\mu`; every DDIM step is exactly conjugate under the shift
:math:`z_n \mapsto z_n - \alpha_n\mu` (for any denoiser, linear or not:
:math:`z_{n-1} - \alpha_{n-1}\mu = \alpha_{n-1}(\hat x_0 - \mu) + \sigma_{n-1}\big((z_n - \alpha_n\mu) - \alpha_n(\hat x_0 - \mu)\big)/\sigma_n`),
and so is the straight path :math:`x_t = \alpha_t x_0 + \sigma_t\varepsilon` of the continuous schedule.
:class:`CentredTeacherView` presents an image teacher in centred coordinates with the interface the
trainer uses (``schedule``, ``steps``, ``dim``, ``dtype``, ``device``, ``noise_sample``, ``sample``, ``step``,
``data.lam``, ``data.sample`` = training images minus :math:`\mu`, ``data.noise``); the student learns
:math:`G` in centred coordinates and :class:`ImageTrajectorySampler` maps back,
:math:`x = G(z_N - \alpha_N\mu, 1, \cdot) + \mu`. Losses, weights, EMA and time embedding are those of
:mod:`experiments.trajectory` (see its docstring); only ``pairs="ddim"`` is available (a trained teacher
has no exact flow).
"""

from __future__ import annotations

import torch

from opmerge.errors import InputError

from ..trajectory import TrajectoryConfig, TrajectoryTrainer
from .teachers import ImageTeacher

__all__ = ["CentredTeacherView", "ImageTrajectorySampler", "train_trajectory_student"]


class _CentredData:
    """``lam`` and draws of centred training images / noise, as the trainer's ``teacher.data``."""

    def __init__(self, teacher: ImageTeacher) -> None:
        import numpy as np

        self.teacher = teacher
        fit = getattr(teacher, "fit", None)
        self.lam = np.array(fit.lam) if fit is not None else np.array(teacher.data.lam)
        self.dim = teacher.dim

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype, device) -> torch.Tensor:
        r"""Training images minus :math:`\mu`, drawn uniformly with replacement."""
        t = self.teacher
        idx = torch.randint(t.train.shape[0], (int(n),), generator=generator, device=generator.device)
        return (t.train[idx.to(t.device)] - t.mean).to(dtype=dtype, device=device)

    def noise(self, n: int, generator: torch.Generator, dtype: torch.dtype, device) -> torch.Tensor:
        r""":math:`\varepsilon \sim \mathcal N(0, I)`."""
        return torch.randn(int(n), self.dim, generator=generator, dtype=dtype, device=generator.device).to(device)


class CentredTeacherView:
    r"""An image teacher (or the Gaussian teacher with a mean) in centred coordinates :math:`z'_n = z_n - \alpha_n\mu` (module docstring)."""

    def __init__(self, teacher: ImageTeacher) -> None:
        if teacher.train is None:
            raise InputError("the teacher must hold its training rows (teacher.train)")
        self.teacher = teacher
        self.schedule = teacher.schedule
        self.device, self.dtype = teacher.device, teacher.dtype
        self.data = _CentredData(teacher)

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.teacher.steps

    @property
    def dim(self) -> int:
        """Data dimension."""
        return self.teacher.dim

    def _shift(self, n: int) -> torch.Tensor:
        return float(self.schedule.alpha[n]) * self.teacher.mean

    def noise_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r""":math:`z_N - \alpha_N\mu`."""
        return self.teacher.noise_sample(n, generator) - self._shift(self.steps)

    def step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""The teacher step in centred coordinates: :math:`\mathrm{step}(z + \alpha_n\mu) - \alpha_{n-1}\mu`."""
        return self.teacher.step(z + self._shift(n), n) - self._shift(n - 1)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""The teacher sampler in centred coordinates."""
        top = self.steps if top is None else int(top)
        return self.teacher.sample(z + self._shift(top), top, bottom) - self._shift(bottom)

    def exact_flow(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - guarded by the config check
        raise InputError("image teachers have no exact flow: use pairs='ddim'")


class ImageTrajectorySampler(torch.nn.Module):
    r"""``steps``-step sampler of a trained trajectory student in image coordinates: :math:`z_N \mapsto G(\ldots) + \mu`."""

    def __init__(self, net: torch.nn.Module, view: CentredTeacherView, steps: int) -> None:
        super().__init__()
        self.net, self.view, self.steps = net, view, int(steps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        with torch.no_grad():
            centred = self.net.sample(z - self.view._shift(self.view.steps), self.steps)
        return centred + self.view._shift(0)


def train_trajectory_student(teacher: ImageTeacher, config: TrajectoryConfig, seed: int = 0,
                             progress: bool = False, compile: str = "off") -> tuple[TrajectoryTrainer, CentredTeacherView]:
    """Train a SCoT / TraFlow student (:class:`experiments.trajectory.TrajectoryTrainer`) on the centred view of ``teacher``.

    Returns the trainer (its ``ema`` network is the student; ``history`` the losses) and the view;
    ``ImageTrajectorySampler(trainer.ema, view, k)`` samples images in ``k`` steps. ``compile``: as
    :class:`~experiments.trajectory.TrajectoryTrainer`.
    """
    if config.pairs != "ddim":
        raise InputError("image teachers have no exact flow: TrajectoryConfig.pairs must be 'ddim'")
    view = CentredTeacherView(teacher)
    trainer = TrajectoryTrainer(view, config, seed=seed, compile=compile)
    trainer.train(progress=progress)
    return trainer, view
