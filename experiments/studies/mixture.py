r"""The ``mixture`` study: do real MLP students on Gaussian-mixture data rank merge plans as the core predicts?

For one preset mixture (:func:`opmerge.mixture.mixture_preset`) and one training budget (``short``:
few Adam updates per node, the students stay near their warm start; ``long``: many updates, what
is left is the students' approximation error), every plan is executed for real
(:class:`~experiments.mixture_bridge.MixturePlanExecutor`: residual-MLP students trained by Adam on
fresh draws of :math:`p_j`) and measured against the exact teacher on common inputs
:math:`z_N \sim p_N` (:func:`~experiments.mixture_bridge.measure_plan`: MSE and sample W2). The
same plans are predicted by the core in the gated affine family
(:func:`opmerge.mixture.simulate_plan`, its MSE and W2) and by the planner's cost
(:func:`opmerge.mixture.plan_cost`), each at the model budgets ``eta_taus``; the summary is the
Spearman (and Kendall) correlation between predicted and measured values over the plans.

Plans: the canonical kinds (``vanilla``, ``boot``, ``cd``, ``pd``) at every ``M`` of
``segment_counts`` (a plan that two kinds share is run once, under both names), plan texts,
``optimal`` (the planner's optimum at every ``M``, for the first ``eta_tau``), and ``random_plans``
seeded random plans (:func:`random_plan`: random ``M`` from 1 to 4, random segment boundaries, random
trees), so that plans differ in how many teacher steps one student covers.

Units (cached in ``<out>/units``, so a rerun resumes): one per executed plan (keyed without the model
budget, so a rerun with other ``eta_taus`` trains nothing) and one per model budget (every plan's
predictions). Progress lines go to stderr. Choices and measured numbers: ``docs/bridge_mixture.md``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from opmerge._validate import choice, integer, real_number
from opmerge.errors import InputError, InputTypeError
from opmerge.io import ResultCache
from opmerge.mixture import (
    PRESETS,
    Expectation,
    MixtureProblem,
    mixture_preset,
    optimal_mixture_plan,
    plan_cost,
    planner_tables,
    simulate_plan,
)
from opmerge.model import StudentModel
from opmerge.plans import CANONICAL_KINDS, MergeNode, Plan, canonical_plan, format_plan, parse_plan, tree_leaves
from opmerge.plans import random_plan as draw_plan
from opmerge.schedules import make_schedule

from .._torch import derive_seed, make_generator
from ..mixture_bridge import MIXTURE_INITS, MixturePlanExecutor, MixtureTrainConfig, measure_plan
from ..mixture_teacher import TorchMixtureTeacher
from ._common import StudyConfig, environment

__all__ = ["MixtureConfig", "BUDGETS", "run", "figure", "random_plan", "plan_list", "CONVERGED_ETA_TAU"]

#: the two training budgets of the study
BUDGETS = ("short", "long")
#: the model budget that stands for "trained to convergence" (the approximation error alone)
CONVERGED_ETA_TAU = 1e4
#: student and teacher outputs kept per plan for the figure's scatter
FIGURE_POINTS = 400
#: the most random plans (each costs a full plan execution)
MAX_RANDOM_PLANS = 100
#: the most segments of a random plan
RANDOM_MAX_SEGMENTS = 4


@dataclass(frozen=True)
class MixtureConfig(StudyConfig):
    r"""Configuration of the ``mixture`` study (the common fields of :class:`StudyConfig` and these).

    Parameters
    ----------
    preset : {"two-2d", "eight-2d", "mixture-16d"}
        The data (:func:`opmerge.mixture.mixture_preset`).
    separation : float
        The preset's separation (component standard deviations), in [0, 1e6].
    budget : {"short", "long"}
        Adam updates per merge node: ``short`` (default 25) or ``long`` (default 1000).
    segment_counts : tuple of int
        The ``M`` of the canonical plans (default 1, 2, 3).
    random_plans : int
        Seeded random plans (default 5), 0 to 100.
    eta_taus : tuple of float
        Model budgets :math:`\eta\tau` of the predictions; the first is the headline (default
        :math:`\eta K` of the chosen budget, then 1e4, i.e. converged).
    lr, node_steps, batch : float, int, int
        Adam step, updates per node (default from ``budget``), fresh draws per update.
    prefit_steps : int
        Adam updates of the pre-fit of a teacher step (the warm start from a leaf), default 1000.
    hidden, depth : int
        MLP width and hidden layers (default 4 and 1 in 2-D, 32 and 2 otherwise).
    n_eval : int
        Common inputs :math:`z_N` of the measured MSE (default 4096).
    w2_samples : int
        Points of the sample W2, of the measured and the predicted (default 1000, at most 4000).
    expectation_samples : int
        Monte Carlo draws of the core's expectations where it does not use quadrature (default 10000).
    """

    study = "mixture"

    preset: str = "two-2d"
    separation: float = 4.0
    budget: str = "long"
    segment_counts: tuple | None = None
    random_plans: int | None = None
    eta_taus: tuple | None = None
    lr: float | None = None
    node_steps: int | None = None
    batch: int | None = None
    prefit_steps: int | None = None
    hidden: int | None = None
    depth: int | None = None
    n_eval: int | None = None
    w2_samples: int | None = None
    expectation_samples: int | None = None

    @classmethod
    def defaults(cls, quick: bool) -> dict:  # noqa: D102
        return {"threads": 1, "segments": None, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "plans": ("vanilla", "boot", "cd", "pd"), "segment_counts": (1, 2) if quick else (1, 2, 3),
                "random_plans": 1 if quick else 5, "lr": 2e-3, "batch": 64 if quick else 256,
                "prefit_steps": 20 if quick else 1000, "n_eval": 256 if quick else 4096, "w2_samples": 100 if quick else 1000,
                "expectation_samples": 2000 if quick else 10_000}

    def _check_study(self) -> None:
        super()._check_study()
        choice(self.preset, "preset", tuple(PRESETS))
        real_number(self.separation, "separation", low=0.0)
        if self.separation > 1e6:
            raise InputError(f"separation must be in [0, 1e6], got {self.separation!r}")
        choice(self.budget, "budget", BUDGETS)
        if self.init not in MIXTURE_INITS:
            raise InputError(f"init must be one of {', '.join(MIXTURE_INITS)} for the mixture study, got {self.init!r}")
        if self.segment_counts is not None:
            counts = _int_tuple(self.segment_counts, "segment_counts")
            for m in counts:
                integer(m, "segment_counts", low=1, high=self.steps if self.steps is not None else 4096)
            object.__setattr__(self, "segment_counts", counts)
        if self.eta_taus is not None:
            values = self.eta_taus if isinstance(self.eta_taus, (tuple, list)) else (self.eta_taus,)
            if not values:
                raise InputError("eta_taus must list at least one model budget")
            object.__setattr__(self, "eta_taus", tuple(real_number(v, "eta_taus", low=0.0, low_open=True) for v in values))
        for name, low, high in (("random_plans", 0, MAX_RANDOM_PLANS), ("prefit_steps", 0, 10**8), ("w2_samples", 2, 4000),
                                ("expectation_samples", 100, 10**7)):
            if getattr(self, name) is not None:
                integer(getattr(self, name), name, low=low, high=high)
        if self.n_eval is not None and self.w2_samples is not None and self.w2_samples > self.n_eval:
            raise InputError(f"w2_samples must be at most n_eval = {self.n_eval}, got {self.w2_samples}")

    def resolved(self) -> "MixtureConfig":
        """The defaults; ``node_steps`` from ``budget``; width from the dimension; ``eta_taus`` from :math:`\\eta K`;
        ``out`` = ``results/validate/mixture/<preset>-<budget>``."""
        values = {name: getattr(self, name) for name in self.field_names()}
        if values["out"] is None:
            values["out"] = f"results/validate/mixture/{self.preset}-{self.budget}" + ("-quick" if self.quick else "")
        if values["node_steps"] is None:
            values["node_steps"] = {"short": 5, "long": 20}[self.budget] if self.quick else {"short": 25, "long": 1000}[self.budget]
        low_dim = mixture_preset(self.preset, self.separation).dim <= 2
        if values["hidden"] is None:
            values["hidden"] = 4 if low_dim else (8 if self.quick else 32)
        if values["depth"] is None:
            values["depth"] = 1 if low_dim else 2
        cfg = type(self)(**values)
        cfg = super(MixtureConfig, cfg).resolved()
        if cfg.eta_taus is None:
            cfg = type(cfg)(**{**{n: getattr(cfg, n) for n in cfg.field_names()}, "eta_taus": (cfg.lr * cfg.node_steps, CONVERGED_ETA_TAU)})
        return cfg


def _int_tuple(value, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or isinstance(value, bool):
        raise InputTypeError(f"{name} must be a list of ints, got {type(value).__name__}")
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not items:
        raise InputError(f"{name} must list at least one value")
    return tuple(integer(v, name) for v in items)


# =============================================================================================
# plans
# =============================================================================================


def random_plan(steps: int, rng: np.random.Generator, max_segments: int = RANDOM_MAX_SEGMENTS) -> Plan:
    r"""A random plan for ``N = steps``: ``M`` uniform in :math:`[1, \min(N, \text{max\_segments})]`,
    segment boundaries ``M - 1`` distinct cut points uniform among the ``N - 1`` gaps, and per segment
    of ``L >= 2`` leaves a random tree (the root gets ``k`` children, ``k`` uniform in
    :math:`[2, \min(L, 4)]`, cut points uniform without replacement; recursively).
    """
    steps = integer(steps, "steps", low=1)
    segments = int(rng.integers(1, min(steps, max_segments) + 1))
    return draw_plan(steps, segments, rng, boundaries="random")


def plan_list(cfg: MixtureConfig, optimal: dict | None = None) -> list[dict]:
    """The study's plans as ``[{"names": [...], "plan": text}]`` in order, each plan once.

    ``optimal`` maps ``M`` to the planner's optimal plan text (needed when ``cfg.plans`` names ``optimal``).
    """
    out: list[dict] = []
    index: dict[str, dict] = {}

    def add(name: str, plan: Plan) -> None:
        text = format_plan(plan)
        if text in index:
            if name not in index[text]["names"]:
                index[text]["names"].append(name)
            return
        index[text] = {"names": [name], "plan": text}
        out.append(index[text])

    for name in cfg.plans:
        if name in CANONICAL_KINDS:
            for m in cfg.segment_counts:
                add(f"{name} M={m}", canonical_plan(name, cfg.steps, m))
        elif name == "optimal":
            for m in cfg.segment_counts:
                add(f"optimal M={m}", parse_plan(optimal[m], cfg.steps))
        else:
            add(name, parse_plan(name, cfg.steps))
    rng = np.random.default_rng(derive_seed(cfg.seed, "mixture-random-plans") % 2**63)
    added, tries = 0, 0
    while added < cfg.random_plans and tries < 1000:
        tries += 1
        plan = random_plan(cfg.steps, rng)
        if format_plan(plan) not in index:
            added += 1
            add(f"random{added}", plan)
    return out


def _max_span(plan: Plan) -> int:
    """The most teacher steps one student of ``plan`` covers (a segment root's leaves; 0 if every segment is a teacher step)."""
    return max((len(tree_leaves(seg)) for seg in plan.segments if isinstance(seg, MergeNode)), default=0)


def _short(name: str) -> str:
    """A point label: ``vanilla M=1`` -> ``vanilla1``, ``random3`` as is."""
    return name.replace(" M=", "")


def _kind(names: list[str]) -> str:
    """The family colour key of a plan: its first canonical kind, ``optimal``, or ``mixed``."""
    first = names[0].split(" ")[0]
    return first if first in CANONICAL_KINDS or first == "optimal" else "mixed"


# =============================================================================================
# run
# =============================================================================================


def _say(cfg: MixtureConfig, text: str) -> None:
    if cfg.progress:
        print(f"mixture {cfg.preset} {cfg.budget}: {text}", file=sys.stderr, flush=True)


def _problem(cfg: MixtureConfig, eta_tau: float) -> MixtureProblem:
    mixture = mixture_preset(cfg.preset, cfg.separation)
    model = StudentModel(eta_tau=eta_tau, init=cfg.init, input="forward")
    expectation = Expectation(samples=cfg.expectation_samples, seed=cfg.seed % 2**32)
    return MixtureProblem(mixture, make_schedule(cfg.schedule, cfg.steps), model, family="gated", solver=cfg.solver,
                          expectation=expectation, w2_samples=max(100, cfg.w2_samples))


def _predictions(cfg: MixtureConfig, eta_tau: float, texts: list[str] | None) -> dict:
    """Every plan's core prediction at ``eta_tau`` (and the planner's optimum at each ``M``)."""
    problem = _problem(cfg, eta_tau)
    tables = planner_tables(problem)
    out: dict = {"plans": {}, "optimal": {}, "tables_seconds": tables.seconds}
    for m in cfg.segment_counts:
        best = optimal_mixture_plan(problem, m, tables=tables)
        out["optimal"][str(m)] = {"plan": format_plan(best.plan), "cost": best.cost}
    for text in texts or []:
        sim = simulate_plan(problem, text)
        out["plans"][text] = {"mse": sim.mse, "mse_half_width": sim.mse_half_width, "w2": sim.w2, "w2_method": sim.w2_method,
                              "gaussian_w2": sim.gaussian_w2, "plan_cost": plan_cost(tables, text)}
    return out


def _prediction_unit(cfg: MixtureConfig, cache: ResultCache, eta_tau: float, texts: list[str] | None) -> dict:
    unit = {"unit": "mixture-prediction", "preset": cfg.preset, "separation": cfg.separation, "schedule": cfg.schedule,
            "steps": cfg.steps, "solver": cfg.solver, "init": cfg.init, "eta_tau": eta_tau, "segment_counts": cfg.segment_counts,
            "expectation_samples": cfg.expectation_samples, "w2_samples": cfg.w2_samples, "seed": cfg.seed, "plans": texts}
    return cache.get_or_compute(unit, lambda: _predictions(cfg, eta_tau, texts))


def _projection(mixture) -> np.ndarray:
    """The two leading principal axes of the mixture (the identity in 2-D), shape (d, 2)."""
    if mixture.dim == 2:
        return np.eye(2)
    lam, vec = np.linalg.eigh(mixture.covariance())
    return vec[:, ::-1][:, :2]


def run(cfg: MixtureConfig, cache: ResultCache) -> dict:
    """Predictions (one cached unit per model budget), then every plan executed and measured (one cached unit each)."""
    device, dtype = environment(cfg)
    mixture = mixture_preset(cfg.preset, cfg.separation)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    optimal = None
    if "optimal" in cfg.plans:
        _say(cfg, f"planner's optimum at eta*tau = {cfg.eta_taus[0]:g}")
        first = _prediction_unit(cfg, cache, cfg.eta_taus[0], None)
        optimal = {int(m): row["plan"] for m, row in first["optimal"].items()}
    plans = plan_list(cfg, optimal)
    texts = [row["plan"] for row in plans]
    predictions = {}
    for eta_tau in cfg.eta_taus:
        started = time.perf_counter()
        predictions[eta_tau] = _prediction_unit(cfg, cache, eta_tau, texts)
        _say(cfg, f"core predictions at eta*tau = {eta_tau:g} for {len(texts)} plans ({time.perf_counter() - started:.1f} s)")
    train = MixtureTrainConfig(family="mlp", optimizer="adam", lr=cfg.lr, steps=cfg.node_steps, batch=cfg.batch, init=cfg.init,
                               input=cfg.input, hidden=cfg.hidden, depth=cfg.depth, prefit_steps=cfg.prefit_steps)
    teacher = TorchMixtureTeacher(mixture, schedule, cfg.solver, dtype=dtype, device=device)
    inputs = teacher.noise_sample(cfg.n_eval, make_generator(derive_seed(cfg.seed, "mixture-eval"), device))
    with torch.no_grad():
        teacher_out = teacher.sample(inputs)
    proj = _projection(mixture)
    prefits: dict = {}
    measured = {}
    for index, row in enumerate(plans):
        text = row["plan"]
        unit = {"unit": "mixture-plan", "preset": cfg.preset, "separation": cfg.separation, "schedule": cfg.schedule, "steps": cfg.steps,
                "solver": cfg.solver, "plan": text, "train": train.to_dict(), "seed": cfg.seed, "n_eval": cfg.n_eval,
                "w2_samples": cfg.w2_samples, "dtype": str(dtype), "device": device.type}

        def compute(text=text) -> dict:
            executor = MixturePlanExecutor(teacher, train, seed=derive_seed(cfg.seed, "mixture"), prefits=prefits,
                                           compile=cfg.compile)
            executed = executor.run(parse_plan(text, cfg.steps))
            measurement, out = measure_plan(executed, inputs, teacher_out, cfg.w2_samples)
            points = out[:FIGURE_POINTS].double().cpu().numpy() @ proj
            return {**measurement.to_dict(), "records": executed.records, "points": points}

        started = time.perf_counter()
        hits = cache.hits
        measured[text] = cache.get_or_compute(unit, compute)
        how = "from cache" if cache.hits > hits else f"computed in {time.perf_counter() - started:.1f} s"
        _say(cfg, f"plan {index + 1}/{len(plans)} {'/'.join(row['names'])} {text}: MSE {measured[text]['mse']:.4g}, {how}")
    return _assemble(cfg, plans, predictions, measured, teacher_out[:FIGURE_POINTS].double().cpu().numpy() @ proj)


def _correlation(x: list[float], y: list[float]) -> dict:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return {"spearman": float("nan"), "kendall": float("nan"), "spearman_p": float("nan")}
    rho = stats.spearmanr(x, y)
    return {"spearman": float(rho.statistic), "kendall": float(stats.kendalltau(x, y).statistic), "spearman_p": float(rho.pvalue)}


def _assemble(cfg: MixtureConfig, plans: list[dict], predictions: dict, measured: dict, teacher_points: np.ndarray) -> dict:
    z = stats.norm.ppf(0.5 + cfg.level / 2)
    rows = []
    for row in plans:
        text = row["plan"]
        plan = parse_plan(text, cfg.steps)
        m = measured[text]
        rows.append({"names": row["names"], "kind": _kind(row["names"]), "plan": text, "segments": plan.n_segments, "merges": plan.n_merges,
                     "max_span": _max_span(plan), "mse_measured": m["mse"], "mse_se": m["mse_se"],
                     "mse_interval": [m["mse"] - z * m["mse_se"], m["mse"] + z * m["mse_se"]], "w2_measured": m["w2"],
                     "predicted": {format(eta, "g"): predictions[eta]["plans"][text] for eta in cfg.eta_taus},
                     "records": m["records"], "points": m["points"]})
    correlations = {}
    for eta in cfg.eta_taus:
        key = format(eta, "g")
        pred = [r["predicted"][key] for r in rows]
        correlations[key] = {
            "mse": _correlation([p["mse"] for p in pred], [r["mse_measured"] for r in rows]),
            "w2": _correlation([p["w2"] for p in pred], [r["w2_measured"] for r in rows]),
            "plan_cost": _correlation([p["plan_cost"] for p in pred], [r["mse_measured"] for r in rows]),
        }
    head = format(cfg.eta_taus[0], "g")
    order = np.argsort([r["mse_measured"] for r in rows], kind="stable")
    pred_head = [r["predicted"][head]["mse"] for r in rows]
    summary = {
        "preset": cfg.preset, "budget": cfg.budget, "node_steps": cfg.node_steps, "plans": len(rows), "eta_tau": cfg.eta_taus[0],
        "spearman_mse": correlations[head]["mse"]["spearman"], "kendall_mse": correlations[head]["mse"]["kendall"],
        "spearman_plan_cost": correlations[head]["plan_cost"]["spearman"], "spearman_w2": correlations[head]["w2"]["spearman"],
        "correlations": correlations,
        "measured_best": rows[int(order[0])]["plan"], "measured_worst": rows[int(order[-1])]["plan"],
        "predicted_best": rows[int(np.argmin(pred_head))]["plan"], "predicted_worst": rows[int(np.argmax(pred_head))]["plan"],
        "optimal": {format(eta, "g"): predictions[eta]["optimal"] for eta in cfg.eta_taus},
    }
    return {"plans": rows, "teacher_points": teacher_points, "summary": summary}


# =============================================================================================
# figure
# =============================================================================================


def figure(result: dict):
    """Predicted vs measured MSE over the plans, and teacher vs student samples of the best and the worst plan."""
    from opmerge.analysis.style import FAMILY_COLORS, FAMILY_LABELS, new_figure

    s, rows = result["summary"], result["plans"]
    cfg = result["config"]
    head = format(s["eta_tau"], "g")
    fig, axes = new_figure(1, 3, width=13.5, height=4.2)
    ax = axes[0]
    pred = np.array([r["predicted"][head]["mse"] for r in rows])
    meas = np.array([r["mse_measured"] for r in rows])
    markers = {1: "o", 2: "s", 3: "^", 4: "D"}
    shown_kinds = set()
    for r, p, m in zip(rows, pred, meas):
        kind = r["kind"] if r["kind"] in FAMILY_COLORS else "mixed"
        label = None
        if kind not in shown_kinds:
            shown_kinds.add(kind)
            label = FAMILY_LABELS.get(kind, kind) if kind != "mixed" else "random / text"
        ax.scatter([p], [m], color=FAMILY_COLORS.get(kind, "#000000"), marker=markers.get(r["segments"], "P"), s=30, label=label, zorder=3)
        ax.annotate(_short(r["names"][0]), (p, m), fontsize=6, xytext=(3, 2), textcoords="offset points", color="#444444")
    for seg, mk in markers.items():
        if any(r["segments"] == seg for r in rows):
            ax.scatter([], [], color="#888888", marker=mk, s=20, label=f"M = {seg}")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # labels at 1, 2, 5 x 10^k, written plainly
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(rf"predicted MSE (core, gated affine, $\eta\tau$ = {s['eta_tau']:g})")
    ax.set_ylabel("measured MSE (MLP students vs teacher)")
    ax.set_title(f"{cfg['preset']}, {s['budget']} budget ({s['node_steps']} Adam updates/node)\n"
                 f"Spearman {s['spearman_mse']:.2f} (planner cost: {s['spearman_plan_cost']:.2f}), {s['plans']} plans", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", ncol=2)
    teacher = np.asarray(result["teacher_points"])
    best = min(rows, key=lambda r: r["mse_measured"])
    worst = max(rows, key=lambda r: r["mse_measured"])
    axis_label = ("$x_1$", "$x_2$") if np.asarray(best["points"]).shape[1] == 2 and cfg["preset"].endswith("2d") else ("principal axis 1", "principal axis 2")
    data = {"predicted_mse": pred, "measured_mse": meas, "plans": [r["plan"] for r in rows], "eta_tau": s["eta_tau"],
            "teacher_points": teacher}
    for axis, row, which in ((axes[1], best, "best"), (axes[2], worst, "worst")):
        pts = np.asarray(row["points"])
        axis.scatter(teacher[:, 0], teacher[:, 1], s=7, color="#8C8C8C", alpha=0.5, label="teacher samples", lw=0)
        axis.scatter(pts[:, 0], pts[:, 1], s=9, facecolors="none", edgecolors="#D55E00" if which == "worst" else "#0072B2",
                     alpha=0.8, lw=0.6, label="student samples (same inputs $z_N$)")
        axis.set_title(f"{which} measured plan: {row['plan']}\n({', '.join(row['names'])}) MSE {row['mse_measured']:.3g}, "
                       f"W2 {row['w2_measured']:.3g}", fontsize=8)
        axis.set_xlabel(axis_label[0])
        axis.set_ylabel(axis_label[1])
        axis.legend(fontsize=6, loc="upper left", markerscale=3)
        axis.set_aspect("equal", adjustable="datalim")
        data[f"{which}_plan"] = row["plan"]
        data[f"{which}_points"] = pts
    fig.tight_layout()
    return fig, data
