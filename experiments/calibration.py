r"""Pilot distillations for the calibration of a training law (docs/calibration.md).

:func:`run_gaussian_pilots` trains the pilot plans of :func:`opmerge.calibration.pilot_plans` with
the recipe of a study (:class:`~experiments.executor.TrainConfig`) against a Gaussian teacher and
reads every pilot node's gain per eigen-direction by regression on fresh node inputs (the node's
own input time ``j``, the recipe's ``forward``/``generated`` inputs), giving one
:class:`~opmerge.calibration.PilotNode` per (node, direction, seed). Each (pilot plan, seed) unit is
cached by the caller's :class:`~opmerge.io.ResultCache`. Seeds are derived under the label
``"pilot"``, never those of the study's own runs.
"""

from __future__ import annotations

import numpy as np
import torch

from opmerge.calibration import PilotNode, pilot_plans
from opmerge.errors import InputError
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.plans import MergeNode, format_plan, format_tree, parse_plan

from ._torch import derive_seed, make_generator
from .executor import GaussianPlanExecutor, TrainConfig
from .readout import gain_regression

__all__ = ["run_gaussian_pilots", "pilot_cost_share"]


def _node_gains(executor: GaussianPlanExecutor, executed, node: MergeNode, n: int, generator: torch.Generator) -> np.ndarray:
    """Per-direction gain of one trained node: regression of its outputs on its inputs at time ``node.top``."""
    t = executor.teacher
    z = executor.draw_inputs(node.top, n, generator)
    with torch.no_grad():
        y = executed.nodes[format_tree(node)](z)
    to_np = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
    return gain_regression(to_np(t.data.to_eigen(z)), to_np(t.data.to_eigen(y)))["gain"]


def run_gaussian_pilots(teacher, train: TrainConfig, schedule, lam: np.ndarray, *, repeats: int, seed: int, cache, unit_base: dict,
                        lengths: tuple = (2, 3), times: tuple | None = None, n_eval: int = 8192, progress=None) -> tuple[list, list]:
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
    progress : callable, optional
        Wraps the iterable of units (a progress bar).
    """
    if train.init != "warm":
        raise InputError(f"the pilots need the warm init (their start error is A_j - P), got init={train.init!r}")
    plans = pilot_plans(schedule.steps, lengths, times)
    problem = Problem(schedule, lam, model=StudentModel(init=train.init, input=train.input))
    steps = problem.step_values  # (d, N + 1)
    q = problem.law.q  # raw input variance of the recipe's inputs
    units = [(format_plan(p), r) for r in range(repeats) for p in plans]
    nodes: list[PilotNode] = []
    for text, r in (progress(units) if progress else units):
        unit_cfg = {**unit_base, "unit": f"pilot-{text}-seed{r}", "plan": text, "repeat": r, "seed": seed, "n_eval": n_eval}

        def compute(text=text, r=r):
            plan = parse_plan(text, schedule.steps)
            executor = GaussianPlanExecutor(teacher, train, seed=derive_seed(seed, "pilot", r))
            executed = executor.run(plan)
            out = []
            for node in plan.merge_nodes():
                gen = make_generator(derive_seed(seed, "pilot-eval", r, node.top), teacher.device)
                out.append({"top": node.top, "length": node.top - node.bottom,
                            "gain": _node_gains(executor, executed, node, n_eval, gen).tolist()})
            return {"nodes": out}

        result = cache.get_or_compute(unit_cfg, compute)
        for rec in result["nodes"]:
            j, length = int(rec["top"]), int(rec["length"])
            target = np.prod(steps[:, j - length + 1:j + 1], axis=1)
            start = steps[:, j]  # warm start: the first child is the teacher step at j
            for k in range(lam.size):
                nodes.append(PilotNode(top=j, length=length, lam=float(lam[k]), error_start=float(start[k] - target[k]),
                                       error_end=float(rec["gain"][k] - target[k]), scale=1.0, q=float(q[k, j]), seed=r))
    return nodes, [format_plan(p) for p in plans]


def pilot_cost_share(pilot_plan_texts: list, pilot_repeats: int, study_plans: list, study_repeats: int) -> float:
    """Pilot compute over the study's, counted in trained merge nodes (every node has the same update budget)."""
    pilot = pilot_repeats * sum(parse_plan(t).n_merges for t in pilot_plan_texts)
    study = study_repeats * sum(parse_plan(t).n_merges for t in study_plans)
    return pilot / study if study else float("inf")
