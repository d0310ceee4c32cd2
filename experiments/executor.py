r"""Execute a merge plan for real: one distillation run per merge node, bottom-up (THEORY.md §3–4).

A merge node over :math:`j \to i` with children :math:`c_1, \dots, c_k` (noise side first) is a
student with input time ``j`` trained to reproduce the composite :math:`P = c_k \circ \cdots \circ c_1`
on the loss

.. math:: L(f) = \mathbb E_{z_j} \| f(z_j) - P(z_j) \|^2 .

Nodes run in post-order (:meth:`opmerge.plans.Plan.merge_nodes`), so every child is trained
before its parent; a leaf ``n`` is the teacher step :math:`n \to n-1`
(:class:`~experiments.teacher.TeacherStep`). The student starts from (THEORY.md §4):

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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from opmerge.model import StudentModel
from opmerge.plans import MergeNode, Plan, format_plan, format_tree, parse_plan

from ._torch import derive_seed, make_generator
from .students import FAMILIES, LINEAR_FAMILIES, build_student
from .teacher import GaussianTeacher, TeacherJump, TeacherStep, eigen_gains, operator_matrix

__all__ = ["OPTIMIZERS", "INPUTS", "INITS", "TrainConfig", "ExecutedPlan", "PlanExecutor", "core_model", "execute_plan", "ComposedSampler"]

OPTIMIZERS = ("exact-gd", "sgd", "adam")
INPUTS = ("forward", "generated")
INITS = ("warm", "ddim", "zero", "identity")


@dataclass(frozen=True)
class TrainConfig:
    r"""How every merge node is trained.

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
    input : {"forward", "generated"}
    hidden, depth : int
        MLP width and number of hidden layers.
    """

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
        for label, value, allowed in (("family", self.family, FAMILIES), ("optimizer", self.optimizer, OPTIMIZERS),
                                      ("init", self.init, INITS), ("input", self.input, INPUTS)):
            if value not in allowed:
                raise ValueError(f"{label} must be one of {', '.join(allowed)}, got {value!r}")
        if self.optimizer == "exact-gd" and self.family not in LINEAR_FAMILIES:
            raise ValueError(f"optimizer 'exact-gd' needs a linear family ({', '.join(LINEAR_FAMILIES)}), got {self.family!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        for label, value in (("steps", self.steps), ("batch", self.batch), ("hidden", self.hidden), ("depth", self.depth)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
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


@dataclass(eq=False)
class ExecutedPlan:
    """A plan after training.

    Attributes
    ----------
    plan : Plan
    teacher : GaussianTeacher
    config : TrainConfig
    nodes : dict
        Node text (``format_tree``) -> trained student (``nn.Module``).
    segments : list of nn.Module
        The operator of every segment root (a student, or a teacher step for a one-leaf segment).
    records : list of dict
        One per node in training order: ``node``, ``top``, ``bottom``, ``loss_start``, ``loss_end``.
    """

    plan: Plan
    teacher: GaussianTeacher
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
        """Matrix of the composed sampler (linear families only)."""
        self._check_linear()
        return operator_matrix(self.sampler(), self.teacher.dim, self.teacher.dtype, self.teacher.device)

    def gains(self) -> np.ndarray:
        r"""Exact per-direction gains :math:`S_i = u_i^\top S u_i` of the composed linear student."""
        return eigen_gains(self.matrix(), self.teacher.data)

    def node_gains(self) -> dict:
        """Exact per-direction gains of every node's student (linear families), keyed by node text."""
        self._check_linear()
        t = self.teacher
        return {text: eigen_gains(operator_matrix(m, t.dim, t.dtype, t.device), t.data) for text, m in self.nodes.items()}

    def off_diagonal(self) -> float:
        r"""Largest off-diagonal entry of :math:`U^\top S U` (0 when the student is diagonal in the eigenbasis)."""
        u = torch.as_tensor(self.teacher.data.basis(), dtype=self.teacher.dtype, device=self.teacher.device)
        rotated = u.T @ self.matrix() @ u
        off = rotated - torch.diag(torch.diagonal(rotated))
        return float(off.abs().max()) if off.numel() else 0.0

    def _check_linear(self) -> None:
        if self.config.family not in LINEAR_FAMILIES:
            raise ValueError(f"exact gains need a linear family, this plan was trained with {self.config.family!r}; use experiments.readout")


class PlanExecutor:
    """Run merge plans as sequences of distillation runs (see the module docstring).

    Parameters
    ----------
    teacher : GaussianTeacher
    config : TrainConfig
    seed : int
        Base seed; node ``v`` of plan ``p`` uses ``derive_seed(seed, p, v)``.
    """

    def __init__(self, teacher: GaussianTeacher, config: TrainConfig, seed: int = 0) -> None:
        if not isinstance(teacher, GaussianTeacher):
            raise TypeError(f"teacher must be a GaussianTeacher, got {type(teacher).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.teacher, self.config, self.seed = teacher, config, int(seed)
        self._input_cov: dict[int, torch.Tensor] = {}

    # ---- inputs ----------------------------------------------------------------------------
    def input_covariance(self, top: int) -> torch.Tensor:
        r"""Covariance :math:`Q_j` of the node inputs at grid index ``top = j`` (see the module docstring)."""
        if top not in self._input_cov:
            t = self.teacher
            if self.config.input == "forward":
                q = t.covariance_at(top)
            else:
                down = t.matrix(lambda z: t.sample(z, t.steps, top))
                q = down @ t.covariance_at(t.steps) @ down.T
            self._input_cov[top] = q
        return self._input_cov[top]

    def draw_inputs(self, top: int, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""A batch of node inputs :math:`z_j` (``forward`` or ``generated``), shape ``(n, d)``."""
        t = self.teacher
        if self.config.input == "forward":
            return t.data.forward_sample(t.schedule, top, n, generator, t.dtype, t.device)
        with torch.no_grad():
            return t.sample(t.noise_sample(n, generator), t.steps, top)

    # ---- one node --------------------------------------------------------------------------
    def _start_operator(self, node: MergeNode, first_child: nn.Module):
        t, init = self.teacher, self.config.init
        if init == "warm":
            return first_child
        if init == "ddim":
            return TeacherJump(t, node.top, node.bottom)
        if init == "zero":
            return torch.zeros(t.dim, t.dim, dtype=t.dtype, device=t.device)
        return torch.eye(t.dim, dtype=t.dtype, device=t.device)

    def train_node(self, node: MergeNode, children: list[nn.Module], label: str = "") -> tuple[nn.Module, dict]:
        r"""Train the student of one merge node to reproduce the composite of ``children``.

        Returns the trained student and a record (``loss_start``, ``loss_end`` of the training loss).
        """
        t, cfg = self.teacher, self.config
        gen = make_generator(derive_seed(self.seed, label, format_tree(node)), t.device)
        student = build_student(cfg.family, self._start_operator(node, children[0]), t.data, dtype=t.dtype, device=t.device,
                                generator=gen, hidden=cfg.hidden, depth=cfg.depth)
        target = ComposedSampler(children)
        for p in target.parameters():
            p.requires_grad_(False)
        params = [p for p in student.parameters()]
        losses: list[float] = []
        if cfg.optimizer == "exact-gd":
            q = self.input_covariance(node.top)
            eye = torch.eye(t.dim, dtype=t.dtype, device=t.device)
            with torch.no_grad():
                p_matrix = target(eye).T
            for _ in range(cfg.steps):
                diff = student(eye).T - p_matrix
                loss = torch.trace(diff @ q @ diff.T)
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.sub_(cfg.lr * g)
                losses.append(float(loss.detach()))
            with torch.no_grad():
                diff = student(eye).T - p_matrix
                losses.append(float(torch.trace(diff @ q @ diff.T)))
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
        record = {"node": format_tree(node), "top": node.top, "bottom": node.bottom, "loss_start": losses[0], "loss_end": losses[-1]}
        return student, record

    # ---- a whole plan ----------------------------------------------------------------------
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
            raise TypeError(f"plan must be a Plan or its text, got {type(plan).__name__}")
        if plan.steps != t.steps:
            raise ValueError(f"plan is for N = {plan.steps} steps but the teacher has N = {t.steps}")
        label = format_plan(plan)
        executed = ExecutedPlan(plan=plan, teacher=t, config=self.config)
        trained: dict[MergeNode, nn.Module] = {}

        def module_of(tree) -> nn.Module:
            return trained[tree] if isinstance(tree, MergeNode) else TeacherStep(t, tree)

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


def execute_plan(plan: Plan | str, teacher: GaussianTeacher, config: TrainConfig | None = None, seed: int = 0) -> ExecutedPlan:
    """Shortcut: ``PlanExecutor(teacher, config or TrainConfig(), seed).run(plan)``."""
    return PlanExecutor(teacher, config or TrainConfig(), seed).run(plan)
