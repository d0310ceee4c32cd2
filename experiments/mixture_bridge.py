r"""Execute merge plans for real on Gaussian-mixture data: residual-MLP students trained by Adam
(docs/bridge_mixture.md §2).

The recipe is that of :mod:`experiments.executor` (docs/theory.md §3–4): the merge nodes of a plan run
in post-order; a node over :math:`j \to i` with children :math:`c_1, \dots, c_k` (noise side first) is a
student :math:`f` with input time :math:`j` trained on

.. math:: L(f) = \mathbb E_{z_j \sim p_j} \| f(z_j) - c_k \circ \cdots \circ c_1 (z_j) \|^2,
          \qquad p_j = \textstyle\sum_k \pi_k \mathcal N(\alpha_j\mu_k,\ \alpha_j^2 C_k + \sigma_j^2 I),

with Adam on fresh minibatches of :math:`p_j` (``x_0`` from the mixture, noised); a leaf ``n`` is the
exact teacher step :math:`n \to n-1` (:class:`~experiments.teacher.TeacherStep` of a
:class:`~experiments.mixture_teacher.TorchMixtureTeacher`). :class:`MixturePlanExecutor` is the
mixture case of :class:`~experiments.executor.PlanExecutorBase`, which owns the loop over the nodes
and the training loop; this module supplies the students, their start and the inputs.

Students: :class:`~experiments.students.ResidualMLP` (family ``mlp``):
:math:`f(z) = z B^\top + h(z)`, ``h`` an MLP of ``depth`` SiLU layers of width ``hidden`` whose output
layer starts at zero. A small width keeps its capacity limited, so merging many teacher steps into
one student costs approximation error, as the gated affine family of the core
(:func:`opmerge.mixture.simulate_plan`) predicts.

Start (``init``):

* ``warm`` (default) — the first child :math:`c_1`. A trained student is deep-copied. A teacher step
  is not an MLP, so the start is a student **pre-fitted** to that step: ``B`` and the output bias from
  the least-squares affine fit of the step on ``fit_samples`` draws of :math:`p_j`, then ``prefit_steps``
  Adam updates (step ``lr``, batch ``batch``) on fresh draws. A pre-fit depends only on the run
  seed and the step (not on the plan), so every plan that starts from leaf ``n`` starts from the
  same student (common random numbers); :attr:`MixturePlanExecutor.prefits` may be shared between
  executors to compute each once.
* ``ddim`` — a student pre-fitted the same way to the single DDIM jump :math:`j \to i`;
* ``identity`` / ``zero`` — :math:`B = I` / :math:`B = 0` and the MLP's output at zero.

:func:`measure_plan` compares the composed student with the teacher on common inputs
:math:`z_N \sim p_N` (MSE with its standard error, and the sample W2 of :func:`opmerge.mixture.w2_samples`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from opmerge.errors import InputError, InputTypeError
from opmerge.mixture import GaussianMixture, w2_samples
from opmerge.plans import MergeNode

from ._torch import derive_seed, make_generator
from .executor import ExecutedPlan, PlanExecutorBase, TrainConfig, _check_int
from .gaussian import GaussianData
from .mixture_teacher import TorchMixtureTeacher
from .students import ResidualMLP, build_student
from .teacher import TeacherJump, TeacherStep

__all__ = ["MIXTURE_FAMILIES", "MIXTURE_INITS", "MixtureTrainConfig", "MixturePlanExecutor", "moment_gaussian", "affine_fit",
           "node_loss", "measure_plan", "PlanMeasurement"]

MIXTURE_FAMILIES = ("mlp",)
MIXTURE_INITS = ("warm", "ddim", "identity", "zero")
#: the most points of the sample W2 (its assignment is O(n^3))
MAX_W2_POINTS = 4000


@dataclass(frozen=True)
class MixtureTrainConfig(TrainConfig):
    r"""How every merge node of a mixture plan is trained (:class:`~experiments.executor.TrainConfig` with the mixture's choices).

    Parameters
    ----------
    family : {"mlp"}
        :class:`~experiments.students.ResidualMLP` on all coordinates.
    optimizer : {"adam", "sgd"}
        No closed-form population loss exists for a mixture, so ``exact-gd`` is refused.
    lr : float
        Step size :math:`\eta` (per node, and of the pre-fits).
    steps : int
        Updates per merge node (the budget).
    batch : int
        Fresh draws of :math:`p_j` per update.
    init : {"warm", "ddim", "identity", "zero"}
    input : {"forward", "generated"}
    hidden, depth : int
        MLP width and hidden layers.
    prefit_steps : int
        Adam updates of a pre-fit (``warm`` from a teacher step, ``ddim``), ``>= 0``.
    fit_samples : int
        Draws of :math:`p_j` for the least-squares affine start of a pre-fit and for
        :func:`node_loss` (``>= 2``).
    """

    families: ClassVar[tuple] = MIXTURE_FAMILIES
    linear_families: ClassVar[tuple] = ()
    inits: ClassVar[tuple] = MIXTURE_INITS

    family: str = "mlp"
    optimizer: str = "adam"
    lr: float = 2e-3
    steps: int = 300
    batch: int = 256
    hidden: int = 16
    depth: int = 2
    prefit_steps: int = 1000
    fit_samples: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.prefit_steps, bool) or not isinstance(self.prefit_steps, (int, np.integer)) or self.prefit_steps < 0:
            raise InputError(f"prefit_steps must be an int >= 0, got {self.prefit_steps!r}")
        _check_int("fit_samples", self.fit_samples)
        if self.fit_samples < 2:
            raise InputError(f"fit_samples must be an int >= 2, got {self.fit_samples!r}")


def moment_gaussian(mixture: GaussianMixture) -> GaussianData:
    r"""The Gaussian with the mixture's mean-free covariance :math:`\Sigma` (eigenvalues and eigenvectors).

    :class:`~experiments.students.ResidualMLP` on all coordinates takes only the dimension from it.
    """
    lam, vec = np.linalg.eigh(mixture.covariance())
    return GaussianData(np.clip(lam, 0.0, None), vec)


def affine_fit(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Least-squares affine map :math:`y \approx z A^\top + b`: ``(A, b)`` with ``A`` of shape (d_out, d_in).

    Solved as :math:`\min_\Theta \|[z, 1]\Theta - y\|^2` by :func:`torch.linalg.lstsq` (``gelsd`` on the CPU).
    """
    ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
    design = torch.cat([z, ones], dim=1)
    driver = "gelsd" if z.device.type == "cpu" else None
    theta = torch.linalg.lstsq(design, y, driver=driver).solution
    return theta[:-1].T.contiguous(), theta[-1].contiguous()


def node_loss(student: Callable[[torch.Tensor], torch.Tensor], target: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> float:
    r""":math:`\frac1n\sum_b \|f(z_b) - P(z_b)\|^2` on fixed inputs (no gradients)."""
    with torch.no_grad():
        return float((student(inputs) - target(inputs)).pow(2).sum(dim=1).mean())


def _trainable(module: nn.Module) -> nn.Module:
    """``module`` with every parameter trainable and in training mode."""
    for p in module.parameters():
        p.requires_grad_(True)
    return module.train()


class MixturePlanExecutor(PlanExecutorBase):
    """The mixture case: residual-MLP students against a :class:`~experiments.mixture_teacher.TorchMixtureTeacher` (module docstring).

    Parameters
    ----------
    teacher : TorchMixtureTeacher
    config : MixtureTrainConfig
    seed : int
        Base seed: node ``v`` of plan ``p`` draws from ``derive_seed(seed, p, v)``, the pre-fit of a
        teacher step ``n`` from ``derive_seed(prefit_seed, "prefit", n, n - 1)``.
    prefits : dict, optional
        Pre-fitted students by ``(top, bottom, kind)``, shared with other executors of the same
        teacher, configuration and pre-fit seed (filled on first use).
    prefit_seed : int, optional
        Seed of the pre-fits (default ``seed``). Executors of different seeds that share
        ``prefits`` give the same students whichever of them ran first only when they share this.
    """

    config_type: ClassVar[type] = MixtureTrainConfig
    teacher_types: ClassVar[tuple] = (TorchMixtureTeacher,)

    def __init__(self, teacher: TorchMixtureTeacher, config: MixtureTrainConfig | None = None, seed: int = 0,
                 prefits: dict | None = None, prefit_seed: int | None = None, compile: str = "off") -> None:
        super().__init__(teacher, MixtureTrainConfig() if config is None else config, seed, compile)
        if prefits is not None and not isinstance(prefits, dict):
            raise InputTypeError(f"prefits must be a dict or None, got {type(prefits).__name__}")
        self.prefits: dict = {} if prefits is None else prefits
        if prefit_seed is not None and (isinstance(prefit_seed, bool) or not isinstance(prefit_seed, (int, np.integer)) or prefit_seed < 0):
            raise InputError(f"prefit_seed must be an int >= 0 or None, got {prefit_seed!r}")
        self.prefit_seed = self.seed if prefit_seed is None else int(prefit_seed)
        self.data = moment_gaussian(teacher.mixture)

    # ---- what the base class asks for ----------------------------------------------------------
    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""``forward``: :math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon`, :math:`x_0` from the mixture; ``generated``: the teacher run from :math:`z_N`."""
        t = self.teacher
        if self.config.input == "forward":
            return t.marginal_sample(top, n, generator)
        with torch.no_grad():
            return t.sample(t.noise_sample(n, generator), t.steps, top)

    def population_loss(self, student: nn.Module, target: nn.Module, node: MergeNode):  # pragma: no cover - refused by the config
        raise InputError("a mixture has no closed-form population loss: use optimizer 'adam' or 'sgd'")

    def start_student(self, node: MergeNode, first_child: nn.Module, generator: torch.Generator) -> nn.Module:
        """A trainable copy of the start operator of ``config.init`` (module docstring)."""
        t, init = self.teacher, self.config.init
        if init == "warm":
            if isinstance(first_child, ResidualMLP):
                return self._build(first_child, generator)
            if isinstance(first_child, TeacherStep):
                return _trainable(copy.deepcopy(self.prefit(first_child.n, first_child.n - 1, "step")))
            raise InputTypeError(f"a first child must be a trained student or a teacher step, got {type(first_child).__name__}")
        if init == "ddim":
            return _trainable(copy.deepcopy(self.prefit(node.top, node.bottom, "ddim")))
        matrix = (torch.eye if init == "identity" else torch.zeros)(t.dim, t.dim, dtype=t.dtype, device=t.device)
        return self._build(matrix, generator)

    # ---- pre-fits ------------------------------------------------------------------------------
    def _build(self, start, generator: torch.Generator) -> nn.Module:
        cfg, t = self.config, self.teacher
        return build_student(cfg.family, start, self.data, dtype=t.dtype, device=t.device, generator=generator,
                             hidden=cfg.hidden, depth=cfg.depth)

    def prefit(self, top: int, bottom: int, kind: str = "step") -> nn.Module:
        r"""The student pre-fitted to the teacher step ``top -> top - 1`` (``kind="step"``) or the DDIM jump ``top -> bottom``.

        Start: the least-squares affine fit on ``fit_samples`` draws of :math:`p_{top}` (``B`` and the
        MLP's output bias; hidden layers from the pre-fit's generator), then ``prefit_steps`` Adam
        updates on fresh draws. Cached in :attr:`prefits`; returned frozen (copy it to train it).
        """
        key = (int(top), int(bottom), kind)
        if key not in self.prefits:
            t, cfg = self.teacher, self.config
            target: nn.Module = TeacherStep(t, top) if kind == "step" else TeacherJump(t, top, bottom)
            gen = make_generator(derive_seed(self.prefit_seed, "prefit", kind, top, bottom), t.device)
            z = self.draw_inputs(top, cfg.fit_samples, gen)
            with torch.no_grad():
                matrix, bias = affine_fit(z, target(z))
            student = self._build(matrix, gen)
            with torch.no_grad():
                student.mlp.out_bias.copy_(bias.reshape(student.mlp.out_bias.shape))
            if cfg.prefit_steps:
                self._fit(student, target, top, cfg.prefit_steps, gen)
            for p in student.parameters():
                p.requires_grad_(False)
            self.prefits[key] = student.eval()
        return self.prefits[key]

    def _fit(self, student: nn.Module, target: nn.Module, top: int, steps: int, gen: torch.Generator) -> list[float]:
        for p in student.parameters():
            p.requires_grad_(True)
        return self.fit(student, target, top, steps, gen)

    def train_node(self, node: MergeNode, children: list[nn.Module], label: str = "") -> tuple[nn.Module, dict]:
        r"""The base class's training, and the record's ``heldout_loss``: :func:`node_loss` on ``fit_samples``
        fixed draws of :math:`p_j` (``derive_seed(seed, "heldout", top, bottom)``, the same for every plan)."""
        student, record = super().train_node(node, children, label)
        t = self.teacher
        gen = make_generator(derive_seed(self.seed, "heldout", node.top, node.bottom), t.device)
        inputs = self.draw_inputs(node.top, self.config.fit_samples, gen)

        def target(z: torch.Tensor) -> torch.Tensor:
            for child in children:
                z = child(z)
            return z

        record["heldout_loss"] = node_loss(student, target, inputs)
        return student, record


@dataclass(frozen=True)
class PlanMeasurement:
    r"""A plan's executed sampler against the teacher on common inputs :math:`z_N`.

    Attributes
    ----------
    mse : float
        :math:`\frac1n\sum_b \|S(z_b) - T(z_b)\|^2`, ``n`` common inputs :math:`z_b \sim p_N`.
    mse_se : float
        Its standard error :math:`\mathrm{sd}_b / \sqrt n`.
    w2 : float
        :func:`opmerge.mixture.w2_samples` between the first ``w2_points`` student and teacher outputs
        (the optimal assignment between the two empirical measures).
    w2_points : int
    """

    mse: float
    mse_se: float
    w2: float
    w2_points: int

    def to_dict(self) -> dict:
        return {"mse": self.mse, "mse_se": self.mse_se, "w2": self.w2, "w2_points": self.w2_points}


def measure_plan(executed: ExecutedPlan, inputs: torch.Tensor, teacher_outputs: torch.Tensor, w2_points: int = 1000) -> tuple[PlanMeasurement, torch.Tensor]:
    r"""MSE and sample W2 of an executed plan against the teacher's outputs on the same inputs.

    Parameters
    ----------
    executed : ExecutedPlan
    inputs : tensor (n, d)
        Common inputs :math:`z_N \sim p_N`.
    teacher_outputs : tensor (n, d)
        :math:`T(N \to 0)` of ``inputs``.
    w2_points : int
        Points of the sample W2, 2 to 4000 (at most ``n``).

    Returns
    -------
    (PlanMeasurement, tensor (n, d))
        The numbers and the student's outputs.
    """
    if not isinstance(executed, ExecutedPlan):
        raise InputTypeError(f"executed must be an ExecutedPlan, got {type(executed).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 2 or inputs.shape[0] < 2:
        raise InputError("inputs must be a tensor of shape (n >= 2, d)")
    if not isinstance(teacher_outputs, torch.Tensor) or teacher_outputs.shape != inputs.shape:
        raise InputError(f"teacher_outputs must be a tensor of the inputs' shape {tuple(inputs.shape)}")
    if isinstance(w2_points, bool) or not isinstance(w2_points, (int, np.integer)) or not 2 <= w2_points <= MAX_W2_POINTS:
        raise InputError(f"w2_points must be an int in [2, {MAX_W2_POINTS}], got {w2_points!r}")
    with torch.no_grad():
        out = executed.sampler()(inputs)
    sq = (out - teacher_outputs).pow(2).sum(dim=1).double().cpu().numpy()
    count = min(int(w2_points), inputs.shape[0])
    a = out[:count].double().cpu().numpy()
    b = teacher_outputs[:count].double().cpu().numpy()
    measurement = PlanMeasurement(float(sq.mean()), float(sq.std(ddof=1) / math.sqrt(sq.size)), w2_samples(a, b), count)
    return measurement, out
