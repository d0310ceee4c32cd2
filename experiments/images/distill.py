r"""Plan students on image data: a merge plan executed as distillation runs against any image teacher.

The recipe is that of :mod:`experiments.executor` (THEORY.md §3–4; BRIDGE.md §1): nodes run in
post-order; a node over :math:`j \to i` with children :math:`c_1..c_k` trains a student with input
time ``j`` on :math:`\mathbb E\|f(z_j) - c_k\circ\cdots\circ c_1(z_j)\|^2`; a leaf ``n`` is the teacher's
DDIM step :math:`n \to n-1`. That executor is written for the centred, linear
:class:`~experiments.teacher.GaussianTeacher`; this one accepts any
:class:`~experiments.images.teachers.ImageTeacher` (a nonlinear trained teacher, data with a mean),
takes its inputs from the real training images and has two student families:

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
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from opmerge.plans import MergeNode, Plan, format_plan, format_tree, parse_plan

from .._torch import derive_seed
from ..executor import ComposedSampler
from .teachers import GaussianImageTeacher, ImageTeacher

__all__ = ["IMAGE_FAMILIES", "IMAGE_OPTIMIZERS", "IMAGE_INITS", "ImageTrainConfig", "AffineStudent", "DenoiserStudent",
           "TeacherStepModule", "TeacherJumpModule", "ImageExecutedPlan", "ImagePlanExecutor", "ddim_coefficients"]

IMAGE_FAMILIES = ("affine", "denoiser")
IMAGE_OPTIMIZERS = ("exact-gd", "sgd", "adam")
IMAGE_INITS = ("warm", "ddim")
IMAGE_INPUTS = ("forward", "generated")
AFFINE_FIT_INPUTS = 4096


@dataclass(frozen=True)
class ImageTrainConfig:
    r"""How every merge node of an image plan is trained.

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

    family: str = "denoiser"
    optimizer: str = "adam"
    lr: float = 1e-4
    steps: int = 100
    batch: int = 256
    init: str = "warm"
    input: str = "forward"

    def __post_init__(self) -> None:
        for label, value, allowed in (("family", self.family, IMAGE_FAMILIES), ("optimizer", self.optimizer, IMAGE_OPTIMIZERS),
                                      ("init", self.init, IMAGE_INITS), ("input", self.input, IMAGE_INPUTS)):
            if value not in allowed:
                raise ValueError(f"{label} must be one of {', '.join(allowed)}, got {value!r}")
        if self.optimizer == "exact-gd" and self.family != "affine":
            raise ValueError("optimizer 'exact-gd' needs the affine family (a closed-form population loss)")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        for label in ("steps", "batch"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        object.__setattr__(self, "lr", float(self.lr))

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


def ddim_coefficients(teacher: ImageTeacher, top: int, bottom: int) -> tuple[float, float]:
    r"""``(a, c)`` of the DDIM update :math:`z_i = a z_j + c\hat x_0`: :math:`a = \sigma_i/\sigma_j`, :math:`c = \alpha_i - \sigma_i\alpha_j/\sigma_j`."""
    a_j, s_j = teacher.coef(top)
    a_i, s_i = teacher.coef(bottom)
    return s_i / s_j, a_i - s_i * a_j / s_j


class TeacherStepModule(nn.Module):
    """The teacher step ``n -> n - 1`` as a parameter-free module (a leaf of a plan)."""

    def __init__(self, teacher: ImageTeacher, n: int) -> None:
        super().__init__()
        self.teacher, self.n = teacher, int(n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        with torch.no_grad():
            return self.teacher.step(z, self.n)


class TeacherJumpModule(nn.Module):
    r"""The teacher's single DDIM jump :math:`j \to i` as a module (the ``ddim`` start of an affine student)."""

    def __init__(self, teacher: ImageTeacher, top: int, bottom: int) -> None:
        super().__init__()
        self.teacher, self.top, self.bottom = teacher, int(top), int(bottom)

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


@dataclass(eq=False)
class ImageExecutedPlan:
    """A plan after training: node students, segment operators, per-node records.

    Attributes
    ----------
    plan : Plan
    teacher : ImageTeacher
    config : ImageTrainConfig
    nodes : dict                 node text -> trained student module
    segments : list of nn.Module segment operators, noise side first
    records : list of dict       per node: ``node``, ``top``, ``bottom``, ``loss_start``, ``loss_end``
    """

    plan: Plan
    teacher: ImageTeacher
    config: ImageTrainConfig
    nodes: dict = field(default_factory=dict)
    segments: list = field(default_factory=list)
    records: list = field(default_factory=list)

    def sampler(self) -> ComposedSampler:
        r"""The student sampler :math:`z_N \mapsto` sample."""
        return ComposedSampler(self.segments)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.sampler()(z)


class ImagePlanExecutor:
    """Run merge plans on image data against an :class:`ImageTeacher` (module docstring).

    Parameters
    ----------
    teacher : ImageTeacher
    config : ImageTrainConfig
    seed : int      base seed; node ``v`` of plan ``p`` uses ``derive_seed(seed, p, v)``
    """

    def __init__(self, teacher: ImageTeacher, config: ImageTrainConfig, seed: int = 0) -> None:
        if not isinstance(teacher, ImageTeacher):
            raise TypeError(f"teacher must be an ImageTeacher, got {type(teacher).__name__}")
        if not isinstance(config, ImageTrainConfig):
            raise TypeError(f"config must be an ImageTrainConfig, got {type(config).__name__}")
        if config.optimizer == "exact-gd" and not isinstance(teacher, GaussianImageTeacher):
            raise ValueError("optimizer 'exact-gd' needs the Gaussian teacher (the trained teacher's population loss has no closed form)")
        if teacher.train is None:
            raise ValueError("the teacher must hold its training rows (teacher.train) for the node inputs")
        self.teacher, self.config, self.seed = teacher, config, int(seed)
        self._linear = isinstance(teacher, GaussianImageTeacher)

    # ---- inputs ----------------------------------------------------------------------------
    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Node inputs :math:`z_j`: forward process on training rows, or the teacher run from :math:`z_N` (``generated``)."""
        t = self.teacher
        if self.config.input == "forward":
            idx = torch.randint(t.train.shape[0], (int(n),), generator=generator, device=generator.device)
            return t.forward_sample(top, t.train[idx.to(t.device)], generator)
        return t.sample(t.noise_sample(int(n), generator), t.steps, top)

    def input_moments(self, top: int) -> torch.Tensor:
        r"""Population covariance :math:`Q_j` of the node inputs (``forward``: :math:`\alpha_j^2\Sigma + \sigma_j^2 I`;
        ``generated``: :math:`T_{N\to j} (\alpha_N^2\Sigma + \sigma_N^2 I) T_{N\to j}^\top`, Gaussian teacher only)."""
        t = self.teacher
        sigma = torch.as_tensor(np.array(t.fit.covariance), dtype=t.dtype, device=t.device)
        eye = torch.eye(t.dim, dtype=t.dtype, device=t.device)

        def cov(n):
            a, s = t.coef(n)
            return a**2 * sigma + s**2 * eye

        if self.config.input == "forward":
            return cov(top)
        down, _ = self._affine_exact(lambda z: t.sample(z, t.steps, top), float(t.schedule.alpha[-1]) * t.mean)
        return down @ cov(t.steps) @ down.T

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
    def _student(self, node: MergeNode, first_child: nn.Module, generator: torch.Generator) -> nn.Module:
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
            first_bottom = first_child.n - 1 if isinstance(first_child, TeacherStepModule) else i
            a, c = ddim_coefficients(t, j, first_bottom)
        else:
            a, c = ddim_coefficients(t, j, i)
        alpha, sigma = t.coef(j)
        return DenoiserStudent(t.denoiser_module(alpha, sigma), a, c)

    def train_node(self, node: MergeNode, children: list[nn.Module], label: str = "") -> tuple[nn.Module, dict]:
        """Train the student of one merge node to reproduce the composite of ``children``; returns it and its record."""
        t, cfg = self.teacher, self.config
        gen = torch.Generator().manual_seed(derive_seed(self.seed, label, format_tree(node)))
        student = self._student(node, children[0], gen)
        for p in student.parameters():
            p.requires_grad_(True)
        target = ComposedSampler(children)
        for p in target.parameters():
            p.requires_grad_(False)
        params = [p for p in student.parameters() if p.requires_grad]
        losses: list[float] = []
        if cfg.optimizer == "exact-gd":
            q = self.input_moments(node.top)
            p_matrix, p_offset = self._affine_exact(target, student.shift)

            def population_loss() -> torch.Tensor:
                diff = student.weight - p_matrix
                return torch.trace(diff @ q @ diff.T) + (student.bias - p_offset).pow(2).sum()

            for _ in range(cfg.steps):
                loss = population_loss()
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.sub_(cfg.lr * g)
                losses.append(float(loss.detach()))
            with torch.no_grad():
                losses.append(float(population_loss()))
        else:
            opt = torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam" else None
            for _ in range(cfg.steps):
                z = self.draw_inputs(node.top, cfg.batch, gen)
                with torch.no_grad():
                    y = target(z)
                loss = (student(z) - y).pow(2).sum(dim=1).mean()
                if opt is None:
                    grads = torch.autograd.grad(loss, params)
                    with torch.no_grad():
                        for p, g in zip(params, grads):
                            p.sub_(cfg.lr * g)
                else:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                losses.append(float(loss.detach()))
        for p in student.parameters():
            p.requires_grad_(False)
        student.eval()
        record = {"node": format_tree(node), "top": node.top, "bottom": node.bottom, "loss_start": losses[0], "loss_end": losses[-1]}
        return student, record

    def run(self, plan: Plan | str, progress: bool = False) -> ImageExecutedPlan:
        """Train every merge node of ``plan`` bottom-up and return the executed plan."""
        t = self.teacher
        if isinstance(plan, str):
            plan = parse_plan(plan, t.steps)
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a Plan or its text, got {type(plan).__name__}")
        if plan.steps != t.steps:
            raise ValueError(f"plan is for N = {plan.steps} steps but the teacher has N = {t.steps}")
        label = format_plan(plan)
        executed = ImageExecutedPlan(plan=plan, teacher=t, config=self.config)
        trained: dict[MergeNode, nn.Module] = {}

        def module_of(tree) -> nn.Module:
            return trained[tree] if isinstance(tree, MergeNode) else TeacherStepModule(t, tree)

        nodes = plan.merge_nodes()
        iterator = nodes
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(nodes, desc=f"plan {label}", leave=False)
        for node in iterator:
            student, record = self.train_node(node, [module_of(c) for c in node.children], label)
            trained[node] = student
            executed.nodes[format_tree(node)] = student
            executed.records.append(record)
        executed.segments = [module_of(seg) for seg in plan.segments]
        return executed
