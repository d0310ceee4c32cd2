r"""Validation studies: real torch students against the model's predictions (``opmerge validate``).

=============  ==============================================================================
study          question
=============  ==============================================================================
``exactness``  Do linear students trained by exact-loss gradient descent reproduce the model's
               ``training='gd'`` closed form for every canonical plan and the optimal one
               (diagonal and full linear; rotated covariance with full linear)?
``sgd``        Is the same true in expectation for SGD on samples (coverage of the prediction
               by the 99% interval of the mean gain over independent runs)?
``ranking``    Do MLP students (Adam, fixed budget) rank vanilla/BOOT/CD/PD/optimal as the model
               does across a :math:`\lambda` grid, and where is the measured BOOT-vs-vanilla crossover?
``scot``       What do SCoT and TraFlow students learn per eigen-direction, and which merge plan's
               prediction do they sit closest to?
=============  ==============================================================================

Every study is :func:`run_study` ``(name, config) -> dict``; it writes ``<out>/<study>.json`` (full
configuration, predicted and measured values, summary) and the figure ``<out>/<study>.{pdf,png,json}``.
Units (one training run or seed) are cached in ``<out>/units/`` (:class:`experiments._store.UnitStore`),
so a rerun skips finished units. ``quick=True`` selects a small size for tests (seconds on a CPU).
The choices behind each study are documented in ``docs/bridge.md``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from opmerge.cli_options import to_jsonable, write_json_atomic
from opmerge.model import StudentModel
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import CANONICAL_KINDS, Plan, canonical_plan, format_plan, parse_plan
from opmerge.schedules import make_schedule
from opmerge.solvers import solve

from ._store import UnitStore
from ._torch import default_dtype, derive_seed, make_generator, resolve_device
from .executor import PlanExecutor, TrainConfig, core_model
from .gaussian import make_gaussian
from .teacher import GaussianTeacher

__all__ = ["STUDIES", "StudyConfig", "run_study", "default_config", "resolve_plans", "DEFAULT_OUT"]

STUDIES = ("exactness", "sgd", "ranking", "scot")
DEFAULT_OUT = "results/validate"
#: the exactness bound (max relative gap, float64)
EXACTNESS_BOUND = 1e-8
#: the sgd pass rule: share of (plan, direction) cases whose interval covers the prediction
SGD_COVERAGE_BOUND = 0.95
DEFAULT_PLANS = ("vanilla", "boot", "cd", "pd", "optimal")


@dataclass(frozen=True)
class StudyConfig:
    r"""Configuration of a validation study; ``None`` fields take the study's default (:func:`default_config`).

    Parameters
    ----------
    study : {"exactness", "sgd", "ranking", "scot"}
    quick : bool
        Small size (tests, CPU, seconds).
    schedule : str
        Teacher schedule (``rf`` for ``scot``, else ``vp-cosine``).
    steps : int
        Teacher steps ``N``.
    segments : int
        Student steps ``M`` of the plan studies.
    solver : {"ddim", "heun"}
    lam : tuple of float
        Eigenvalues of the data (one Gaussian with these directions; for ``ranking`` the
        :math:`\lambda` grid, each direction an independent one-dimensional problem).
    plans : tuple of str
        ``vanilla``, ``boot``, ``cd``, ``pd``, ``optimal`` or plans in text notation.
    init, input : str
        Student init and input distribution (THEORY.md §4).
    target : {"teacher", "data"}
        W2 target of the ranking.
    eta_tau : float
        Model budget :math:`\eta\tau` of the flow predictions (``ranking``, ``scot``).
    lr, node_steps, batch : per-node step size, number of updates and minibatch size
        (``scot``: the trainer's learning rate, ``train_steps`` updates).
    repeats : int
        Independent seeds (``sgd``, ``ranking``).
    family, optimizer : student family and optimiser of the plan students.
    hidden, depth : MLP width and hidden layers.
    train_steps : int
        SCoT/TraFlow training updates.
    n_eval : int
        Fresh inputs of each readout.
    level : float
        Confidence level of the intervals (0.99).
    rotated : bool
        Rotate the covariance (``sgd``, ``ranking`` with a non-separable family, ``scot``).
    seed : int
    device : {"auto", "cpu", "cuda"}
    threads : int
        ``torch.set_num_threads`` for the study's duration (default 1 on the CPU: the tensors are
        small and several threads are slower, badly so on a shared machine).
    out : str
        Results folder (default ``results/validate/<study>``).
    progress : bool
        tqdm bars.
    """

    study: str
    quick: bool = False
    schedule: str | None = None
    steps: int | None = None
    segments: int | None = None
    solver: str = "ddim"
    lam: tuple | None = None
    plans: tuple | None = None
    init: str = "warm"
    input: str = "forward"
    target: str = "teacher"
    eta_tau: float | None = None
    lr: float | None = None
    node_steps: int | None = None
    batch: int | None = None
    repeats: int | None = None
    family: str | None = None
    optimizer: str | None = None
    hidden: int | None = None
    depth: int | None = None
    train_steps: int | None = None
    n_eval: int | None = None
    level: float = 0.99
    rotated: bool | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.study not in STUDIES:
            raise ValueError(f"study must be one of {', '.join(STUDIES)}, got {self.study!r}")
        if self.lam is not None:
            object.__setattr__(self, "lam", tuple(float(v) for v in np.atleast_1d(np.asarray(self.lam, dtype=np.float64))))
        if self.plans is not None:
            plans = (self.plans,) if isinstance(self.plans, str) else tuple(str(p) for p in self.plans)
            object.__setattr__(self, "plans", plans)
        if not 0.0 < float(self.level) < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")

    def resolved(self) -> "StudyConfig":
        """A copy with every ``None`` field replaced by the study's default for ``quick``."""
        defaults = default_config(self.study, self.quick)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in defaults.items():
            if values.get(key) is None:
                values[key] = value
        if values["out"] is None:
            values["out"] = str(Path(DEFAULT_OUT) / self.study)
        if values["eta_tau"] is None:
            # plain gradient steps: K steps of size eta are gradient flow for time eta*K; Adam has no such map
            opt = values["optimizer"]
            values["eta_tau"] = values["lr"] * values["node_steps"] if opt in ("sgd", "exact-gd") and values["node_steps"] else 0.5
        return StudyConfig(**values)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


def default_config(study: str, quick: bool = False) -> dict:
    """The defaults of ``study`` (full size, or ``quick``); see ``docs/bridge.md`` for the reasons."""
    common = {"segments": 1, "plans": DEFAULT_PLANS, "rotated": False, "threads": 1}
    if study == "exactness":
        return {**common, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.3, 1.0, 3.0) if quick else (0.1, 0.5, 1.0, 3.0, 10.0),
                "lr": 0.02, "node_steps": 10 if quick else 25, "family": "diagonal,full", "optimizer": "exact-gd",
                "batch": 1, "repeats": 1, "eta_tau": 0.5, "hidden": 1, "depth": 1, "train_steps": 0, "n_eval": 0}
    if study == "sgd":
        return {**common, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.3, 1.0, 3.0) if quick else (0.1, 0.5, 1.0, 3.0, 10.0),
                "lr": 0.02, "node_steps": 10 if quick else 25, "batch": 32 if quick else 64,
                "repeats": 12 if quick else 40, "family": "diagonal", "optimizer": "sgd",
                "eta_tau": 0.5, "hidden": 1, "depth": 1, "train_steps": 0, "n_eval": 0}
    if study == "ranking":
        return {**common, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.1, 1.0, 10.0) if quick else tuple(float(v) for v in np.geomspace(0.1, 10.0, 9)),
                "lr": 1e-3 if quick else 3e-4, "node_steps": 30 if quick else 100, "batch": 256, "repeats": 2 if quick else 4,
                "family": "mlp-separable", "optimizer": "adam", "hidden": 16 if quick else 32, "depth": 2,
                "eta_tau": None, "train_steps": 0, "n_eval": 8192 if quick else 65536}
    if study == "scot":
        return {**common, "schedule": "rf", "steps": 4 if quick else 8, "lam": None,
                "lr": 1e-3, "node_steps": 0, "batch": 64 if quick else 256, "repeats": 1,
                "family": "scot,traflow", "optimizer": "adam", "hidden": 32 if quick else 128, "depth": 2 if quick else 3,
                "eta_tau": 0.5, "train_steps": 150 if quick else 3000, "n_eval": 2048 if quick else 20000}
    raise ValueError(f"study must be one of {', '.join(STUDIES)}, got {study!r}")


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def resolve_plans(names, problem: Problem) -> list[tuple[str, Plan]]:
    """``[(name, Plan)]`` for plan names: canonical kinds, ``optimal`` (``opmerge.solvers.solve``) or text notation.

    Duplicated plans are kept under each name (the same plan may be canonical and optimal).
    """
    out = []
    for name in names:
        if name in CANONICAL_KINDS:
            out.append((name, canonical_plan(name, problem.steps, problem.segments)))
        elif name == "optimal":
            out.append((name, solve(problem).plan))
        else:
            plan = parse_plan(name, problem.steps)
            if plan.n_segments != problem.segments:
                raise ValueError(f"plan {name!r} has {plan.n_segments} segment(s) but the study uses segments = {problem.segments}")
            out.append((format_plan(plan), plan))
    return out


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _families(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _rel_gap(measured, predicted) -> float:
    measured, predicted = np.asarray(measured, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    scale = np.maximum(np.abs(predicted), 1e-300)
    return float(np.max(np.abs(measured - predicted) / scale))


def _environment(cfg: StudyConfig) -> tuple[torch.device, torch.dtype]:
    device = resolve_device(cfg.device)
    return device, default_dtype(device)


def _finish(cfg: StudyConfig, result: dict, figure_fn, started: float, store: UnitStore) -> dict:
    out = Path(cfg.out)
    result["unit_cache"] = {"cached": store.hits, "computed": store.runs}
    try:
        fig, data = figure_fn(result)
        from opmerge.analysis.style import save_figure

        paths = save_figure(fig, out / cfg.study, data, config=result["config"], close=True)
        result["figure"] = {k: str(v) for k, v in paths.items()}
    except ImportError as exc:  # matplotlib missing: the numbers still count
        result["figure"] = {"error": f"no figure ({exc})"}
    result["elapsed_s"] = time.perf_counter() - started
    result = to_jsonable(result)
    result["result_file"] = str(out / f"{cfg.study}.json")
    write_json_atomic(out / f"{cfg.study}.json", result)
    return result


# ---------------------------------------------------------------------------------------------
# exactness
# ---------------------------------------------------------------------------------------------


def _exactness_units(cfg: StudyConfig) -> list[tuple[str, str, bool]]:
    families = _families(cfg.family)
    units = [(f"{'diagonal' if not cfg.rotated else 'rotated'}-data-{f}", f, bool(cfg.rotated)) for f in families]
    if not cfg.rotated and "full" in families:
        units.append(("rotated-data-full", "full", True))
    return units


def _run_exactness(cfg: StudyConfig, store: UnitStore) -> dict:
    device, dtype = _environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    units = _exactness_units(cfg)
    results = {}
    for label, family, rotated in _progress(units, cfg.progress, "exactness"):
        unit_cfg = {"study": "exactness", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments, "solver": cfg.solver,
                    "lam": cfg.lam, "plans": cfg.plans, "family": family, "rotated": rotated, "lr": cfg.lr, "node_steps": cfg.node_steps,
                    "init": cfg.init, "input": cfg.input, "seed": cfg.seed, "dtype": str(dtype)}

        def compute(family=family, rotated=rotated):
            data = make_gaussian(cfg.lam, rotated=rotated, seed=derive_seed(cfg.seed, "rotation") % 2**32)
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            train = TrainConfig(family=family, optimizer="exact-gd", lr=cfg.lr, steps=cfg.node_steps, init=cfg.init, input=cfg.input)
            problem = Problem(schedule, data.lam, model=core_model(train), solver=cfg.solver, segments=cfg.segments)
            executor = PlanExecutor(teacher, train, seed=cfg.seed)
            rows = []
            for name, plan in resolve_plans(cfg.plans, problem):
                executed = executor.run(plan)
                evaluation = evaluate_plan(problem, plan)
                measured = executed.gains()
                node_meas = executed.node_gains()
                node_gap = max((_rel_gap(node_meas[str(node)], value) for node, value in evaluation.node_values.items()), default=0.0)
                rows.append({
                    "name": name, "plan": format_plan(plan), "predicted": evaluation.student, "measured": measured,
                    "rel_gap": _rel_gap(measured, evaluation.student), "node_rel_gap": node_gap,
                    "off_diagonal": executed.off_diagonal(), "w2_predicted": evaluation.w2, "w2_measured": problem.w2_of(measured),
                    "teacher": evaluation.teacher, "n_merges": plan.n_merges,
                })
            return {"family": family, "rotated": rotated, "lam": data.lam, "plans": rows}

        results[label] = store.get_or_run(f"exactness-{label}", unit_cfg, compute)
    gaps = [max(r["rel_gap"], r["node_rel_gap"]) for unit in results.values() for r in unit["plans"]]
    max_gap = max(gaps) if gaps else float("nan")
    summary = {"max_rel_gap": max_gap, "bound": EXACTNESS_BOUND, "passed": bool(max_gap <= EXACTNESS_BOUND),
               "max_off_diagonal": max(r["off_diagonal"] for unit in results.values() for r in unit["plans"]),
               "cases": len(gaps), "dtype": str(dtype)}
    return {"units": results, "summary": summary}


def _exactness_figure(result: dict):
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


# ---------------------------------------------------------------------------------------------
# sgd
# ---------------------------------------------------------------------------------------------


def _run_sgd(cfg: StudyConfig, store: UnitStore) -> dict:
    device, dtype = _environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    family = _families(cfg.family)[0]
    data = make_gaussian(cfg.lam, rotated=bool(cfg.rotated), seed=derive_seed(cfg.seed, "rotation") % 2**32)
    train = TrainConfig(family=family, optimizer="sgd", lr=cfg.lr, steps=cfg.node_steps, batch=cfg.batch, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, data.lam, model=core_model(train), solver=cfg.solver, segments=cfg.segments)
    plans = resolve_plans(cfg.plans, problem)
    predicted = {name: evaluate_plan(problem, plan).student for name, plan in plans}
    runs: list[dict] = []
    for r in _progress(range(cfg.repeats), cfg.progress, "sgd seeds"):
        unit_cfg = {"study": "sgd", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments, "solver": cfg.solver,
                    "lam": cfg.lam, "rotated": bool(cfg.rotated), "plans": [format_plan(p) for _, p in plans], "train": train.to_dict(),
                    "seed": cfg.seed, "repeat": r, "dtype": str(dtype)}

        def compute(r=r):
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            executor = PlanExecutor(teacher, train, seed=derive_seed(cfg.seed, "sgd", r))
            return {name: executor.run(plan).gains() for name, plan in plans}

        runs.append(store.get_or_run(f"sgd-seed{r}", unit_cfg, compute))
    n = len(runs)
    t_quant = float(stats.t.ppf(0.5 + cfg.level / 2.0, n - 1)) if n > 1 else float("inf")
    rows, covered, zscores, halfwidths = [], [], [], []
    seen: dict[str, str] = {}
    for name, plan in plans:
        text = format_plan(plan)
        duplicate = seen.get(text)
        seen.setdefault(text, name)
        gains = np.array([run[name] for run in runs])  # (R, d)
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
    coverage = float(np.mean(covered)) if covered else float("nan")
    summary = {"coverage": coverage, "cases": len(covered), "level": cfg.level, "repeats": n, "t_quantile": t_quant,
               "passed": bool(coverage >= SGD_COVERAGE_BOUND), "bound": SGD_COVERAGE_BOUND,
               "max_abs_z": float(np.max(np.abs(zscores))) if zscores else float("nan"),
               "mean_relative_sd": float(np.mean([np.mean(r["relative_sd"]) for r in rows])),
               "mean_relative_halfwidth": float(np.mean(halfwidths)) if halfwidths else float("nan"),
               "min_relative_separation": _min_separation([r["predicted"] for r in rows if r["same_as"] is None])}
    return {"lam": data.lam, "plans": rows, "summary": summary}


def _min_separation(predictions: list) -> float:
    """Smallest relative difference between the predicted gains of two different plans (same direction)."""
    best = float("inf")
    for a in range(len(predictions)):
        for b in range(a + 1, len(predictions)):
            pa, pb = np.asarray(predictions[a]), np.asarray(predictions[b])
            best = min(best, float(np.min(np.abs(pa - pb) / np.abs(pa))))
    return best if math.isfinite(best) else float("nan")


def _sgd_figure(result: dict):
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


# ---------------------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------------------


def _direction_w2(problem: Problem, student) -> np.ndarray:
    r"""Per-direction W2 of the model: :math:`\sqrt{s_i}\,|S_i - g_i|` (``teacher``) or :math:`\sqrt{s_i}\,||S_i| - g_i|` (``data``)."""
    student = np.asarray(student, dtype=np.float64)
    value = np.abs(student) if problem.target == "data" else student
    return np.sqrt(problem.scale) * np.abs(value - problem.goal)


def _crossings(lam: np.ndarray, delta: np.ndarray) -> list[float]:
    """Every sign change of ``delta`` along ``lam``, located by linear interpolation in :math:`\\log\\lambda`."""
    out = []
    for k in range(len(lam) - 1):
        a, b = delta[k], delta[k + 1]
        if a == 0.0:
            out.append(float(lam[k]))
        elif a * b < 0:
            x0, x1 = math.log(lam[k]), math.log(lam[k + 1])
            out.append(float(math.exp(x0 + (x1 - x0) * a / (a - b))))
    if len(delta) and delta[-1] == 0.0:
        out.append(float(lam[-1]))
    return out


def _predicted_crossings(schedule, cfg: StudyConfig, eta_tau: float, lo: float, hi: float) -> list[float]:
    """Crossovers of the model's BOOT and vanilla W2 (one direction) in ``[lo, hi]``: fine grid, then ``brentq`` in :math:`\\log\\lambda`."""
    from scipy.optimize import brentq

    model = StudentModel(eta_tau=eta_tau, init=cfg.init, input=cfg.input)
    boot = canonical_plan("boot", schedule.steps, cfg.segments)
    vanilla = canonical_plan("vanilla", schedule.steps, cfg.segments)

    def delta(lam):
        problem = Problem(schedule, np.atleast_1d(lam), model=model, solver=cfg.solver, target=cfg.target, segments=cfg.segments)
        return _direction_w2(problem, evaluate_plan(problem, boot).student) - _direction_w2(problem, evaluate_plan(problem, vanilla).student)

    grid = np.geomspace(lo, hi, 400)
    values = delta(grid)
    roots = []
    for k in range(len(grid) - 1):
        if values[k] == 0.0:
            roots.append(float(grid[k]))
        elif values[k] * values[k + 1] < 0:
            f = lambda x: float(delta(math.exp(x))[0])  # noqa: E731
            roots.append(float(math.exp(brentq(f, math.log(grid[k]), math.log(grid[k + 1]), xtol=1e-12))))
    return roots


def _rank_correlations(measured: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    if np.ptp(measured) == 0 or np.ptp(predicted) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(measured, predicted).statistic), float(stats.kendalltau(measured, predicted).statistic)


def _ranking_predictions(schedule, cfg: StudyConfig, eta_tau: float, lam: np.ndarray, plan_of: dict) -> dict:
    """Predicted per-direction student values and W2 of every plan name (``optimal`` per direction)."""
    model = StudentModel(eta_tau=eta_tau, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, lam, model=model, solver=cfg.solver, target=cfg.target, segments=cfg.segments)
    out = {}
    for name, plans in plan_of.items():
        student = np.empty(lam.size)
        for k in range(lam.size):
            student[k] = evaluate_plan(problem, plans[k]).student[k]
        out[name] = {"student": student, "w2": _direction_w2(problem, student)}
    return out


def _run_ranking(cfg: StudyConfig, store: UnitStore) -> dict:
    device, dtype = _environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    family = _families(cfg.family)[0]
    lam = np.asarray(cfg.lam, dtype=np.float64)
    if np.any(lam <= 0):
        raise ValueError("the ranking study needs lambda > 0 (it locates crossovers on a log grid)")
    data = make_gaussian(lam, rotated=bool(cfg.rotated), seed=derive_seed(cfg.seed, "rotation") % 2**32)
    train = TrainConfig(family=family, optimizer=cfg.optimizer, lr=cfg.lr, steps=cfg.node_steps, batch=cfg.batch, init=cfg.init,
                        input=cfg.input, hidden=cfg.hidden, depth=cfg.depth)
    model = StudentModel(eta_tau=cfg.eta_tau, init=cfg.init, input=cfg.input)
    # the plan of every (name, direction): canonical plans are shared, the optimum is per lambda
    plan_of: dict[str, list[Plan]] = {}
    for name in cfg.plans:
        if name == "optimal":
            plan_of[name] = [solve(Problem(schedule, float(v), model=model, solver=cfg.solver, target=cfg.target,
                                           segments=cfg.segments)).plan for v in lam]
        else:
            one = resolve_plans([name], Problem(schedule, lam, model=model, solver=cfg.solver, segments=cfg.segments))[0][1]
            plan_of[name if name in CANONICAL_KINDS else format_plan(one)] = [one] * lam.size
    to_run = sorted({format_plan(p) for plans in plan_of.values() for p in plans})
    measured_units: dict[str, list[dict]] = {text: [] for text in to_run}
    units = [(text, r) for r in range(cfg.repeats) for text in to_run]
    for text, r in _progress(units, cfg.progress, "ranking runs"):
        unit_cfg = {"study": "ranking", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments, "solver": cfg.solver,
                    "lam": cfg.lam, "rotated": bool(cfg.rotated), "plan": text, "train": train.to_dict(), "seed": cfg.seed, "repeat": r,
                    "n_eval": cfg.n_eval, "level": cfg.level, "dtype": str(dtype), "device": device.type}

        def compute(text=text, r=r):
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            executed = PlanExecutor(teacher, train, seed=derive_seed(cfg.seed, "ranking", r)).run(parse_plan(text, cfg.steps))
            inputs = teacher.noise_sample(cfg.n_eval, make_generator(derive_seed(cfg.seed, "ranking-eval", r), device))
            from .readout import read_out

            readout = read_out(executed.sampler(), teacher, inputs=inputs, level=cfg.level, n_ot=0)
            return {"gain": readout.gain, "gain_se": readout.gain_se, "residual": readout.residual,
                    "w2_teacher": readout.w2_direction["teacher"], "w2_data": readout.w2_direction["data"],
                    "loss_end": [rec["loss_end"] for rec in executed.records]}

        measured_units[text].append(store.get_or_run(f"ranking-{text}-seed{r}", unit_cfg, compute))
    names = list(plan_of)
    key = "w2_teacher" if cfg.target == "teacher" else "w2_data"
    # measured[name]: (R, d) per-direction W2 and gains, each direction from the plan of that direction
    w2_runs = {n: np.array([[measured_units[format_plan(plan_of[n][k])][r][key][k] for k in range(lam.size)]
                            for r in range(cfg.repeats)]) for n in names}
    gain_runs = {n: np.array([[measured_units[format_plan(plan_of[n][k])][r]["gain"][k] for k in range(lam.size)]
                              for r in range(cfg.repeats)]) for n in names}
    predicted = _ranking_predictions(schedule, cfg, cfg.eta_tau, lam, plan_of)

    # calibrate eta*tau: least squares between mean measured gains and the model's S (all plans, directions)
    from scipy.optimize import minimize_scalar

    mean_gain = {n: gain_runs[n].mean(0) for n in names}

    def misfit(log_eta_tau: float) -> float:
        pred = _ranking_predictions(schedule, cfg, math.exp(log_eta_tau), lam, plan_of)
        return float(sum(np.sum((mean_gain[n] - pred[n]["student"]) ** 2) for n in names))

    fit = minimize_scalar(misfit, bounds=(math.log(1e-3), math.log(1e2)), method="bounded", options={"xatol": 1e-6})
    eta_cal = float(math.exp(fit.x))
    calibrated = _ranking_predictions(schedule, cfg, eta_cal, lam, plan_of)

    per_lambda = []
    for k, value in enumerate(lam):
        meas = np.array([w2_runs[n][:, k].mean() for n in names])
        pred = np.array([predicted[n]["w2"][k] for n in names])
        cal = np.array([calibrated[n]["w2"][k] for n in names])
        rho, tau = _rank_correlations(meas, pred)
        rho_c, tau_c = _rank_correlations(meas, cal)
        best_pred = {names[i] for i in range(len(names)) if pred[i] <= pred.min() * (1 + 1e-9) + 1e-15}
        per_lambda.append({"lam": float(value), "spearman": rho, "kendall": tau, "spearman_calibrated": rho_c, "kendall_calibrated": tau_c,
                           "measured_best": names[int(np.argmin(meas))], "predicted_best": sorted(best_pred),
                           "winner_agrees": names[int(np.argmin(meas))] in best_pred})
    rows = []
    for n in names:
        runs = w2_runs[n]
        se = runs.std(0, ddof=1) / math.sqrt(cfg.repeats) if cfg.repeats > 1 else np.zeros(lam.size)
        rows.append({"name": n, "plans": [format_plan(p) for p in plan_of[n]], "w2_measured": runs.mean(0), "w2_se": se,
                     "w2_predicted": predicted[n]["w2"], "w2_calibrated": calibrated[n]["w2"],
                     "gain_measured": gain_runs[n].mean(0), "gain_predicted": predicted[n]["student"],
                     "gain_calibrated": calibrated[n]["student"], "w2_runs": runs})
    # crossover BOOT vs vanilla
    crossover = {}
    if "boot" in names and "vanilla" in names:
        delta_runs = w2_runs["boot"] - w2_runs["vanilla"]  # (R, d), paired by seed
        measured_x = _crossings(lam, delta_runs.mean(0))
        rng = np.random.default_rng(derive_seed(cfg.seed, "bootstrap") % 2**32)
        boot_x, none = [], 0
        for _ in range(2000):
            idx = rng.integers(0, cfg.repeats, size=(cfg.repeats, lam.size))
            resampled = np.take_along_axis(delta_runs, idx, axis=0).mean(0)
            found = _crossings(lam, resampled)
            if found:
                boot_x.append(found[0])
            else:
                none += 1
        alpha = 1.0 - cfg.level
        conditional = [float(np.quantile(boot_x, alpha / 2)), float(np.quantile(boot_x, 1 - alpha / 2))] if boot_x else None
        # the interval is reported only when the measured mean curve crosses and most resamples do too
        interval = conditional if measured_x and none / 2000.0 < 0.5 else None
        crossover = {
            "measured": measured_x, "measured_interval": interval, "bootstrap_no_crossing": none / 2000.0,
            "interval_given_crossing": conditional,
            "predicted": _predicted_crossings(schedule, cfg, cfg.eta_tau, float(lam.min()), float(lam.max())),
            "calibrated": _predicted_crossings(schedule, cfg, eta_cal, float(lam.min()), float(lam.max())),
            "delta_measured": delta_runs.mean(0), "delta_se": delta_runs.std(0, ddof=1) / math.sqrt(cfg.repeats) if cfg.repeats > 1 else np.zeros(lam.size),
            "delta_predicted": predicted["boot"]["w2"] - predicted["vanilla"]["w2"],
            "delta_calibrated": calibrated["boot"]["w2"] - calibrated["vanilla"]["w2"],
        }
    finite = lambda vals: [v for v in vals if v == v]  # noqa: E731
    summary = {
        "spearman_mean": float(np.mean(finite([p["spearman"] for p in per_lambda]))) if finite([p["spearman"] for p in per_lambda]) else float("nan"),
        "kendall_mean": float(np.mean(finite([p["kendall"] for p in per_lambda]))) if finite([p["kendall"] for p in per_lambda]) else float("nan"),
        "spearman_calibrated_mean": float(np.mean(finite([p["spearman_calibrated"] for p in per_lambda]))) if finite([p["spearman_calibrated"] for p in per_lambda]) else float("nan"),
        "winner_agreement": float(np.mean([p["winner_agrees"] for p in per_lambda])),
        "crossover_predicted": crossover.get("predicted", []), "crossover_measured": crossover.get("measured", []),
        "crossover_interval": crossover.get("measured_interval"), "crossover_calibrated": crossover.get("calibrated", []),
        "crossover_bootstrap_no_crossing": crossover.get("bootstrap_no_crossing"),
        "eta_tau": cfg.eta_tau, "eta_tau_calibrated": eta_cal, "target": cfg.target,
    }
    return {"lam": lam, "plans": rows, "per_lambda": per_lambda, "crossover": crossover, "summary": summary}


def _ranking_figure(result: dict):
    from opmerge.analysis.style import FAMILY_COLORS, new_figure

    lam = np.asarray(result["lam"])
    fig, (ax1, ax2) = new_figure(1, 2, width=9.6, height=3.8)
    data = {"lam": lam.tolist()}
    markers = {"vanilla": "o", "boot": "s", "cd": "^", "pd": "v", "optimal": "x"}
    n_rows = len(result["plans"])
    for index, row in enumerate(result["plans"]):
        color = FAMILY_COLORS.get(row["name"], "#000000" if row["name"] == "optimal" else "#8C8C8C")
        shift = lam * 1.04 ** (index - (n_rows - 1) / 2)  # small horizontal offsets keep coinciding markers visible
        ax1.errorbar(shift, row["w2_measured"], yerr=row["w2_se"], fmt=markers.get(row["name"], "d"), color=color, ms=4, capsize=2,
                     label=f"{row['name']} measured")
        ax1.plot(lam, row["w2_predicted"], "-", color=color, lw=1.0)
        ax1.plot(lam, row["w2_calibrated"], ":", color=color, lw=1.0)
        data[row["name"]] = {"measured": row["w2_measured"], "se": row["w2_se"], "predicted": row["w2_predicted"], "calibrated": row["w2_calibrated"]}
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel(r"data variance $\lambda$")
    ax1.set_ylabel("W2 per direction")
    eta_cal = result["summary"]["eta_tau_calibrated"]
    ax1.set_title(f"markers: measured; lines: model (eta*tau {result['summary']['eta_tau']:g}); dotted: calibrated ({eta_cal:.3g})", fontsize=7)
    ax1.legend(fontsize=6, ncol=1)
    cross = result.get("crossover") or {}
    if cross:
        ax2.errorbar(lam, cross["delta_measured"], yerr=cross["delta_se"], fmt="o", color="#0072B2", ms=3, capsize=2, label="measured")
        ax2.plot(lam, cross["delta_predicted"], "-", color="#000000", lw=1, label="model")
        ax2.plot(lam, cross["delta_calibrated"], ":", color="#000000", lw=1, label="model, calibrated eta*tau")
        ax2.axhline(0, color="#888888", lw=0.6)
        for x in cross["predicted"]:
            ax2.axvline(x, color="#000000", lw=0.8, ls="--")
        for x in cross["measured"]:
            ax2.axvline(x, color="#D55E00", lw=0.8, ls="--")
        if cross["measured_interval"]:
            ax2.axvspan(*cross["measured_interval"], color="#D55E00", alpha=0.12, lw=0)
        ax2.set_xscale("log")
        ax2.set_xlabel(r"data variance $\lambda$")
        ax2.set_ylabel("W2(BOOT) - W2(vanilla)")
        ax2.set_title("crossover: dashed black = model, orange = measured (band: bootstrap interval)", fontsize=7)
        ax2.legend(fontsize=6)
        data["crossover"] = {k: cross[k] for k in ("delta_measured", "delta_se", "delta_predicted", "delta_calibrated", "predicted", "measured", "measured_interval")}
    return fig, data


# ---------------------------------------------------------------------------------------------
# scot (SCoT and TraFlow students)
# ---------------------------------------------------------------------------------------------


def _scot_datasets(cfg: StudyConfig) -> list[tuple[str, tuple]]:
    if cfg.lam is not None:
        return [(f"d{len(cfg.lam)}", tuple(cfg.lam))]
    return [("d2", (0.25, 4.0)), ("d16", tuple(float(v) for v in np.geomspace(0.1, 10.0, 16)))]


def _plan_predictions(schedule, cfg: StudyConfig, lam: np.ndarray, segments: int) -> dict:
    """Predicted ``S`` per direction of the canonical plans and the optimum for ``segments`` student steps."""
    model = StudentModel(eta_tau=cfg.eta_tau, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, lam, model=model, solver=cfg.solver, segments=segments)
    out = {}
    for name, plan in resolve_plans(DEFAULT_PLANS, problem):
        out[name] = {"plan": format_plan(plan), "student": evaluate_plan(problem, plan).student}
    return out


def _run_scot(cfg: StudyConfig, store: UnitStore) -> dict:
    from .readout import read_out
    from .trajectory import TrajectoryConfig, TrajectoryTrainer, consistency_error, straightness, teacher_straightness

    device, dtype = _environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    methods = _families(cfg.family)
    sampling_steps = [k for k in (1, 2) if k <= cfg.steps]
    units = [(label, lam, method) for label, lam in _scot_datasets(cfg) for method in methods]
    rows, datasets = [], {}
    for label, lam_tuple, method in _progress(units, cfg.progress, "scot/traflow"):
        lam = np.asarray(lam_tuple)
        train = TrajectoryConfig(method=method, steps=cfg.train_steps, batch=cfg.batch, lr=cfg.lr, hidden=cfg.hidden, depth=cfg.depth)
        unit_cfg = {"study": "scot", "schedule": cfg.schedule, "steps": cfg.steps, "solver": cfg.solver, "lam": lam_tuple,
                    "rotated": bool(cfg.rotated), "train": train.to_dict(), "seed": cfg.seed, "n_eval": cfg.n_eval, "level": cfg.level,
                    "eta_tau": cfg.eta_tau, "init": cfg.init, "input": cfg.input, "dtype": str(dtype), "device": device.type}

        def compute(label=label, lam=lam, method=method, train=train):
            data = make_gaussian(lam, rotated=bool(cfg.rotated), seed=derive_seed(cfg.seed, "rotation") % 2**32)
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            started = time.perf_counter()
            trainer = TrajectoryTrainer(teacher, train, seed=derive_seed(cfg.seed, "scot", label, method))
            net = trainer.train()
            seconds = time.perf_counter() - started
            inputs = teacher.noise_sample(cfg.n_eval, make_generator(derive_seed(cfg.seed, "scot-eval", label), device))
            few = inputs[: min(2048, cfg.n_eval)]
            out = {"train_seconds": seconds, "history": trainer.history[-1] if trainer.history else {},
                   "consistency": consistency_error(net, inputs), "teacher_straightness": teacher_straightness(teacher, few), "readouts": {}}
            for k in sampling_steps:
                readout = read_out(trainer.sampler(k), teacher, inputs=inputs, level=cfg.level, n_ot=512)
                out["readouts"][str(k)] = {**readout.to_dict(), "straightness": straightness(net, few, k)}
            return out

        unit = store.get_or_run(f"scot-{label}-{method}", unit_cfg, compute)
        if label not in datasets:
            teacher_gain = np.atleast_1d(GaussianTeacher(schedule, make_gaussian(lam), cfg.solver).composite_gains())
            norm_noise = np.sqrt(schedule.alpha[-1] ** 2 * lam + schedule.sigma[-1] ** 2)
            datasets[label] = {"lam": lam, "teacher": teacher_gain, "exact": np.sqrt((schedule.alpha[0] ** 2 * lam + schedule.sigma[0] ** 2)) / norm_noise,
                               "norm_noise": norm_noise, "predictions": {str(k): _plan_predictions(schedule, cfg, lam, k) for k in sampling_steps},
                               "teacher_straightness": unit["teacher_straightness"]}
        info = datasets[label]
        for k in sampling_steps:
            readout = unit["readouts"][str(k)]
            gain = np.asarray(readout["gain"])
            distance = {name: float(np.sqrt(np.sum(info["norm_noise"] ** 2 * (gain - np.asarray(p["student"])) ** 2)))
                        for name, p in info["predictions"][str(k)].items()}
            distance_ref = {ref: float(np.sqrt(np.sum(info["norm_noise"] ** 2 * (gain - info[ref]) ** 2))) for ref in ("teacher", "exact")}
            closest = min(distance, key=distance.get)
            canonical = {name: value for name, value in distance.items() if name in CANONICAL_KINDS}
            closest_canonical = min(canonical, key=canonical.get) if canonical else None
            rows.append({
                "dataset": label, "method": method, "sampling_steps": k, "lam": lam, "gain": gain, "gain_low": readout["gain_low"],
                "gain_high": readout["gain_high"], "residual": readout["residual"], "teacher": info["teacher"], "exact": info["exact"],
                "w2_teacher": readout["w2_gaussian"]["teacher"], "w2_exact": readout["w2_gaussian"]["exact"], "w2_data": readout["w2_gaussian"]["data"],
                "w2_sample": readout["w2_sample"], "straightness": readout["straightness"], "consistency": unit["consistency"],
                "teacher_straightness": unit["teacher_straightness"], "plan_distance": distance, "reference_distance": distance_ref,
                "closest_plan": closest, "closest_plan_text": info["predictions"][str(k)][closest]["plan"],
                "closest_canonical": closest_canonical, "train_seconds": unit["train_seconds"],
                "final_losses": unit["history"],
            })
    summary = {f"{r['dataset']}-{r['method']}-{r['sampling_steps']}step": {
        "w2_teacher": r["w2_teacher"], "w2_data": r["w2_data"], "straightness": r["straightness"], "consistency": r["consistency"],
        "closest_plan": r["closest_plan"], "closest_canonical": r["closest_canonical"],
        "distance_to_closest_plan": r["plan_distance"][r["closest_plan"]], "distance_to_teacher": r["reference_distance"]["teacher"],
        "distance_to_exact": r["reference_distance"]["exact"]} for r in rows}
    return {"students": rows, "datasets": datasets, "summary": summary}


def _scot_figure(result: dict):
    from matplotlib.ticker import NullFormatter

    from opmerge.analysis.style import FAMILY_COLORS, new_figure

    labels = list(result["datasets"])
    fig, axes = new_figure(1, len(labels), width=4.8 * len(labels), height=3.8, squeeze=False)
    data: dict = {}
    styles = {("scot", 1): ("o", "#D55E00"), ("scot", 2): ("s", "#D55E00"), ("traflow", 1): ("o", "#56B4E9"), ("traflow", 2): ("s", "#56B4E9")}
    for ax, label in zip(axes[0], labels):
        info = result["datasets"][label]
        lam, exact = np.asarray(info["lam"]), np.asarray(info["exact"])
        entry = {"lam": lam, "teacher_over_exact": np.asarray(info["teacher"]) / exact}
        ax.plot(lam, np.asarray(info["teacher"]) / exact, "k-", lw=1.5, label="teacher T (DDIM)")
        ax.axhline(1.0, color="k", ls="--", lw=0.8, label="exact flow E")
        for name, pred in info["predictions"].get("1", {}).items():
            if name in FAMILY_COLORS:
                ax.plot(lam, np.asarray(pred["student"]) / exact, "-", marker=".", color=FAMILY_COLORS[name], lw=0.8, alpha=0.8,
                        label=f"model {name} (1 step)")
                entry[f"model_{name}_1step_over_exact"] = np.asarray(pred["student"]) / exact
        for row in result["students"]:
            if row["dataset"] != label:
                continue
            marker, color = styles.get((row["method"], row["sampling_steps"]), ("d", "#888888"))
            gain, low, high = (np.asarray(row[k]) / exact for k in ("gain", "gain_low", "gain_high"))
            ax.errorbar(lam, gain, yerr=[gain - low, high - gain], fmt=marker, color=color, ms=4, capsize=2,
                        mfc="none" if row["sampling_steps"] == 2 else color, label=f"{row['method']} {row['sampling_steps']}-step")
            entry[f"{row['method']}_{row['sampling_steps']}step_over_exact"] = gain
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"data variance $\lambda$")
        ax.set_ylabel("gain / exact-flow gain")
        ax.set_title(f"{label}: measured gains (99% CI) vs teacher, exact flow, plans", fontsize=8)
        data[label] = entry
    axes[0][0].legend(fontsize=6)
    return fig, data


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------

_RUNNERS = {"exactness": (lambda c, s: _run_exactness(c, s), lambda r: _exactness_figure(r)),
            "sgd": (lambda c, s: _run_sgd(c, s), lambda r: _sgd_figure(r)),
            "ranking": (lambda c, s: _run_ranking(c, s), lambda r: _ranking_figure(r)),
            "scot": (lambda c, s: _run_scot(c, s), lambda r: _scot_figure(r))}


def run_study(name: str, config: StudyConfig | dict | None = None, **overrides) -> dict:
    """Run one validation study and return its result (also written to ``<out>/<name>.json``).

    Parameters
    ----------
    name : {"exactness", "sgd", "ranking", "scot"}
    config : StudyConfig or dict, optional
        Fields of :class:`StudyConfig` (``study`` is set to ``name``); ``None`` fields take the defaults.
    **overrides
        More fields (override ``config``).

    Returns
    -------
    dict
        ``config`` (resolved), ``summary``, the per-plan / per-direction predicted and measured
        values, ``figure`` (paths), ``unit_cache`` (cached / computed counts), ``elapsed_s``.
    """
    if name not in STUDIES:
        raise ValueError(f"study must be one of {', '.join(STUDIES)}, got {name!r}")
    if config is None:
        values: dict = {}
    elif isinstance(config, StudyConfig):
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise TypeError(f"config must be a StudyConfig, a dict or None, got {type(config).__name__}")
    values.update(overrides)
    values["study"] = name
    cfg = StudyConfig(**values).resolved()
    started = time.perf_counter()
    store = UnitStore(cfg.out)
    runner, figure = _RUNNERS[name]
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        body = runner(cfg, store)
    finally:
        torch.set_num_threads(old_threads)
    result = {"study": name, "config": cfg.to_dict(), **body}
    return _finish(cfg, result, figure, started, store)
