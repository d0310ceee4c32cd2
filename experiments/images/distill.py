r"""Plan students on image data: a merge plan executed as distillation runs against any image teacher.

The recipe is that of :mod:`experiments.executor` (docs/theory.md §3–4; docs/bridge.md §1): nodes run in
post-order; a node over :math:`j \to i` with children :math:`c_1..c_k` trains a student with input
time ``j`` on :math:`\mathbb E\|f(z_j) - c_k\circ\cdots\circ c_1(z_j)\|^2`; a leaf ``n`` is the teacher's
DDIM step :math:`n \to n-1`. :class:`ImagePlanExecutor` is the image case of
:class:`~experiments.executor.PlanExecutorBase` (which owns the run over the nodes and the training
loop): it accepts the Gaussian teacher with a mean (:class:`~experiments.teacher.GaussianTeacher`)
and any image teacher (a nonlinear trained teacher), takes its inputs from the real training images
and has two student families:

* ``affine`` — :math:`f(z) = (z - \alpha_j\mu)A^\top + b` (:class:`AffineStudent`). Centring at the
  input mean :math:`\alpha_j\mu` decouples ``A`` from ``b``: the gradient of the population loss in ``A``
  is :math:`2(A - P)Q_j` with :math:`Q_j = \alpha_j^2\Sigma + \sigma_j^2 I` (forward inputs), so against the
  Gaussian teacher gradient descent with step :math:`\eta` gives, per eigen-direction, exactly the
  model's ``training='gd'`` value :math:`a = P + (a_0 - P)(1 - 2\eta q_j)^K` (``exact-gd``), and the
  same in expectation with ``sgd`` on minibatches of real digits (same first two moments).
  Start operators that are not affine (a trained teacher's step) are replaced by their
  least-squares affine fit on 4,096 node inputs.
* ``denoiser`` — the teacher's own denoiser network used for one DDIM update,
  :math:`f(z) = a\,z + c\,D_\theta(z)` with fixed :math:`(a, c) = (\sigma_k/\sigma_j,\ \alpha_k - \sigma_k\alpha_j/\sigma_j)`
  of a jump :math:`j \to k` (:class:`DenoiserStudent`). ``warm`` init: a copy of the first child
  (a teacher step: its coefficients :math:`j \to j-1` and a trainable copy of the teacher's denoiser at
  level ``j``; a trained student: deep copy), so :math:`f_0 = c_1` exactly; ``ddim`` init: the
  coefficients of :math:`j \to i` and the teacher's denoiser, :math:`f_0 = D(j \to i)`. For the
  trained teacher :math:`D_\theta` is a copy of the MLP at a fixed noise level (nonlinear); for the
  Gaussian teacher it is its affine denoiser.

Optimisers: ``exact-gd`` (affine family, Gaussian teacher: the closed-form population gradient),
``sgd`` (plain minibatch steps) and ``adam``. Inputs: ``forward`` (:math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon`,
:math:`x_0` uniform over the training images) or ``generated`` (the teacher run from :math:`z_N`).
Every node draws from its own generator seeded from the run seed, the plan and the node.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from opmerge.errors import InputError
from opmerge.plans import MergeNode, format_tree

from .._torch import derive_seed
from ..executor import ExecutedPlan, PlanExecutorBase, TrainConfig
from ..teacher import GaussianTeacher, TeacherJump, TeacherStep
from ..training import OPTIMIZERS
from .teachers import ImageTeacher

__all__ = ["IMAGE_FAMILIES", "IMAGE_OPTIMIZERS", "IMAGE_INITS", "ImageTrainConfig", "AffineStudent", "DenoiserStudent",
           "TeacherStepModule", "TeacherJumpModule", "ImageExecutedPlan", "ImagePlanExecutor", "ddim_coefficients"]

IMAGE_FAMILIES = ("affine", "denoiser")
IMAGE_INITS = ("warm", "ddim")
#: the optimisers and inputs are those of the Gaussian case (one table, :mod:`experiments.training`, :mod:`opmerge.model`)
IMAGE_OPTIMIZERS = OPTIMIZERS
AFFINE_FIT_INPUTS = 4096


@dataclass(frozen=True)
class ImageTrainConfig(TrainConfig):
    r"""How every merge node of an image plan is trained: :class:`~experiments.executor.TrainConfig` with the
    image families and defaults.

    Parameters
    ----------
    family : {"affine", "denoiser"}
    optimizer : {"exact-gd", "sgd", "adam"}     ``exact-gd``: affine family and Gaussian teacher only
    lr : float                                   step size :math:`\eta > 0`
    steps : int                                  updates per node :math:`K`
    batch : int                                  minibatch size (``sgd``, ``adam``)
    init : {"warm", "ddim"}
    input : {"forward", "generated"}
    """

    families: ClassVar[tuple] = IMAGE_FAMILIES
    linear_families: ClassVar[tuple] = ("affine",)
    inits: ClassVar[tuple] = IMAGE_INITS

    family: str = "denoiser"
    optimizer: str = "adam"
    lr: float = 1e-4
    steps: int = 100

    def to_dict(self) -> dict:
        """JSON-friendly dict (without the MLP sizes, which the image families do not use)."""
        out = asdict(self)
        out.pop("hidden")
        out.pop("depth")
        return out


def ddim_coefficients(teacher, top: int, bottom: int) -> tuple[float, float]:
    r"""``(a, c)`` of the DDIM update :math:`z_i = a z_j + c\hat x_0`: :math:`a = \sigma_i/\sigma_j`, :math:`c = \alpha_i - \sigma_i\alpha_j/\sigma_j`."""
    a_j, s_j = teacher.coef(top)
    a_i, s_i = teacher.coef(bottom)
    return s_i / s_j, a_i - s_i * a_j / s_j


class TeacherStepModule(TeacherStep):
    """The teacher step ``n -> n - 1`` (a leaf of a plan), evaluated without gradients."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        with torch.no_grad():
            return self.teacher.step(z, self.n)


class TeacherJumpModule(TeacherJump):
    r"""The teacher's single DDIM jump :math:`j \to i` (the ``ddim`` start of an affine student), without gradients."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        with torch.no_grad():
            return self.teacher.ddim_jump(z, self.top, self.bottom)


class AffineStudent(nn.Module):
    r"""Affine student :math:`f(z) = (z - s)A^\top + b` with the input centre :math:`s = \alpha_j\mu` fixed (a buffer)."""

    def __init__(self, matrix: torch.Tensor, bias: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(matrix.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (z - self.shift) @ self.weight.T + self.bias


class DenoiserStudent(nn.Module):
    r"""One DDIM update with a trainable denoiser: :math:`f(z) = a z + c D_\theta(z)` (``a``, ``c`` fixed)."""

    def __init__(self, denoiser: nn.Module, a: float, c: float) -> None:
        super().__init__()
        self.denoiser, self.a, self.c = denoiser, float(a), float(c)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.a * z + self.c * self.denoiser(z)

    def extra_repr(self) -> str:
        return f"a={self.a:.6g}, c={self.c:.6g}"


#: an executed image plan is an :class:`~experiments.executor.ExecutedPlan` (one record family)
ImageExecutedPlan = ExecutedPlan


class ImagePlanExecutor(PlanExecutorBase):
    """Run merge plans on image data (module docstring): the image case of :class:`~experiments.executor.PlanExecutorBase`.

    Parameters
    ----------
    teacher : GaussianTeacher (with a mean and training rows) or ImageTeacher
        Must hold its training rows (``teacher.train``) for the node inputs.
    config : ImageTrainConfig
    seed : int      base seed; node ``v`` of plan ``p`` uses ``derive_seed(seed, p, v)``
    """

    config_type = ImageTrainConfig
    teacher_types = (ImageTeacher, GaussianTeacher)

    def __init__(self, teacher, config: ImageTrainConfig, seed: int = 0, compile: str = "off") -> None:
        super().__init__(teacher, config, seed, compile)
        self._linear = getattr(teacher, "kind", None) == "gaussian"
        if config.optimizer == "exact-gd" and not self._linear:
            raise InputError("optimizer 'exact-gd' needs the Gaussian teacher (the trained teacher's population loss has no closed form)")
        if teacher.train is None:
            raise InputError("the teacher must hold its training rows (teacher.train) for the node inputs")

    # ---- the case's leaves, inputs and losses ------------------------------------------------
    def leaf(self, n: int) -> nn.Module:
        """:class:`TeacherStepModule` (no gradients through the teacher)."""
        return TeacherStepModule(self.teacher, n)

    def node_generator(self, label: str, node: MergeNode) -> torch.Generator:
        """A CPU generator (inputs are drawn on the CPU and moved: the same numbers on every device)."""
        return torch.Generator().manual_seed(derive_seed(self.seed, label, format_tree(node)))

    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Node inputs :math:`z_j`: forward process on training rows, or the teacher run from :math:`z_N` (``generated``)."""
        t = self.teacher
        if self.config.input == "forward":
            idx = torch.randint(t.train.shape[0], (int(n),), generator=generator, device=generator.device)
            return t.forward_sample(top, t.train[idx.to(t.device)], generator)
        with torch.no_grad():
            return t.sample(t.noise_sample(int(n), generator), t.steps, top)

    def forward_covariance(self, index: int) -> torch.Tensor:
        r""":math:`\alpha_j^2\Sigma + \sigma_j^2 I` with :math:`\Sigma` the fitted covariance of the images."""
        t = self.teacher
        fit = getattr(t, "fit", None)
        cov = np.array(fit.covariance) if fit is not None and hasattr(fit, "covariance") else t.data.covariance()
        sigma = torch.as_tensor(cov, dtype=t.dtype, device=t.device)
        a, s = t.coef(index)
        return a**2 * sigma + s**2 * torch.eye(t.dim, dtype=t.dtype, device=t.device)

    def affine_part(self, fn, index: int) -> torch.Tensor:
        r"""Matrix of an affine map of inputs at ``index``, read around :math:`\alpha_j\mu`."""
        return self._affine_exact(fn, self.teacher.coef(index)[0] * self.teacher.mean)[0]

    def input_moments(self, top: int) -> torch.Tensor:
        """Population covariance :math:`Q_j` of the node inputs (:meth:`input_covariance`)."""
        return self.input_covariance(top)

    def population_loss(self, student: nn.Module, target: nn.Module, node: MergeNode) -> Callable[[], torch.Tensor]:
        r""":math:`\operatorname{tr}\big((A - P)Q_j(A - P)^\top\big) + \|b - p\|^2` for the affine student around :math:`\alpha_j\mu`."""
        q = self.input_covariance(node.top)
        p_matrix, p_offset = self._affine_exact(target, student.shift)

        def loss() -> torch.Tensor:
            diff = student.weight - p_matrix
            return torch.trace(diff @ q @ diff.T) + (student.bias - p_offset).pow(2).sum()

        return loss

    # ---- affine readings -------------------------------------------------------------------
    def _affine_exact(self, fn, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Matrix and offset of an affine map around ``shift``: ``f(z) = (z - shift) A^T + f(shift)``."""
        t = self.teacher
        eye = torch.eye(t.dim, dtype=t.dtype, device=t.device)
        with torch.no_grad():
            base = fn(shift.unsqueeze(0))
            cols = fn(shift.unsqueeze(0) + eye) - base
        return cols.T.contiguous(), base.squeeze(0)

    def _affine_fit(self, fn, top: int, shift: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Least-squares affine fit of ``fn`` on node inputs at ``top`` (for non-affine start operators)."""
        z = self.draw_inputs(top, AFFINE_FIT_INPUTS, generator)
        with torch.no_grad():
            y = fn(z)
        x = torch.cat([z - shift, torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)], dim=1)
        sol = torch.linalg.lstsq(x.double().cpu(), y.double().cpu()).solution.to(dtype=z.dtype, device=z.device)
        return sol[:-1].T.contiguous(), sol[-1]

    # ---- students --------------------------------------------------------------------------
    def start_student(self, node: MergeNode, first_child: nn.Module, generator: torch.Generator) -> nn.Module:
        """An :class:`AffineStudent` or :class:`DenoiserStudent` that starts as ``config.init`` prescribes (module docstring)."""
        t, cfg = self.teacher, self.config
        j, i = node.top, node.bottom
        if cfg.family == "affine":
            if cfg.init == "warm" and isinstance(first_child, AffineStudent):
                return copy.deepcopy(first_child)
            start = first_child if cfg.init == "warm" else TeacherJumpModule(t, j, i)
            shift = float(t.schedule.alpha[j]) * t.mean
            matrix, bias = self._affine_exact(start, shift) if self._linear else self._affine_fit(start, j, shift, generator)
            return AffineStudent(matrix, bias, shift)
        if cfg.init == "warm" and isinstance(first_child, DenoiserStudent):
            return copy.deepcopy(first_child)
        if cfg.init == "warm":
            first_bottom = first_child.n - 1 if isinstance(first_child, TeacherStep) else i
            a, c = ddim_coefficients(t, j, first_bottom)
        else:
            a, c = ddim_coefficients(t, j, i)
        alpha, sigma = t.coef(j)
        return DenoiserStudent(t.denoiser_module(alpha, sigma), a, c)

    _student = start_student
