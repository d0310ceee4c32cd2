r"""The ``scot`` study: what SCoT and TraFlow students learn per eigen-direction, and which plan they sit closest to.

For each dataset (a two-direction and a sixteen-direction spectrum, or the given ``lam``) and
method, a trajectory student (:mod:`experiments.trajectory`) is trained against the Gaussian teacher
and read back (:func:`experiments.readout.read_out`) when sampled in one and two steps. Its
per-direction gains are compared with the teacher's, the exact flow's and the model's prediction for
every canonical plan and the optimum with the same number of student steps; the distance is
:math:`\sqrt{\sum_i \|v_i\|^2 (g_i - S_i)^2}` with :math:`\|v_i\|^2 = \alpha_N^2\lambda_i + \sigma_N^2`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from opmerge.errors import InputError
from opmerge.io import ResultCache
from opmerge.model import StudentModel
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import CANONICAL_KINDS, format_plan
from opmerge.schedules import make_schedule

from .._torch import derive_seed, make_generator
from ..gaussian import make_gaussian
from ..teacher import GaussianTeacher
from ._common import DEFAULT_PLANS, StudyConfig, environment, families, progress, resolve_plans

__all__ = ["ScotConfig", "run", "figure"]


@dataclass(frozen=True)
class ScotConfig(StudyConfig):
    r"""Configuration of the ``scot`` study (the common fields of :class:`StudyConfig` and these).

    Parameters
    ----------
    eta_tau : float
        Model budget :math:`\eta\tau` of the plan predictions.
    family : str
        Comma list of methods (``"scot,traflow"``).
    lr, batch : float, int
        Adam step size and minibatch size of the trainer.
    hidden, depth : int
        Network width and hidden layers.
    train_steps : int
        Training updates.
    n_eval : int
        Fresh inputs of each readout.
    rotated : bool
    """

    study = "scot"
    family_choices = ("scot", "traflow")
    family_list = True

    eta_tau: float | None = None
    family: str | None = None
    lr: float | None = None
    batch: int | None = None
    hidden: int | None = None
    depth: int | None = None
    train_steps: int | None = None
    n_eval: int | None = None
    rotated: bool | None = None

    def _check_study(self) -> None:
        super()._check_study()
        # the study compares every student with the canonical plans and the optimum, at 1 and 2 student steps
        if self.plans is not None and tuple(self.plans) != DEFAULT_PLANS:
            raise InputError(f"plans: the scot study compares every student with {', '.join(DEFAULT_PLANS)}; other plans do not apply, got {', '.join(self.plans)}")
        if self.segments not in (None, 1):
            raise InputError(f"segments: the scot study reads every student out at 1 and 2 steps; other segments do not apply, got {self.segments}")

    @classmethod
    def defaults(cls, quick: bool) -> dict:  # noqa: D102
        return {**super().defaults(quick), "rotated": False, "schedule": "rf", "steps": 4 if quick else 8, "lr": 1e-3,
                "batch": 64 if quick else 256, "family": "scot,traflow", "hidden": 32 if quick else 128, "depth": 2 if quick else 3,
                "eta_tau": 0.5, "train_steps": 150 if quick else 6000, "n_eval": 2048 if quick else 20000}


def _scot_datasets(cfg: ScotConfig) -> list[tuple[str, tuple]]:
    if cfg.lam is not None:
        return [(f"d{len(cfg.lam)}", tuple(cfg.lam))]
    return [("d2", (0.25, 4.0)), ("d16", tuple(float(v) for v in np.geomspace(0.1, 10.0, 16)))]


def _plan_predictions(schedule, cfg: ScotConfig, lam: np.ndarray, segments: int) -> dict:
    """Predicted ``S`` per direction of the canonical plans and the optimum for ``segments`` student steps."""
    model = StudentModel(eta_tau=cfg.eta_tau, init=cfg.init, input=cfg.input)
    problem = Problem(schedule, lam, model=model, solver=cfg.solver, segments=segments)
    out = {}
    for name, plan in resolve_plans(DEFAULT_PLANS, problem):
        out[name] = {"plan": format_plan(plan), "student": evaluate_plan(problem, plan).student}
    return out


def run(cfg: "ScotConfig", cache: ResultCache) -> dict:
    """Train every (dataset, method) student (cached), read it back at 1 and 2 steps and compare with the plans."""
    from ..readout import read_out
    from ..trajectory import TrajectoryConfig, TrajectoryTrainer, consistency_error, straightness, teacher_straightness

    device, dtype = environment(cfg)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    methods = families(cfg.family)
    sampling_steps = [k for k in (1, 2) if k <= cfg.steps]
    units = [(label, lam, method) for label, lam in _scot_datasets(cfg) for method in methods]
    rows, datasets = [], {}
    for label, lam_tuple, method in progress(units, cfg.progress, "scot/traflow"):
        lam = np.asarray(lam_tuple)
        train = TrajectoryConfig(method=method, steps=cfg.train_steps, batch=cfg.batch, lr=cfg.lr, hidden=cfg.hidden, depth=cfg.depth)
        unit_cfg = {"unit": f"scot-{label}-{method}", "study": "scot", "schedule": cfg.schedule, "steps": cfg.steps, "solver": cfg.solver, "lam": lam_tuple,
                    "rotated": bool(cfg.rotated), "train": train.to_dict(), "seed": cfg.seed, "n_eval": cfg.n_eval, "level": cfg.level,
                    "eta_tau": cfg.eta_tau, "init": cfg.init, "input": cfg.input, "dtype": str(dtype), "device": device.type}

        def compute(label=label, lam=lam, method=method, train=train):
            data = make_gaussian(lam, rotated=bool(cfg.rotated), seed=derive_seed(cfg.seed, "rotation") % 2**32)
            teacher = GaussianTeacher(schedule, data, cfg.solver, dtype=dtype, device=device)
            started = time.perf_counter()
            trainer = TrajectoryTrainer(teacher, train, seed=derive_seed(cfg.seed, "scot", label, method), compile=cfg.compile)
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

        unit = cache.get_or_compute(unit_cfg, compute)
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


def figure(result: dict):
    """Measured gains of the SCoT / TraFlow students over the exact flow, against the teacher and the plans."""
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

