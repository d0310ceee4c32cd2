r"""Execute a merge plan for real: one distillation run per merge node, bottom-up (docs/theory.md §3–4; docs/bridge.md §1).

A merge node over :math:`j \to i` with children :math:`c_1, \dots, c_k` (noise side first) is a
student with input time ``j`` trained to reproduce the composite :math:`P = c_k \circ \cdots \circ c_1`
on the loss

.. math:: L(f) = \mathbb E_{z_j} \| f(z_j) - P(z_j) \|^2 .

Nodes run in post-order (:meth:`opmerge.plans.Plan.merge_nodes`), so every child is trained
before its parent; a leaf ``n`` is the teacher step :math:`n \to n-1`
(:class:`~experiments.teacher.TeacherStep`). The student starts from (docs/theory.md §4):

* ``warm`` (default) — the operator currently in use at time ``j``, i.e. the first child ``c_1``
  (a trained student is deep-copied; a teacher step is read back as its matrix);
* ``ddim`` — the single DDIM jump :math:`D(j\to i)`; ``zero`` — the zero map; ``identity``.

Inputs :math:`z_j`: ``forward`` — :math:`\alpha_j x_0 + \sigma_j \varepsilon`; ``generated`` — the
teacher run from :math:`z_N` down to ``j`` (data-free, as BOOT).

Optimisers (per node: ``steps`` updates of size ``lr``):

* ``exact-gd`` — gradient descent on the population loss in closed form (linear families only):
  :math:`L(A) = \operatorname{tr}\big((A - P)\, Q_j\, (A - P)^\top\big)`, :math:`Q_j` the input
  covariance (``forward``: :math:`\alpha_j^2 \Sigma + \sigma_j^2 I`; ``generated``:
  :math:`T_{N\to j}\,\mathrm{Cov}(z_N)\,T_{N\to j}^\top`), update :math:`A \leftarrow A - \eta \nabla L`.
  In the eigenbasis this is :math:`a \leftarrow a - 2\eta q_j (a - P)`, so after ``K`` steps
  :math:`a = P + (a_0 - P)(1 - 2\eta q_j)^K`: the model's ``training='gd'`` (:func:`core_model`).
* ``sgd`` — the same update with the minibatch loss :math:`\frac1B\sum_b\|f(z_b) - P(z_b)\|^2`
  (fresh batch every step, no momentum); unbiased for the exact gradient.
* ``adam`` — :class:`torch.optim.Adam` on the minibatch loss (no closed form).

Randomness: every node draws from its own generator, seeded by
:func:`~experiments._torch.derive_seed` from the run seed, the plan and the node, so two nodes never
share batches (the children of a node are independent of its batches).

Design: :class:`PlanExecutorBase` owns the run over the plan's merge nodes (post-order, warm start,
records) and the one training loop (:mod:`experiments.training`); a case supplies only its leaves
(:meth:`PlanExecutorBase.leaf`), its start students (:meth:`PlanExecutorBase.start_student`), its inputs
(:meth:`PlanExecutorBase.draw_inputs`) and its population loss for ``exact-gd``
(:meth:`PlanExecutorBase.population_loss`). :class:`GaussianPlanExecutor` is the Gaussian case (this
module); :class:`experiments.images.distill.ImagePlanExecutor` the image case.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from opmerge.errors import InputError, InputTypeError
from opmerge.model import INITS, INPUTS, StudentModel
from opmerge.plans import MergeNode, Plan, format_plan, format_tree, parse_plan

from ._torch import check_compile_mode, compiled, derive_seed, make_generator
from .students import FAMILIES, LINEAR_FAMILIES, build_student
from .teacher import GaussianTeacher, TeacherJump, TeacherStep, eigen_gains, operator_matrix
from .training import OPTIMIZERS, GradientStepper, run_updates

__all__ = ["OPTIMIZERS", "INPUTS", "INITS", "TrainConfig", "ExecutedPlan", "PlanExecutorBase", "GaussianPlanExecutor", "PlanExecutor", "core_model",
           "execute_plan", "ComposedSampler", "node_record"]


def _check_int(label: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{label} must be an int >= 1, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    r"""How every merge node is trained (the Gaussian case; :class:`~experiments.images.distill.ImageTrainConfig`
    is the same class with the image families and defaults).

    Parameters
    ----------
    family : {"diagonal", "full", "mlp", "mlp-separable"}
    optimizer : {"exact-gd", "sgd", "adam"}
        ``exact-gd`` needs a linear family.
    lr : float
        Step size :math:`\eta > 0` (per node).
    steps : int
        Updates per node :math:`K \ge 1` (the per-node budget).
    batch : int
        Minibatch size for ``sgd``/``adam``.
    init : {"warm", "ddim", "zero", "identity"}
        The core's :data:`opmerge.model.INITS`.
    input : {"forward", "generated"}
        The core's :data:`opmerge.model.INPUTS`.
    hidden, depth : int
        MLP width and number of hidden layers.
    """

    #: the student families this configuration accepts, and which of them are linear (``exact-gd``)
    families: ClassVar[tuple] = FAMILIES
    linear_families: ClassVar[tuple] = LINEAR_FAMILIES
    inits: ClassVar[tuple] = INITS

    family: str = "diagonal"
    optimizer: str = "exact-gd"
    lr: float = 0.02
    steps: int = 25
    batch: int = 256
    init: str = "warm"
    input: str = "forward"
    hidden: int = 32
    depth: int = 2

    def __post_init__(self) -> None:
        for label, value, allowed in (("family", self.family, self.families), ("optimizer", self.optimizer, OPTIMIZERS),
                                      ("init", self.init, self.inits), ("input", self.input, INPUTS)):
            if value not in allowed:
                raise InputError(f"{label} must be one of {', '.join(allowed)}, got {value!r}")
        if self.optimizer == "exact-gd" and self.family not in self.linear_families:
            raise InputError(f"optimizer 'exact-gd' needs a linear family ({', '.join(self.linear_families)}), got {self.family!r}")
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a finite number > 0, got {self.lr!r}")
        for label in ("steps", "batch", "hidden", "depth"):
            _check_int(label, getattr(self, label))
        object.__setattr__(self, "lr", float(self.lr))

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        return asdict(self)


def core_model(config: TrainConfig) -> StudentModel:
    r"""The core's student model with the same budget: ``StudentModel(training='gd', lr=η, gd_steps=K, init, input)``.

    Its closed form :math:`a = P + (a_0 - P)(1 - 2\eta q_j)^K` is what ``exact-gd`` must reproduce.
    """
    return StudentModel(training="gd", lr=config.lr, gd_steps=config.steps, init=config.init, input=config.input)


class ComposedSampler(nn.Module):
    r"""Segment students applied in order (noise side first): :math:`z_N \mapsto f_M(\cdots f_1(z_N))`."""

    def __init__(self, segments: list[nn.Module]) -> None:
        super().__init__()
        self.segments = nn.ModuleList(segments)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for module in self.segments:
            z = module(z)
        return z


def node_record(node: MergeNode, losses: list[float]) -> dict:
    """The record of one trained node: ``node`` (text), ``top``, ``bottom``, ``loss_start``, ``loss_end``."""
    return {"node": format_tree(node), "top": node.top, "bottom": node.bottom, "loss_start": losses[0], "loss_end": losses[-1]}


@dataclass(eq=False)
class ExecutedPlan:
    """A plan after training (both cases).

    Attributes
    ----------
    plan : Plan
    teacher : GaussianTeacher or image teacher
    config : TrainConfig
    nodes : dict
        Node text (``format_tree``) -> trained student (``nn.Module``).
    segments : list of nn.Module
        The operator of every segment root (a student, or a teacher step for a one-leaf segment).
    records : list of dict
        One per node in training order (:func:`node_record`).
    """

    plan: Plan
    teacher: object
    config: TrainConfig
    nodes: dict = field(default_factory=dict)
    segments: list = field(default_factory=list)
    records: list = field(default_factory=list)

    def sampler(self) -> ComposedSampler:
        """The student sampler :math:`z_N \\mapsto` sample (the segment roots composed)."""
        return ComposedSampler(self.segments)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.sampler()(z)

    def matrix(self) -> torch.Tensor:
        r"""Matrix of the composed sampler (linear families; around :math:`\alpha_N\mu` when the data have a mean)."""
        self._check_linear()
        t = self.teacher
        if getattr(t, "centred", True):
            return operator_matrix(self.sampler(), t.dim, t.dtype, t.device)
        return t.matrix(self.sampler(), t.coef(t.steps)[0] * t.mean)

    def gains(self) -> np.ndarray:
        r"""Exact per-direction gains :math:`S_i = u_i^\top S u_i` of the composed linear student."""
        return eigen_gains(self.matrix(), self.teacher.data)

    def node_gains(self) -> dict:
        r"""Exact per-direction gains of every node's student (linear families; read around :math:`\alpha_j\mu` for a mean), keyed by node text."""
        self._check_linear()
        t = self.teacher
        if getattr(t, "centred", True):
            return {text: eigen_gains(operator_matrix(m, t.dim, t.dtype, t.device), t.data) for text, m in self.nodes.items()}
        tops = {record["node"]: record["top"] for record in self.records}
        return {text: eigen_gains(t.matrix(m, t.coef(tops[text])[0] * t.mean), t.data) for text, m in self.nodes.items()}

    def off_diagonal(self) -> float:
        r"""Largest off-diagonal entry of :math:`U^\top S U` (0 when the student is diagonal in the eigenbasis)."""
        u = torch.as_tensor(self.teacher.data.basis(), dtype=self.teacher.dtype, device=self.teacher.device)
        rotated = u.T @ self.matrix() @ u
        off = rotated - torch.diag(torch.diagonal(rotated))
        return float(off.abs().max()) if off.numel() else 0.0

    def _check_linear(self) -> None:
        if self.config.family not in self.config.linear_families:
            raise InputError(f"exact gains need a linear family, this plan was trained with {self.config.family!r}; use experiments.readout")


class PlanExecutorBase:
    """Run merge plans as sequences of distillation runs (module docstring): the base of both cases.

    It owns :meth:`run` (nodes in post-order, warm start from the first child, records) and
    :meth:`train_node` (one student per node, trained by :mod:`experiments.training`). A case
    implements :meth:`leaf`, :meth:`start_student`, :meth:`draw_inputs` and, for ``exact-gd``,
    :meth:`population_loss`.

    Parameters
    ----------
    teacher : object
        The teacher; :attr:`teacher_types` says which classes a case accepts.
    config : TrainConfig
        :attr:`config_type` says which configuration class a case accepts.
    seed : int
        Base seed; node ``v`` of plan ``p`` uses ``derive_seed(seed, p, v)``.
    compile : {"off", "default", "reduce-overhead", "max-autotune"}
        Run the students' forward passes on minibatches eagerly (default) or through
        :func:`torch.compile` in that mode (:func:`experiments._torch.compiled`). A new student per
        node means a compilation per node shape; it pays where nodes train long, on a GPU.
    """

    #: the configuration class of this case
    config_type: ClassVar[type] = TrainConfig
    #: the teacher classes of this case
    teacher_types: ClassVar[tuple] = ()

    def __init__(self, teacher, config: TrainConfig, seed: int = 0, compile: str = "off") -> None:
        if self.teacher_types and not isinstance(teacher, self.teacher_types):
            names = " or ".join(t.__name__ for t in self.teacher_types)
            raise InputTypeError(f"teacher must be a {names}, got {type(teacher).__name__}")
        if not isinstance(config, self.config_type):
            raise InputTypeError(f"config must be a {self.config_type.__name__}, got {type(config).__name__}")
        self.teacher, self.config, self.seed = teacher, config, int(seed)
        self.compile = check_compile_mode(compile)
        self._input_cov: dict[int, torch.Tensor] = {}

    # ---- what a case supplies ----------------------------------------------------------------
    def leaf(self, n: int) -> nn.Module:
        """The operator of the leaf ``n`` (the teacher step ``n -> n - 1``)."""
        return TeacherStep(self.teacher, n)

    def start_student(self, node: MergeNode, first_child: nn.Module, generator: torch.Generator) -> nn.Module:
        """A trainable student of ``config.family`` that starts as ``config.init`` prescribes."""
        raise NotImplementedError

    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""A batch of ``n`` node inputs :math:`z_j` at grid index ``top = j`` (``config.input``)."""
        raise NotImplementedError

    def population_loss(self, student: nn.Module, target: nn.Module, node: MergeNode) -> Callable[[], torch.Tensor]:
        r"""A closure returning the exact population loss :math:`\mathbb E\|f(z_j) - P(z_j)\|^2` of ``student`` (``exact-gd``)."""
        raise NotImplementedError

    def node_generator(self, label: str, node: MergeNode) -> torch.Generator:
        """The generator of one node, seeded by ``derive_seed(seed, label, node)`` on the teacher's device."""
        return make_generator(derive_seed(self.seed, label, format_tree(node)), self.teacher.device)

    # ---- shared ------------------------------------------------------------------------------
    def input_covariance(self, top: int) -> torch.Tensor:
        r"""Covariance :math:`Q_j` of the node inputs at grid index ``top = j`` (module docstring).

        ``forward``: :math:`\alpha_j^2\Sigma + \sigma_j^2 I`; ``generated``: :math:`T_{N\to j}\,Q_N\,T_{N\to j}^\top`
        with :math:`T_{N\to j}` the teacher sampler's matrix (around :math:`\alpha_N\mu`).
        """
        cache = self._input_cov
        if top not in cache:
            t = self.teacher
            if self.config.input == "forward":
                q = self.forward_covariance(top)
            else:
                down = self.affine_part(lambda z: t.sample(z, t.steps, top), t.steps)
                q = down @ self.forward_covariance(t.steps) @ down.T
            cache[top] = q
        return cache[top]

    def forward_covariance(self, index: int) -> torch.Tensor:
        r""":math:`\alpha_j^2\Sigma + \sigma_j^2 I` at grid index ``index``."""
        return self.teacher.covariance_at(index)

    def affine_part(self, fn, index: int) -> torch.Tensor:
        r"""The matrix ``A`` of a linear map of the inputs at grid index ``index`` (:meth:`GaussianTeacher.matrix`)."""
        return self.teacher.matrix(fn)

    def train_node(self, node: MergeNode, children: list[nn.Module], label: str = "") -> tuple[nn.Module, dict]:
        r"""Train the student of one merge node to reproduce the composite of ``children``.

        Returns the trained student (parameters frozen, in eval mode) and its :func:`node_record`.
        """
        cfg = self.config
        gen = self.node_generator(label, node)
        student = self.start_student(node, children[0], gen)
        for p in student.parameters():
            p.requires_grad_(True)
        target = ComposedSampler(children)
        for p in target.parameters():
            p.requires_grad_(False)
        if cfg.optimizer == "exact-gd":
            stepper = GradientStepper(cfg.optimizer, student.parameters(), cfg.lr)
            losses = run_updates(stepper, self.population_loss(student, target, node), cfg.steps, final_loss=True)
        else:
            losses = self.fit(student, target, node.top, cfg.steps, gen)
        for p in student.parameters():
            p.requires_grad_(False)
        student.eval()
        return student, node_record(node, losses)

    def fit(self, student: nn.Module, target: nn.Module, top: int, steps: int, generator: torch.Generator) -> list[float]:
        r"""``steps`` updates (``config.optimizer``, ``config.lr``) of ``student`` toward ``target`` on fresh
        minibatches of node inputs at ``top``: the loss :math:`\frac1B\sum_b \|f(z_b) - T(z_b)\|^2`.
        Returns the loss before each update."""
        cfg = self.config
        stepper = GradientStepper(cfg.optimizer, student.parameters(), cfg.lr)
        forward = compiled(student, self.compile)

        def batch_loss() -> torch.Tensor:
            z = self.draw_inputs(top, cfg.batch, generator)
            with torch.no_grad():
                y = target(z)
            return (forward(z) - y).pow(2).sum(dim=1).mean()

        return run_updates(stepper, batch_loss, steps)

    def run(self, plan: Plan | str, progress: bool = False) -> ExecutedPlan:
        """Train every merge node of ``plan`` bottom-up (post-order) and return the executed plan.

        Parameters
        ----------
        plan : Plan or str
            A plan for this teacher's ``N`` (text notation accepted).
        progress : bool
            Show a tqdm bar over the nodes.
        """
        t = self.teacher
        if isinstance(plan, str):
            plan = parse_plan(plan, t.steps)
        if not isinstance(plan, Plan):
            raise InputTypeError(f"plan must be a Plan or its text, got {type(plan).__name__}")
        if plan.steps != t.steps:
            raise InputError(f"plan is for N = {plan.steps} steps but the teacher has N = {t.steps}")
        label = format_plan(plan)
        executed = ExecutedPlan(plan=plan, teacher=t, config=self.config)
        trained: dict[MergeNode, nn.Module] = {}

        def module_of(tree) -> nn.Module:
            return trained[tree] if isinstance(tree, MergeNode) else self.leaf(tree)

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


class GaussianPlanExecutor(PlanExecutorBase):
    """The Gaussian case: linear or MLP students of :mod:`experiments.students` against a :class:`GaussianTeacher`.

    Parameters
    ----------
    teacher : GaussianTeacher
        Centred (the synthetic studies).
    config : TrainConfig
    seed : int
    """

    teacher_types = (GaussianTeacher,)

    def __init__(self, teacher: GaussianTeacher, config: TrainConfig, seed: int = 0, compile: str = "off") -> None:
        super().__init__(teacher, config, seed, compile)
        if not teacher.centred:
            raise InputError("the Gaussian executor needs a centred teacher (mean 0); use experiments.images.distill for data with a mean")

    def start_student(self, node: MergeNode, first_child: nn.Module, generator: torch.Generator) -> nn.Module:
        """:func:`~experiments.students.build_student` from the start operator of ``config.init``."""
        t, cfg = self.teacher, self.config
        return build_student(cfg.family, self._start_operator(node, first_child), t.data, dtype=t.dtype, device=t.device,
                             generator=generator, hidden=cfg.hidden, depth=cfg.depth)

    def _start_operator(self, node: MergeNode, first_child: nn.Module):
        t, init = self.teacher, self.config.init
        if init == "warm":
            return first_child
        if init == "ddim":
            return TeacherJump(t, node.top, node.bottom)
        if init == "zero":
            return torch.zeros(t.dim, t.dim, dtype=t.dtype, device=t.device)
        return torch.eye(t.dim, dtype=t.dtype, device=t.device)

    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""``forward``: :math:`\alpha_j x_0 + \sigma_j\varepsilon`; ``generated``: the teacher run from :math:`z_N` down to ``j``."""
        t = self.teacher
        if self.config.input == "forward":
            return t.data.forward_sample(t.schedule, top, n, generator, t.dtype, t.device)
        with torch.no_grad():
            return t.sample(t.noise_sample(n, generator), t.steps, top)

    def population_loss(self, student: nn.Module, target: nn.Module, node: MergeNode) -> Callable[[], torch.Tensor]:
        r""":math:`L(A) = \operatorname{tr}\big((A - P) Q_j (A - P)^\top\big)` with ``A`` read from the student as :math:`f(I)^\top`."""
        t = self.teacher
        q = self.input_covariance(node.top)
        eye = torch.eye(t.dim, dtype=t.dtype, device=t.device)
        with torch.no_grad():
            p_matrix = target(eye).T

        def loss() -> torch.Tensor:
            diff = student(eye).T - p_matrix
            return torch.trace(diff @ q @ diff.T)

        return loss


#: the historical name of the Gaussian case (notebooks and scripts use it)
PlanExecutor = GaussianPlanExecutor


def execute_plan(plan: Plan | str, teacher: GaussianTeacher, config: TrainConfig | None = None, seed: int = 0) -> ExecutedPlan:
    """Shortcut: ``GaussianPlanExecutor(teacher, config or TrainConfig(), seed).run(plan)``."""
    return GaussianPlanExecutor(teacher, config or TrainConfig(), seed).run(plan)
