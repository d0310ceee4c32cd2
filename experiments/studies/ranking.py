r"""The ``ranking`` study: do MLP students rank the plans as the model does, and where is the BOOT-vs-vanilla crossover?

Per-direction MLP students (``mlp-separable``: every :math:`\lambda` of the grid is an independent
one-dimensional problem) are trained by Adam with a fixed per-node budget for every plan and seed.
Per :math:`\lambda` the measured per-direction W2 (to the teacher or the data) ranks the plans; the
ranks are compared with the model's (Spearman, Kendall), the model's budget :math:`\eta\tau` is
calibrated by least squares on the mean gains, and the BOOT-vs-vanilla crossover is located in
:math:`\log\lambda` (measured, with a bootstrap interval over seeds; predicted, by ``brentq``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from opmerge.errors import InputError
from opmerge.io import ResultCache
from opmerge.model import StudentModel
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import CANONICAL_KINDS, Plan, canonical_plan, format_plan, parse_plan
from opmerge.schedules import make_schedule
from opmerge.solvers import solve

from .._torch import derive_seed, make_generator
from ..executor import GaussianPlanExecutor, TrainConfig
from ..students import LINEAR_FAMILIES
from ..gaussian import make_gaussian
from ..teacher import GaussianTeacher
from ._common import StudyConfig, environment, families, progress, resolve_plans

__all__ = ["RankingConfig", "run", "figure"]


@dataclass(frozen=True)
class RankingConfig(StudyConfig):
    r"""Configuration of the ``ranking`` study (the common fields of :class:`StudyConfig` and these).

    Parameters
    ----------
    target : {"teacher", "data"}
        W2 target of the ranking.
    eta_tau : float
        Model budget :math:`\eta\tau` of the predictions (default :math:`\eta K` for plain gradient
        steps, which are gradient flow for time :math:`\eta K`; 0.5 for Adam, which has no such map).
    lr, node_steps, batch : per-node step size, updates and minibatch size
    repeats : int
        Independent seeds, at least 2 (the standard errors and the bootstrap interval of the
        crossover need two).
    family : str
        Student family (one of ``diagonal``, ``full``, ``mlp``, ``mlp-separable``; default ``mlp-separable``).
    optimizer : {"exact-gd", "sgd", "adam"}
    hidden, depth : int
        MLP width and hidden layers.
    n_eval : int
        Fresh inputs of each readout.
    rotated : bool
    pilot_repeats : int
        Seeds of the calibration pilots (Adam only; 0 skips them): single merges of 2 and 3 steps
        at times ``N`` and ``ceil(N / 2)`` (:func:`opmerge.calibration.pilot_plans`), seeds derived
        under ``"pilot"``, none of them a compared plan. They calibrate the ``adam`` law's step scale
        (docs/calibration.md) for the held-out prediction.
    """

    study = "ranking"

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
    n_eval: int | None = None
    rotated: bool | None = None
    pilot_repeats: int | None = None

    @classmethod
    def defaults(cls, quick: bool) -> dict:  # noqa: D102
        return {**super().defaults(quick), "rotated": False, "schedule": "vp-cosine", "steps": 4 if quick else 6,
                "lam": (0.1, 1.0, 10.0) if quick else tuple(float(v) for v in np.geomspace(0.1, 10.0, 9)),
                "lr": 1e-3 if quick else 3e-4, "node_steps": 30 if quick else 100, "batch": 256, "repeats": 2 if quick else 4,
                "family": "mlp-separable", "optimizer": "adam", "hidden": 16 if quick else 32, "depth": 2,
                "n_eval": 8192 if quick else 65536, "pilot_repeats": 1}

    def _check_study(self) -> None:
        super()._check_study()
        if self.lam is not None and min(self.lam) <= 0:
            raise InputError(f"lam must be > 0 for the ranking study (it locates crossovers on a log grid), got {min(self.lam)!r}")
        if self.optimizer == "exact-gd" and self.family is not None and self.family not in LINEAR_FAMILIES:
            raise InputError(f"optimizer 'exact-gd' needs a linear family ({', '.join(LINEAR_FAMILIES)}), got family {self.family!r}")

    def resolved(self) -> "RankingConfig":
        """The defaults, then :math:`\\eta\\tau` from the optimiser's budget when not given."""
        cfg = super().resolved()
        if cfg.eta_tau is None:
            eta_tau = cfg.lr * cfg.node_steps if cfg.optimizer in ("sgd", "exact-gd") and cfg.node_steps else 0.5
            cfg = type(cfg)(**{**{name: getattr(cfg, name) for name in cfg.field_names()}, "eta_tau": eta_tau})
        return cfg


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


def _predicted_crossings(schedule, cfg: RankingConfig, eta_tau: float, lo: float, hi: float) -> list[float]:
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


def _ranking_predictions(schedule, cfg: RankingConfig, eta_tau: float, lam: np.ndarray, plan_of: dict,
                         model: StudentModel | None = None) -> dict:
    """Predicted per-direction student values and W2 of every plan name (``optimal`` per direction);
    ``model`` replaces the flow model at ``eta_tau`` (a training law of docs/theory.md §9)."""
    model = model or StudentModel(eta_tau=eta_tau, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, lam, model=model, solver=cfg.solver, target=cfg.target, segments=cfg.segments)
    out = {}
    for name, plans in plan_of.items():
        student = np.empty(lam.size)
        for k in range(lam.size):
            student[k] = evaluate_plan(problem, plans[k]).student[k]
        out[name] = {"student": student, "w2": _direction_w2(problem, student)}
    return out


def run(cfg: "RankingConfig", cache: ResultCache) -> dict:
    """Run every (plan, seed) unit (cached), then ranks, calibration and the BOOT-vs-vanilla crossover."""
    device, dtype = environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    family = families(cfg.family)[0]
    lam = np.asarray(cfg.lam, dtype=np.float64)
    if np.any(lam <= 0):
        raise InputError("the ranking study needs lambda > 0 (it locates crossovers on a log grid)")
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
    for text, r in progress(units, cfg.progress, "ranking runs"):
        unit_cfg = {"unit": f"ranking-{text}-seed{r}", "study": "ranking", "schedule": cfg.schedule, "steps": cfg.steps, "segments": cfg.segments, "solver": cfg.solver,
                    "lam": cfg.lam, "rotated": bool(cfg.rotated), "plan": text, "train": train.to_dict(), "seed": cfg.seed, "repeat": r,
                    "n_eval": cfg.n_eval, "level": cfg.level, "dtype": str(dtype), "device": device.type}

        def compute(text=text, r=r):
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            executed = GaussianPlanExecutor(teacher, train, seed=derive_seed(cfg.seed, "ranking", r),
                                            compile=cfg.compile).run(parse_plan(text, cfg.steps))
            inputs = teacher.noise_sample(cfg.n_eval, make_generator(derive_seed(cfg.seed, "ranking-eval", r), device))
            from ..readout import read_out

            readout = read_out(executed.sampler(), teacher, inputs=inputs, level=cfg.level, n_ot=0)
            return {"gain": readout.gain, "gain_se": readout.gain_se, "residual": readout.residual,
                    "w2_teacher": readout.w2_direction["teacher"], "w2_data": readout.w2_direction["data"],
                    "loss_end": [rec["loss_end"] for rec in executed.records]}

        measured_units[text].append(cache.get_or_compute(unit_cfg, compute))
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

    # the training law of the optimiser (docs/theory.md §9): Adam as is, and with its step scale
    # calibrated on pilots that share no plan and no seed with the runs above (docs/calibration.md)
    law = {}
    if cfg.optimizer == "adam":
        law_model = StudentModel(training="adam", lr=cfg.lr, gd_steps=cfg.node_steps, init=cfg.init, input=cfg.input)
        law["adam"] = _ranking_predictions(schedule, cfg, cfg.eta_tau, lam, plan_of, law_model)
        if cfg.pilot_repeats:
            law["calibration"] = _calibrate(cfg, schedule, data, train, lam, dtype, device, cache, to_run)
            law["adam_calibrated"] = _ranking_predictions(schedule, cfg, cfg.eta_tau, lam, plan_of,
                                                          law["calibration"]["cost_model"].student_model(cfg.init, cfg.input))

    per_lambda = []
    for k, value in enumerate(lam):
        meas = np.array([w2_runs[n][:, k].mean() for n in names])
        pred = np.array([predicted[n]["w2"][k] for n in names])
        cal = np.array([calibrated[n]["w2"][k] for n in names])
        rho, tau = _rank_correlations(meas, pred)
        rho_c, tau_c = _rank_correlations(meas, cal)
        best_pred = {names[i] for i in range(len(names)) if pred[i] <= pred.min() * (1 + 1e-9) + 1e-15}
        entry = {"lam": float(value), "spearman": rho, "kendall": tau, "spearman_calibrated": rho_c, "kendall_calibrated": tau_c,
                 "measured_best": names[int(np.argmin(meas))], "predicted_best": sorted(best_pred),
                 "winner_agrees": names[int(np.argmin(meas))] in best_pred}
        for key in ("adam", "adam_calibrated"):
            if key in law:
                entry[f"spearman_{key}"] = _rank_correlations(meas, np.array([law[key][n]["w2"][k] for n in names]))[0]
        per_lambda.append(entry)
    rows = []
    for n in names:
        runs = w2_runs[n]
        se = runs.std(0, ddof=1) / math.sqrt(cfg.repeats) if cfg.repeats > 1 else np.zeros(lam.size)
        row = {"name": n, "plans": [format_plan(p) for p in plan_of[n]], "w2_measured": runs.mean(0), "w2_se": se,
               "w2_predicted": predicted[n]["w2"], "w2_calibrated": calibrated[n]["w2"],
               "gain_measured": gain_runs[n].mean(0), "gain_predicted": predicted[n]["student"],
               "gain_calibrated": calibrated[n]["student"], "w2_runs": runs}
        for key in ("adam", "adam_calibrated"):
            if key in law:
                row[f"w2_{key}"], row[f"gain_{key}"] = law[key][n]["w2"], law[key][n]["student"]
        rows.append(row)
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
    measured_w2 = np.array([w2_runs[n].mean(0) for n in names])
    se_w2 = np.array([row["w2_se"] for row in rows])
    texts = [[format_plan(p) for p in plan_of[n]] for n in names]
    summary["log10_error_flow"] = _log_error(measured_w2, np.array([predicted[n]["w2"] for n in names]))
    summary["significant_pairs_flow"] = _pair_agreement(measured_w2, se_w2, np.array([predicted[n]["w2"] for n in names]), texts)
    for key in ("adam", "adam_calibrated"):
        if key in law:
            values = finite([p[f"spearman_{key}"] for p in per_lambda])
            summary[f"spearman_{key}_mean"] = float(np.mean(values)) if values else float("nan")
            summary[f"log10_error_{key}"] = _log_error(measured_w2, np.array([law[key][n]["w2"] for n in names]))
            summary[f"significant_pairs_{key}"] = _pair_agreement(measured_w2, se_w2, np.array([law[key][n]["w2"] for n in names]), texts)
    out = {"lam": lam, "plans": rows, "per_lambda": per_lambda, "crossover": crossover, "summary": summary}
    if "calibration" in law:
        calib = law["calibration"]
        summary["pilot_share"] = calib["pilot_share"]
        out["calibration"] = {"cost_model": calib["cost_model"].to_dict(), "pilot_plans": calib["pilot_plans"],
                              "pilot_share": calib["pilot_share"]}
    return out


def _log_error(measured: np.ndarray, predicted: np.ndarray) -> float:
    r"""Median over (plan, direction) of :math:`|\log_{10}(W_2^{pred} / W_2^{meas})|` (predictions floored at 1e-6)."""
    ok = measured > 0
    return float(np.median(np.abs(np.log10(np.maximum(predicted[ok], 1e-6) / measured[ok])))) if ok.any() else float("nan")


def _pair_agreement(measured: np.ndarray, se: np.ndarray, predicted: np.ndarray, texts: list) -> dict:
    r"""Pairs of different plans (same direction) whose measured W2 differ by more than two standard errors,
    :math:`|m_a - m_b| > 2\sqrt{s_a^2 + s_b^2}`, and how many of them the prediction orders the same way."""
    agree = total = 0
    for k in range(measured.shape[1]):
        for a in range(measured.shape[0]):
            for b in range(a + 1, measured.shape[0]):
                if texts[a][k] == texts[b][k]:
                    continue
                gap = measured[a, k] - measured[b, k]
                if abs(gap) > 2.0 * math.hypot(se[a, k], se[b, k]):
                    total += 1
                    agree += int(np.sign(predicted[a, k] - predicted[b, k]) == np.sign(gap))
    return {"agree": agree, "pairs": total}


def _calibrate(cfg: RankingConfig, schedule, data, train, lam: np.ndarray, dtype, device, cache: ResultCache, study_plans: list) -> dict:
    """Run the calibration pilots (cached units, seeds under ``"pilot"``) and fit the ``adam`` law's step scale."""
    from opmerge.calibration import CostModel, fit_step_scale

    from ..calibration import pilot_cost_share, run_gaussian_pilots

    teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
    base = {"study": "ranking", "schedule": cfg.schedule, "steps": cfg.steps, "solver": cfg.solver, "lam": cfg.lam,
            "rotated": bool(cfg.rotated), "train": train.to_dict(), "dtype": str(dtype), "device": device.type}
    nodes, pilot_texts = run_gaussian_pilots(teacher, train, schedule, lam, repeats=cfg.pilot_repeats, seed=cfg.seed, cache=cache,
                                             unit_base=base, n_eval=min(cfg.n_eval, 16384), progress=cfg.progress)
    table, report = fit_step_scale(nodes, "adam", cfg.lr, cfg.node_steps, cfg.steps, source="ranking-study pilots")
    share = pilot_cost_share(pilot_texts, cfg.pilot_repeats, study_plans, cfg.repeats)
    cost = CostModel(law="adam", lr=cfg.lr, gd_steps=cfg.node_steps, step_table=table, beta1=0.9, beta2=0.999, eps=1e-8,
                     report={**report, "pilot_plans": pilot_texts, "pilot_repeats": cfg.pilot_repeats, "pilot_share": share})
    return {"cost_model": cost, "pilot_plans": pilot_texts, "pilot_share": share}


def figure(result: dict):
    """Measured and predicted per-direction W2 of every plan, and the BOOT-vs-vanilla difference."""
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
        entry = {"measured": row["w2_measured"], "se": row["w2_se"], "predicted": row["w2_predicted"], "calibrated": row["w2_calibrated"]}
        if "w2_adam_calibrated" in row:  # the adam law calibrated on pilots (solid) beside the flow model (dotted)
            ax1.plot(lam, np.maximum(row["w2_adam_calibrated"], 1e-6), "-", color=color, lw=1.0)
            ax1.plot(lam, row["w2_predicted"], ":", color=color, lw=1.0)
            entry.update(adam=row["w2_adam"], adam_calibrated=row["w2_adam_calibrated"])
        else:
            ax1.plot(lam, row["w2_predicted"], "-", color=color, lw=1.0)
            ax1.plot(lam, row["w2_calibrated"], ":", color=color, lw=1.0)
        data[row["name"]] = entry
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel(r"data variance $\lambda$")
    ax1.set_ylabel("W2 per direction")
    s = result["summary"]
    if "spearman_adam_calibrated_mean" in s:
        ax1.set_title(f"markers: measured; lines: adam law calibrated on pilots (Spearman {s['spearman_adam_calibrated_mean']:.2f})\n"
                      f"dotted: flow model, eta*tau {s['eta_tau']:g} (Spearman {s['spearman_mean']:.2f})", fontsize=7)
    else:
        ax1.set_title(f"markers: measured; lines: model (eta*tau {s['eta_tau']:g}); dotted: calibrated ({s['eta_tau_calibrated']:.3g})",
                      fontsize=7)
    ax1.legend(fontsize=6, ncol=1)
    cross = result.get("crossover") or {}
    if cross:
        ax2.errorbar(lam, cross["delta_measured"], yerr=cross["delta_se"], fmt="o", color="#0072B2", ms=3, capsize=2, label="measured")
        ax2.plot(lam, cross["delta_predicted"], "-", color="#000000", lw=1, label="flow model")
        ax2.plot(lam, cross["delta_calibrated"], ":", color="#000000", lw=1, label="flow model, calibrated eta*tau")
        rows = {row["name"]: row for row in result["plans"]}
        if "w2_adam_calibrated" in rows.get("boot", {}) and "vanilla" in rows:
            delta_law = np.asarray(rows["boot"]["w2_adam_calibrated"]) - np.asarray(rows["vanilla"]["w2_adam_calibrated"])
            ax2.plot(lam, delta_law, "-", color="#D55E00", lw=1.2, label="adam law, calibrated on pilots")
            data["crossover_adam_calibrated"] = delta_law
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
        ax2.set_title("BOOT minus vanilla; dashed: crossovers, black = flow model,\norange = measured (band: bootstrap interval)", fontsize=7)
        ax2.legend(fontsize=6)
        data["crossover"] = {k: cross[k] for k in ("delta_measured", "delta_se", "delta_predicted", "delta_calibrated", "predicted", "measured", "measured_interval")}
    return fig, data

