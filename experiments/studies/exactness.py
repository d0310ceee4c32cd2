r"""The ``exactness`` study: exact-loss gradient-descent students equal the model's ``training='gd'`` closed form.

For every plan (the canonical ones and the optimum) and every unit — diagonal data with the
diagonal and the full linear family, and rotated data with the full family — the executed plan's
per-direction gains (root and every node) are compared with :func:`opmerge.objective.evaluate_plan`
under :func:`~experiments.executor.core_model`. Pass: the largest relative gap is at most
:data:`EXACTNESS_BOUND` (float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opmerge.io import ResultCache
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import format_plan
from opmerge.schedules import make_schedule

from .._torch import derive_seed
from ..executor import GaussianPlanExecutor, TrainConfig, core_model
from ..students import LINEAR_FAMILIES
from ..gaussian import make_gaussian
from ..teacher import GaussianTeacher
from ._common import StudyConfig, environment, families, progress, rel_gap, resolve_plans

__all__ = ["EXACTNESS_BOUND", "ExactnessConfig", "run", "figure"]

#: the exactness bound (max relative gap, float64)
EXACTNESS_BOUND = 1e-8


@dataclass(frozen=True)
class ExactnessConfig(StudyConfig):
    r"""Configuration of the ``exactness`` study (the common fields of :class:`StudyConfig` and these).

    Parameters
    ----------
    family : str
        Comma list of linear families (``"diagonal,full"``).
    lr : float
        Per-node step size :math:`\eta`.
    node_steps : int
        Updates per node :math:`K`.
    rotated : bool
        Rotate the data (then every family runs on rotated data).
    """

    study = "exactness"
    family_choices = LINEAR_FAMILIES
    family_list = True

    family: str | None = None
    lr: float | None = None
    node_steps: int | None = None
    rotated: bool | None = None

    @classmethod
    def defaults(cls, quick: bool) -> dict:  # noqa: D102
        return {**super().defaults(quick), "rotated": False, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.3, 1.0, 3.0) if quick else (0.1, 0.5, 1.0, 3.0, 10.0), "lr": 0.02, "node_steps": 10 if quick else 25,
                "family": "diagonal,full"}


def _units(cfg: ExactnessConfig) -> list[tuple[str, str, bool]]:
    names = families(cfg.family)
    units = [(f"{'diagonal' if not cfg.rotated else 'rotated'}-data-{f}", f, bool(cfg.rotated)) for f in names]
    if not cfg.rotated and "full" in names:
        units.append(("rotated-data-full", "full", True))
    return units


def run(cfg: ExactnessConfig, cache: ResultCache) -> dict:
    """Run every unit (cached) and summarise the largest relative gap."""
    device, dtype = environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    results = {}
    for label, family, rotated in progress(_units(cfg), cfg.progress, "exactness"):
        unit_cfg = {"unit": f"exactness-{label}", "study": "exactness", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments,
                    "solver": cfg.solver, "lam": cfg.lam, "plans": cfg.plans, "family": family, "rotated": rotated, "lr": cfg.lr,
                    "node_steps": cfg.node_steps, "init": cfg.init, "input": cfg.input, "seed": cfg.seed, "dtype": str(dtype)}

        def compute(family=family, rotated=rotated):
            data = make_gaussian(cfg.lam, rotated=rotated, seed=derive_seed(cfg.seed, "rotation") % 2**32)
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            train = TrainConfig(family=family, optimizer="exact-gd", lr=cfg.lr, steps=cfg.node_steps, init=cfg.init, input=cfg.input)
            problem = Problem(schedule, data.lam, model=core_model(train), solver=cfg.solver, segments=cfg.segments)
            executor = GaussianPlanExecutor(teacher, train, seed=cfg.seed, compile=cfg.compile)
            rows = []
            for name, plan in resolve_plans(cfg.plans, problem):
                executed = executor.run(plan)
                evaluation = evaluate_plan(problem, plan)
                measured = executed.gains()
                node_meas = executed.node_gains()
                node_gap = max((rel_gap(node_meas[str(node)], value) for node, value in evaluation.node_values.items()), default=0.0)
                rows.append({
                    "name": name, "plan": format_plan(plan), "predicted": evaluation.student, "measured": measured,
                    "rel_gap": rel_gap(measured, evaluation.student), "node_rel_gap": node_gap,
                    "off_diagonal": executed.off_diagonal(), "w2_predicted": evaluation.w2, "w2_measured": problem.w2_of(measured),
                    "teacher": evaluation.teacher, "n_merges": plan.n_merges,
                })
            return {"family": family, "rotated": rotated, "lam": data.lam, "plans": rows}

        results[label] = cache.get_or_compute(unit_cfg, compute)
    gaps = [max(r["rel_gap"], r["node_rel_gap"]) for unit in results.values() for r in unit["plans"]]
    max_gap = max(gaps) if gaps else float("nan")
    summary = {"max_rel_gap": max_gap, "bound": EXACTNESS_BOUND, "passed": bool(max_gap <= EXACTNESS_BOUND),
               "max_off_diagonal": max(r["off_diagonal"] for unit in results.values() for r in unit["plans"]),
               "cases": len(gaps), "dtype": str(dtype)}
    return {"units": results, "summary": summary}


def figure(result: dict):
    """Predicted against measured gains, and the largest relative gap of every case (log scale)."""
    from opmerge.analysis.style import new_figure

    fig, (ax1, ax2) = new_figure(1, 2, width=9.0, height=3.6)
    pred, meas, labels, gaps = [], [], [], []
    for label, unit in result["units"].items():
        for row in unit["plans"]:
            pred.extend(row["predicted"])
            meas.extend(row["measured"])
            labels.append(f"{label}\n{row['name']}")
            gaps.append(max(row["rel_gap"], row["node_rel_gap"]))
    ax1.plot(pred, meas, "o", ms=3)
    lo, hi = min(pred + meas), max(pred + meas)
    ax1.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax1.set_xlabel("predicted gain S (model, training=gd)")
    ax1.set_ylabel("measured gain (exact-loss GD, torch)")
    ax1.set_title("every plan, direction and family")
    floor = 1e-18
    ax2.bar(range(len(gaps)), np.maximum(gaps, floor), color="#0072B2")
    ax2.axhline(result["summary"]["bound"], color="#D55E00", lw=1, ls="--", label="bound 1e-8")
    ax2.set_yscale("log")
    ax2.set_ylim(floor, 1e-6)
    ax2.set_xticks(range(len(gaps)))
    ax2.set_xticklabels(labels, rotation=90, fontsize=5)
    ax2.set_ylabel("max relative gap (root and nodes)")
    ax2.legend()
    return fig, {"predicted": pred, "measured": meas, "labels": labels, "max_rel_gap": gaps}
