r"""The ``sgd`` study: SGD students match the model's ``training='gd'`` closed form in expectation.

For every plan, ``repeats`` independent seeds train diagonal (or full) linear students by SGD on
minibatches; per plan and direction the mean gain's interval at ``level`` (Student t with
``repeats - 1`` degrees of freedom) must cover the prediction. Pass: coverage of the
(plan, direction) cases at least :data:`SGD_COVERAGE_BOUND`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from opmerge.io import ResultCache
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import format_plan
from opmerge.schedules import make_schedule

from .._torch import derive_seed
from ..executor import GaussianPlanExecutor, TrainConfig, core_model
from ..gaussian import make_gaussian
from ..students import LINEAR_FAMILIES
from ..teacher import GaussianTeacher
from ._common import StudyConfig, environment, families, min_separation, progress, resolve_plans

__all__ = ["SGD_COVERAGE_BOUND", "SgdConfig", "run", "figure", "coverage_summary"]

#: the pass rule: share of (plan, direction) cases whose interval covers the prediction
SGD_COVERAGE_BOUND = 0.95


@dataclass(frozen=True)
class SgdConfig(StudyConfig):
    r"""Configuration of the ``sgd`` study (the common fields of :class:`StudyConfig` and these).

    Parameters
    ----------
    family : {"diagonal", "full"}
    lr : float
        Per-node step size :math:`\eta`.
    node_steps : int
        Updates per node :math:`K`.
    batch : int
        Minibatch size.
    repeats : int
        Independent seeds, at least 2: the Student-t interval of the mean needs two runs (with one,
        its width and the coverage are undefined, so ``repeats = 1`` is refused rather than
        reported as coverage 0).
    rotated : bool
    """

    study = "sgd"
    family_choices = LINEAR_FAMILIES  # the readout of exact gains needs a linear student

    family: str | None = None
    lr: float | None = None
    node_steps: int | None = None
    batch: int | None = None
    repeats: int | None = None
    rotated: bool | None = None

    @classmethod
    def defaults(cls, quick: bool) -> dict:  # noqa: D102
        return {**super().defaults(quick), "rotated": False, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.3, 1.0, 3.0) if quick else (0.1, 0.5, 1.0, 3.0, 10.0), "lr": 0.02, "node_steps": 10 if quick else 25,
                "batch": 32 if quick else 64, "repeats": 12 if quick else 40, "family": "diagonal"}


def coverage_summary(rows: list[dict], covered: list, zscores: list, halfwidths: list, n: int, t_quant: float, level: float) -> dict:
    """The summary of the coverage test (``passed`` is ``coverage >= SGD_COVERAGE_BOUND``)."""
    coverage = float(np.mean(covered)) if covered else float("nan")
    return {"coverage": coverage, "cases": len(covered), "level": level, "repeats": n, "t_quantile": t_quant,
            "passed": bool(coverage >= SGD_COVERAGE_BOUND), "bound": SGD_COVERAGE_BOUND,
            "max_abs_z": float(np.max(np.abs(zscores))) if zscores else float("nan"),
            "mean_relative_sd": float(np.mean([np.mean(r["relative_sd"]) for r in rows])),
            "mean_relative_halfwidth": float(np.mean(halfwidths)) if halfwidths else float("nan"),
            "min_relative_separation": min_separation([r["predicted"] for r in rows if r["same_as"] is None])}


def run(cfg: SgdConfig, cache: ResultCache) -> dict:
    """Run every seed (cached), then the per-plan intervals and the coverage."""
    device, dtype = environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    family = families(cfg.family)[0]
    data = make_gaussian(cfg.lam, rotated=bool(cfg.rotated), seed=derive_seed(cfg.seed, "rotation") % 2**32)
    train = TrainConfig(family=family, optimizer="sgd", lr=cfg.lr, steps=cfg.node_steps, batch=cfg.batch, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, data.lam, model=core_model(train), solver=cfg.solver, segments=cfg.segments)
    plans = resolve_plans(cfg.plans, problem)
    predicted = {name: evaluate_plan(problem, plan).student for name, plan in plans}
    runs: list[dict] = []
    for r in progress(range(cfg.repeats), cfg.progress, "sgd seeds"):
        unit_cfg = {"unit": f"sgd-seed{r}", "study": "sgd", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments,
                    "solver": cfg.solver, "lam": cfg.lam, "rotated": bool(cfg.rotated), "plans": [format_plan(p) for _, p in plans],
                    "train": train.to_dict(), "seed": cfg.seed, "repeat": r, "dtype": str(dtype)}

        def compute(r=r):
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            executor = GaussianPlanExecutor(teacher, train, seed=derive_seed(cfg.seed, "sgd", r), compile=cfg.compile)
            return {name: executor.run(plan).gains() for name, plan in plans}

        runs.append(cache.get_or_compute(unit_cfg, compute))
    n = len(runs)
    t_quant = float(stats.t.ppf(0.5 + cfg.level / 2.0, n - 1)) if n > 1 else float("inf")
    rows, covered, zscores, halfwidths = [], [], [], []
    seen: dict[str, str] = {}
    for name, plan in plans:
        text = format_plan(plan)
        duplicate = seen.get(text)
        seen.setdefault(text, name)
        gains = np.array([run_[name] for run_ in runs])  # (R, d)
        mean = gains.mean(0)
        sd = gains.std(0, ddof=1) if n > 1 else np.zeros_like(mean)
        se = sd / math.sqrt(n)
        low, high = mean - t_quant * se, mean + t_quant * se
        pred = predicted[name]
        inside = (pred >= low) & (pred <= high)
        z = np.where(se > 0, (mean - pred) / np.where(se > 0, se, 1.0), 0.0)
        if duplicate is None:  # a plan listed twice (e.g. optimal = boot) counts once
            covered.extend(inside.tolist())
            zscores.extend(z.tolist())
            halfwidths.extend((t_quant * se / np.abs(pred)).tolist())
        rows.append({"name": name, "plan": text, "same_as": duplicate, "predicted": pred, "mean": mean, "sd": sd, "se": se,
                     "low": low, "high": high, "covered": inside, "z": z, "relative_sd": sd / np.abs(pred)})
    summary = coverage_summary(rows, covered, zscores, halfwidths, n, t_quant, cfg.level)
    return {"lam": data.lam, "plans": rows, "summary": summary}


def figure(result: dict):
    """z-scores of the mean SGD gain against the prediction, per plan and direction."""
    from opmerge.analysis.style import new_figure

    fig, ax = new_figure(1, 1, width=6.4, height=3.6)
    z, labels = [], []
    for row in result["plans"]:
        if row["same_as"] is not None:
            continue
        for i, value in enumerate(row["z"]):
            z.append(value)
            labels.append(f"{row['name']}:{i}")
    t_quant = result["summary"]["t_quantile"]
    colors = ["#0072B2" if abs(v) <= t_quant else "#D55E00" for v in z]
    ax.scatter(range(len(z)), z, c=colors, s=12)
    ax.axhspan(-t_quant, t_quant, color="#cccccc", alpha=0.4, lw=0, label=f"{result['summary']['level']:.0%} interval of the mean")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(z)))
    ax.set_xticklabels(labels, rotation=90, fontsize=5)
    ax.set_ylabel("(mean SGD gain - prediction) / s.e.")
    ax.set_title(f"SGD students vs model (gd): coverage {result['summary']['coverage']:.0%} "
                 f"over {result['summary']['cases']} cases, {result['summary']['repeats']} seeds")
    ax.legend(loc="upper right")
    return fig, {"z": z, "labels": labels, "t_quantile": t_quant}
