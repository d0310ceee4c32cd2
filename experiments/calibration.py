r"""Pilot distillations for the calibration of a training law (docs/calibration.md).

:func:`run_gaussian_pilots` trains the pilot plans of :func:`opmerge.calibration.pilot_plans` with
the recipe of a study (:class:`~experiments.executor.TrainConfig`) against a Gaussian teacher and
reads every pilot node's gain per eigen-direction by regression on fresh node inputs (the node's
own input time ``j``, the recipe's ``forward``/``generated`` inputs), giving one
:class:`~opmerge.calibration.PilotNode` per (node, direction, seed). Each (pilot plan, seed) unit is
cached by the caller's :class:`~opmerge.io.ResultCache`. Seeds are derived under the label
``"pilot"``, never those of the study's own runs.

:func:`run_single_merge_pilots` does the same for a nonlinear teacher: a trained image teacher (the
digits teacher, any :class:`~experiments.images.teacher_base.ImageTeacher`, with the image recipes of
:class:`~experiments.images.distill.ImageTrainConfig`, e.g. denoiser copies trained by Adam) or a
Gaussian-mixture teacher (:class:`~experiments.mixture_teacher.TorchMixtureTeacher`, residual-MLP
students of :class:`~experiments.mixture_bridge.MixtureTrainConfig`). Its pilots are single merges
(:func:`opmerge.calibration.single_merge_plans`); per pilot it reads, at the node's input time on the
recipe's inputs and in the data's eigenbasis (:class:`EigenBasis`), the regression gains of the
trained node, of the teacher's composite it was fitted to (:math:`P`) and of the teacher's step at
``j`` (:math:`a_0`, the warm start; a mixture node starts from a student pre-fitted to it), and the
pilot plan's end-to-end :math:`W_2` to the teacher's samples on inputs of its own with the part
its gains carry (:func:`gain_w2`), from which :func:`opmerge.calibration.floor_points` takes the
node floors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from opmerge.calibration import PilotNode, pilot_plans, single_merge_plans
from opmerge.errors import InputError
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.parallel import CachedUnit, ExecutorConfig, run_cached
from opmerge.parallel import make_executor as make_parallel_executor
from opmerge.plans import MergeNode, format_plan, format_tree, parse_plan

from ._torch import derive_seed, make_generator, to_numpy
from .executor import GaussianPlanExecutor, TrainConfig
from .readout import gain_regression

__all__ = ["run_gaussian_pilots", "EigenBasis", "image_basis", "mixture_basis", "gain_w2", "run_single_merge_pilots", "pilot_nodes",
           "pilot_cost_share"]


def _node_gains(executor: GaussianPlanExecutor, executed, node: MergeNode, n: int, generator: torch.Generator) -> np.ndarray:
    """Per-direction gain of one trained node: regression of its outputs on its inputs at time ``node.top``."""
    t = executor.teacher
    z = executor.draw_inputs(node.top, n, generator)
    with torch.no_grad():
        y = executed.nodes[format_tree(node)](z)
    return gain_regression(to_numpy(t.data.to_eigen(z)), to_numpy(t.data.to_eigen(y)))["gain"]


@dataclass(frozen=True, eq=False)
class _GaussianPilots:
    """What every Gaussian pilot unit needs (the executor's shared object)."""

    teacher: object
    train: TrainConfig
    steps: int
    seed: int
    n_eval: int
    threads: int


def _gaussian_pilot(c: _GaussianPilots, task: tuple) -> dict:
    """One pilot unit ``(plan text, repeat)``: train the plan, read each merge node's gains."""
    text, r = task
    torch.set_num_threads(c.threads)
    plan = parse_plan(text, c.steps)
    executor = GaussianPlanExecutor(c.teacher, c.train, seed=derive_seed(c.seed, "pilot", r))
    executed = executor.run(plan)
    out = []
    for node in plan.merge_nodes():
        gen = make_generator(derive_seed(c.seed, "pilot-eval", r, node.top), c.teacher.device)
        out.append({"top": node.top, "length": node.top - node.bottom, "gain": _node_gains(executor, executed, node, c.n_eval, gen).tolist()})
    return {"nodes": out}


def run_gaussian_pilots(teacher, train: TrainConfig, schedule, lam: np.ndarray, *, repeats: int, seed: int, cache, unit_base: dict,
                        lengths: tuple = (2, 3), times: tuple | None = None, n_eval: int = 8192, progress: bool = False,
                        executor: ExecutorConfig | str | None = None) -> tuple[list, list]:
    r"""Run the pilots and return ``(nodes, plans)``: the :class:`~opmerge.calibration.PilotNode` list and the pilot plan texts.

    Parameters
    ----------
    teacher : GaussianTeacher
    train : TrainConfig
        The recipe (``warm`` init: the start error is :math:`A_j - P`).
    schedule : Schedule
    lam : (d,) eigenvalues of the teacher's data
    repeats : int
        Pilot seeds.
    seed : int
        Base seed (pilot seeds are derived from it under the label ``"pilot"``).
    cache : ResultCache
    unit_base : dict
        Configuration shared by every unit key (teacher, recipe, dtype, device).
    lengths, times : see :func:`opmerge.calibration.pilot_plans`
    n_eval : int
        Node inputs of each gain regression.
    progress : bool
        Show a progress bar.
    executor : ExecutorConfig or str, optional
        What runs the pilot units (:mod:`opmerge.parallel`; default ``local``). Each unit runs with
        this process's torch thread count, so the result does not depend on it.
    """
    if train.init != "warm":
        raise InputError(f"the pilots need the warm init (their start error is A_j - P), got init={train.init!r}")
    plans = pilot_plans(schedule.steps, lengths, times)
    problem = Problem(schedule, lam, model=StudentModel(init=train.init, input=train.input))
    steps = problem.step_values  # (d, N + 1)
    q = problem.law.q  # raw input variance of the recipe's inputs
    tasks = [(format_plan(p), r) for r in range(repeats) for p in plans]
    units = [CachedUnit({**unit_base, "unit": f"pilot-{text}-seed{r}", "plan": text, "repeat": r, "seed": seed, "n_eval": n_eval},
                        (text, r)) for text, r in tasks]
    shared = _GaussianPilots(teacher, train, schedule.steps, seed, n_eval, torch.get_num_threads())
    with make_parallel_executor(executor) as engine:
        results, _ = run_cached(engine, cache, _gaussian_pilot, units, shared=shared, progress=progress, desc="calibration pilots")
    nodes: list[PilotNode] = []
    for (text, r), result in zip(tasks, results):
        for rec in result["nodes"]:
            j, length = int(rec["top"]), int(rec["length"])
            target = np.prod(steps[:, j - length + 1:j + 1], axis=1)
            start = steps[:, j]  # warm start: the first child is the teacher step at j
            for k in range(lam.size):
                nodes.append(PilotNode(top=j, length=length, lam=float(lam[k]), error_start=float(start[k] - target[k]),
                                       error_end=float(rec["gain"][k] - target[k]), scale=1.0, q=float(q[k, j]), seed=r))
    return nodes, [format_plan(p) for p in plans]


@dataclass(frozen=True, eq=False)
class EigenBasis:
    r"""Centred eigen-coordinates of a teacher's data at a grid index: :math:`c = (x - \alpha_n\mu)\,U`.

    Attributes
    ----------
    lam : ndarray (d,)
        The data's eigenvalues (the order of ``basis``'s columns).
    basis : ndarray (dim, d)
        Orthonormal eigenvectors :math:`U`.
    mean : ndarray (dim,)
        The data mean :math:`\mu`.
    alpha : ndarray (N + 1,)
        The schedule's :math:`\alpha_n`.
    """

    lam: np.ndarray
    basis: np.ndarray
    mean: np.ndarray
    alpha: np.ndarray

    def coords(self, x: torch.Tensor, index: int) -> np.ndarray:
        """Eigen-coordinates of the rows of ``x`` (states at grid index ``index``)."""
        return (to_numpy(x) - float(self.alpha[index]) * self.mean) @ self.basis


def image_basis(teacher) -> EigenBasis:
    """The eigenbasis of an image teacher: its Gaussian fit of the training images."""
    fit = teacher.fit
    return EigenBasis(np.asarray(fit.lam, dtype=np.float64), np.asarray(fit.basis, dtype=np.float64),
                      np.asarray(fit.mean, dtype=np.float64), np.asarray(teacher.schedule.alpha, dtype=np.float64))


def mixture_basis(teacher) -> EigenBasis:
    """The eigenbasis of a mixture teacher: the eigenvectors of the mixture's covariance (the bridge's :func:`~experiments.mixture_bridge.moment_gaussian`)."""
    from .mixture_bridge import moment_gaussian

    data = moment_gaussian(teacher.mixture)
    return EigenBasis(np.asarray(data.lam), data.basis(), np.asarray(teacher.mixture.mean(), dtype=np.float64),
                      np.asarray(teacher.schedule.alpha, dtype=np.float64))


def gain_w2(sampler, teacher, basis: EigenBasis, z: torch.Tensor) -> float:
    r"""The part of a sampler's :math:`W_2` to the teacher that its per-direction gains carry
    (:func:`~experiments.images.comparison.gain_part_w2`), both gains read by regression on the inputs :math:`z_N`."""
    from .images.comparison import gain_part_w2

    c = basis.coords(z, teacher.steps)
    with torch.no_grad():
        student, reference = sampler(z), teacher.sample(z)
    gains = [gain_regression(c, basis.coords(y, 0))["gain"] for y in (student, reference)]
    return gain_part_w2(teacher.schedule, basis.lam, *gains)


@dataclass(frozen=True, eq=False)
class _SingleMergePilots:
    """What every single-merge pilot unit needs (the executor's shared object)."""

    teacher: object
    make_executor: Callable[[int], object]
    basis: EigenBasis
    seed: int
    n_gain: int
    n_eval: int
    threads: int


def _single_merge_pilot(c: _SingleMergePilots, text: str) -> dict:
    """One single-merge pilot unit: train its plan, read the node's gains and the plan's end-to-end W2."""
    from .images.comparison import w2_parts

    torch.set_num_threads(c.threads)
    teacher, seed = c.teacher, c.seed
    plan = parse_plan(text, teacher.steps)
    node = plan.merge_nodes()[0]
    j, i = node.top, node.bottom
    started = time.perf_counter()
    executor = c.make_executor(derive_seed(seed, "pilot", text))
    if executor.config.init != "warm":
        raise InputError(f"the pilots need the warm init (their start is the teacher's step), got init={executor.config.init!r}")
    executed = executor.run(plan)
    seconds = time.perf_counter() - started
    student = executed.nodes[format_tree(node)]
    z = executor.draw_inputs(j, c.n_gain, torch.Generator().manual_seed(derive_seed(seed, "pilot-gain", text)))
    with torch.no_grad():
        outputs = {"gain": student(z), "target": teacher.sample(z, j, i), "start": teacher.step(z, j)}
    coords = c.basis.coords(z, j)
    gains = {k: gain_regression(coords, c.basis.coords(y, i))["gain"].tolist() for k, y in outputs.items()}
    z_n = teacher.noise_sample(int(c.n_eval), torch.Generator().manual_seed(derive_seed(seed, "pilot-eval")))
    sampler = executed.sampler()
    with torch.no_grad():
        x_student, x_teacher = to_numpy(sampler(z_n)), to_numpy(teacher.sample(z_n))
    return {"plan": text, "top": j, "length": j - i, **gains, "w2_cov": w2_parts(x_student, x_teacher)["w2_cov"],
            "w2_gain": gain_w2(sampler, teacher, c.basis, z_n), "train_seconds": seconds}


def run_single_merge_pilots(teacher, make_executor: Callable[[int], object], basis: EigenBasis, *, lengths: tuple, times: tuple, seed: int,
                            cache, unit_base: dict, n_gain: int = 4096, n_eval: int = 2000, progress: bool = False,
                            executor: ExecutorConfig | str | None = None) -> list[dict]:
    r"""Run single-merge pilots against a nonlinear teacher (module docstring) and return one record per pilot.

    Parameters
    ----------
    teacher : ImageTeacher or TorchMixtureTeacher
        ``steps``, ``schedule``, ``step``, ``sample``, ``noise_sample``.
    make_executor : callable
        ``make_executor(seed)`` -> a plan executor of the recipe (``run(plan)``, ``draw_inputs(j, n, generator)``);
        its ``warm`` init starts a node at the teacher's step at ``j``. Picklable (e.g. a
        :func:`functools.partial` of the executor class) for the ``process`` and ``ray`` engines.
    basis : EigenBasis
        Where the gains are read (:func:`image_basis`, :func:`mixture_basis`).
    lengths, times : tuple of int
        Merge lengths and input times (:func:`opmerge.calibration.single_merge_plans`).
    seed : int
        Base seed; pilot seeds are derived under ``"pilot"``.
    cache : ResultCache
    unit_base : dict
        Configuration shared by every unit key (teacher identity, recipe, device).
    n_gain : int
        Node inputs of the gain regressions.
    n_eval : int
        Inputs :math:`z_N` of the end-to-end :math:`W_2`.
    progress : bool
        Show a progress bar.
    executor : ExecutorConfig or str, optional
        What runs the pilot units (:mod:`opmerge.parallel`; default ``local``).

    Returns
    -------
    list of dict
        ``plan``, ``top``, ``length``, ``gain``, ``target``, ``start`` (per direction, shape (d,)),
        ``w2_cov`` (the pilot plan's :math:`W_2` to the teacher), ``w2_gain`` (the part its gains carry,
        :func:`gain_w2`) and ``train_seconds``.
    """
    plans = [format_plan(p) for p in single_merge_plans(teacher.steps, lengths, times)]
    units = [CachedUnit({**unit_base, "unit": f"single-merge-pilot-{text}", "plan": text, "seed": seed, "n_gain": n_gain, "n_eval": n_eval},
                        text) for text in plans]
    shared = _SingleMergePilots(teacher, make_executor, basis, seed, n_gain, n_eval, torch.get_num_threads())
    with make_parallel_executor(executor) as engine:
        records, _ = run_cached(engine, cache, _single_merge_pilot, units, shared=shared, progress=progress, desc="calibration pilots")
    return records


def pilot_nodes(records: list[dict], lam: np.ndarray, q: np.ndarray, lam_floor: float = 1e-4) -> list[PilotNode]:
    r""":class:`~opmerge.calibration.PilotNode` per pilot record of :func:`run_single_merge_pilots` and direction with
    :math:`\lambda >` ``lam_floor`` (constant pixels carry no gain): :math:`e_0 = a_0 - P`, :math:`e_K = a - P`
    from the measured gains; ``q`` is the model's input variance, shape (d, N + 1)."""
    nodes = []
    for rec in records:
        j = int(rec["top"])
        gain, target, start = (np.asarray(rec[k], dtype=np.float64) for k in ("gain", "target", "start"))
        for k in np.flatnonzero(lam > lam_floor):
            nodes.append(PilotNode(top=j, length=int(rec["length"]), lam=float(lam[k]), error_start=float(start[k] - target[k]),
                                   error_end=float(gain[k] - target[k]), scale=1.0, q=float(q[k, j]), seed=0))
    return nodes


def pilot_cost_share(pilot_plan_texts: list, pilot_repeats: int, study_plans: list, study_repeats: int) -> float:
    """Pilot compute over the study's, counted in trained merge nodes (every node has the same update budget)."""
    pilot = pilot_repeats * sum(parse_plan(t).n_merges for t in pilot_plan_texts)
    study = study_repeats * sum(parse_plan(t).n_merges for t in study_plans)
    return pilot / study if study else float("inf")
