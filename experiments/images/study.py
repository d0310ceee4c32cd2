r"""Distillation on digits: plan students and SCoT/TraFlow students against the model's predictions.

:func:`run_images_study` ``(config) -> dict``:

1. **Data and teachers.** The dataset (8x8 digits by default), the Gaussian fit
   :math:`\mathcal N(\mu, U\operatorname{diag}(\lambda)U^\top)` of its training split, the Gaussian teacher
   and/or the trained MLP teacher (from ``checkpoint``, or trained into ``<out>/teacher``, resumable),
   both sampled with DDIM on the ``schedule`` grid of ``N`` steps. Each teacher is evaluated on
   ``n_eval`` fixed inputs :math:`z_N` (the same for every student of that teacher: common random
   numbers): Fréchet distances to held-out images (pixels and classifier features), classifier
   score, class coverage, memorisation, and its linearity (:mod:`~experiments.images.linearity`).
2. **Plan students.** For every teacher, student recipe, number of student steps ``M`` and plan
   (canonical kinds, the optimal plan of the model for the digits spectrum, and random plans), the
   plan is executed by :class:`~experiments.images.distill.ImagePlanExecutor`. Recipes:

   * ``linear`` — affine students, plain SGD (step ``lr_linear``, ``node_steps_linear`` updates per node).
     Against the Gaussian teacher the model's ``training='gd'`` prediction with the same step and count
     is exact in expectation; the model for this recipe is that ``gd`` model.
   * ``network`` — denoiser students (a copy of the teacher's network used for one DDIM update),
     Adam (``lr_network``, ``node_steps_network``). No closed form; the model for this recipe is
     gradient flow with :math:`\eta\tau` = ``eta_tau``, and a calibrated :math:`\eta\tau` is fitted to
     the measured gains afterwards.

3. **SCoT / TraFlow students** (:mod:`~experiments.images.trajectory`), sampled in ``M`` steps.
4. **Readout and comparison.** Per student: measured per-direction gains (THEORY.md §7) next to the
   model's :math:`S_i` for that plan; W2 to the teacher's samples — ``w2_cov`` (Gaussian W2 between
   the fitted covariances, the part the centred model describes), ``w2_full`` (with the means,
   :math:`\sqrt{\mathrm{FD}}`), ``w2_gain`` (the model's formula :math:`\sqrt{\sum_i \|v_{N,i}\|^2 (g_i - g^T_i)^2}`
   with measured gains); Fréchet distances to held-out images; classifier score and coverage. The
   model's W2 ranking of the plans next to the measured ranking (Spearman and Kendall per teacher,
   recipe and ``M``, and pooled over ``M``); where the prediction breaks: the relative error of the
   teacher-normalised gains :math:`g_i/g^T_i` against :math:`S_i/T_i` by eigenvalue bin and by ``M``.

Results: ``<out>/images.json`` (configuration, every number), figures ``<out>/images_grids_<teacher>``,
``<out>/images_gains_<teacher>``, ``<out>/images_predicted_vs_measured``, ``<out>/images_linearity``
(PDF + PNG + JSON each); finished units are cached in ``<out>/units/`` (a rerun resumes).
``quick=True``: CPU, well under two minutes including the teacher's training.
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
from opmerge.plans import CANONICAL_KINDS, MergeNode, Plan, format_plan, parse_plan, canonical_plan, segment_boundaries
from opmerge.schedules import make_schedule
from opmerge.solvers import solve

from .._store import UnitStore
from .._torch import derive_seed, resolve_device
from .data import ImageDataset, load_dataset
from .distill import ImagePlanExecutor, ImageTrainConfig
from .linearity import read_linearity, step_gains
from .metrics import evaluate_samples, frechet_distance, load_or_train_classifier
from .teachers import GaussianImageTeacher, ImageTeacher, TeacherConfig, load_checkpoint, train_teacher

__all__ = ["ImagesStudyConfig", "run_images_study", "random_plan", "ratio", "DEFAULT_OUT", "RECIPES", "TEACHERS"]

DEFAULT_OUT = "results/validate/images"
RECIPES = ("linear", "network")
TEACHERS = ("gaussian", "trained")
TRAJECTORY_METHODS = ("scot", "traflow")
LAM_BINS = (1e-4, 1e-2, 1e-1, 1.0, math.inf)
LAM_FLOOR = 1e-4
GRID_SAMPLES = 36


@dataclass(frozen=True)
class ImagesStudyConfig:
    r"""Configuration of the image study; ``None`` fields take the quick or full default (:meth:`resolved`).

    Parameters
    ----------
    quick : bool                      CPU-sized run (tests, the notebook)
    data : str                        ``digits`` or a ``.npy`` file (see :func:`~experiments.images.data.load_dataset`)
    teachers : tuple of str           ``gaussian`` and/or ``trained``
    checkpoint : str, optional        trained teacher (file or folder); default: train one into ``<out>/teacher``
    schedule : {"rf", "vp-cosine"}    the sampling grid (and the trained teacher's training schedule)
    steps : int                       teacher steps ``N`` (quick 8, full 16)
    segments : tuple of int           student steps ``M`` (1, 2, 4)
    plans : tuple of str              canonical kinds, ``optimal`` or plan texts for ``N``
    random_plans : int                extra random plans per ``M`` (quick 0, full 2)
    recipes : tuple of str            ``linear`` and/or ``network``; ``recipes_by_teacher`` may narrow them
    recipes_by_teacher : tuple        pairs ``(teacher, recipe)`` to run (default: every teacher x recipe;
                                      quick: gaussian-linear and trained-network)
    trajectory : tuple of str         ``scot``, ``traflow`` (empty: none)
    lr_linear, node_steps_linear      SGD step and updates per node of the linear recipe
    lr_network, node_steps_network    Adam step and updates per node of the network recipe
    batch : int                       minibatch size
    init, input : str                 student init (``warm``, ``ddim``) and inputs (``forward``, ``generated``)
    eta_tau : float                   gradient-flow budget of the model for the network recipe
    traj_steps, traj_hidden, traj_depth, traj_lr, traj_batch : SCoT/TraFlow training
    n_eval : int                      fixed inputs per teacher (and per student)
    teacher_preset : {"quick", "full"} size of a teacher trained here
    level : float                     confidence level of the gain intervals
    seed : int
    device : {"auto", "cpu", "cuda"}
    out : str                         results folder (default ``results/validate/images``)
    progress : bool
    """

    quick: bool = False
    data: str = "digits"
    teachers: tuple = ("gaussian", "trained")
    checkpoint: str | None = None
    schedule: str = "rf"
    steps: int | None = None
    segments: tuple = (1, 2, 4)
    plans: tuple | None = None
    random_plans: int | None = None
    recipes: tuple = RECIPES
    recipes_by_teacher: tuple | None = None
    trajectory: tuple = TRAJECTORY_METHODS
    lr_linear: float = 0.02
    node_steps_linear: int | None = None
    lr_network: float | None = None
    node_steps_network: int | None = None
    batch: int | None = None
    init: str = "warm"
    input: str = "forward"
    eta_tau: float = 0.5
    traj_steps: int | None = None
    traj_hidden: int | None = None
    traj_depth: int | None = None
    traj_lr: float = 1e-3
    traj_batch: int | None = None
    n_eval: int | None = None
    teacher_preset: str | None = None
    level: float = 0.99
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for label, values, allowed in (("teachers", self.teachers, TEACHERS), ("recipes", self.recipes, RECIPES),
                                       ("trajectory", self.trajectory, TRAJECTORY_METHODS)):
            values = tuple(values)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"{label} must be drawn from {', '.join(allowed)}, got {', '.join(map(str, bad))}")
            object.__setattr__(self, label, values)
        if not self.teachers:
            raise ValueError("teachers must name at least one of gaussian, trained")
        if self.schedule not in ("rf", "vp-cosine"):
            raise ValueError(f"schedule must be 'rf' or 'vp-cosine' (the trained teacher and SCoT need continuous time), got {self.schedule!r}")
        segs = tuple(int(m) for m in self.segments)
        if not segs or any(m < 1 for m in segs):
            raise ValueError(f"segments must be integers >= 1, got {self.segments!r}")
        object.__setattr__(self, "segments", segs)
        if self.init not in ("warm", "ddim") or self.input not in ("forward", "generated"):
            raise ValueError(f"init must be warm or ddim and input forward or generated, got {self.init!r}, {self.input!r}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")
        if not (isinstance(self.eta_tau, (int, float)) and self.eta_tau > 0):
            raise ValueError(f"eta_tau must be > 0, got {self.eta_tau!r}")
        if self.teacher_preset not in (None, "quick", "full"):
            raise ValueError(f"teacher_preset must be 'quick' or 'full', got {self.teacher_preset!r}")
        if self.recipes_by_teacher is not None:
            pairs = tuple((str(a), str(b)) for a, b in self.recipes_by_teacher)
            for a, b in pairs:
                if a not in TEACHERS or b not in RECIPES:
                    raise ValueError(f"recipes_by_teacher entries must be (teacher, recipe) pairs, got ({a!r}, {b!r})")
            object.__setattr__(self, "recipes_by_teacher", pairs)

    def resolved(self) -> "ImagesStudyConfig":
        """Fill every ``None`` field with the quick or full default."""
        q = self.quick
        defaults = {
            "steps": 8 if q else 16,
            "plans": ("vanilla", "boot", "optimal") if q else ("vanilla", "boot", "cd", "pd", "optimal"),
            "random_plans": 0 if q else 2,
            "node_steps_linear": 20 if q else 100,
            "lr_network": 1e-3,
            "node_steps_network": 15 if q else 200,
            "batch": 128 if q else 256,
            "traj_steps": 40 if q else 2000,
            "traj_hidden": 64 if q else 256,
            "traj_depth": 2 if q else 3,
            "traj_batch": 64 if q else 256,
            "n_eval": 512 if q else 2000,
            "teacher_preset": "quick" if q else "full",
            "out": DEFAULT_OUT,
            "recipes_by_teacher": (("gaussian", "linear"), ("trained", "network")) if q else None,
        }
        values = {k: (defaults[k] if getattr(self, k) is None and k in defaults else getattr(self, k)) for k in (f.name for f in fields(self))}
        if values["recipes_by_teacher"] is None:
            values["recipes_by_teacher"] = tuple((t, r) for t in values["teachers"] for r in values["recipes"])
        values["recipes_by_teacher"] = tuple((t, r) for t, r in values["recipes_by_teacher"] if t in values["teachers"] and r in values["recipes"])
        if any(m > values["steps"] for m in values["segments"]):
            raise ValueError(f"segments must be <= steps = {values['steps']}, got {values['segments']}")
        return replace(self, **values)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


# =============================================================================================
# plans
# =============================================================================================


def random_plan(steps: int, segments: int, rng: np.random.Generator) -> Plan:
    r"""A random plan with uniform segment boundaries (:func:`opmerge.plans.segment_boundaries`).

    Each segment of ``L >= 2`` leaves is a random tree: the root gets ``k`` children, ``k`` uniform in
    ``[2, min(L, 4)]``, with ``k - 1`` cut points drawn uniformly without replacement among the ``L - 1``
    gaps; every child of more than one leaf is built the same way.
    """
    b = segment_boundaries(steps, segments)

    def tree(top: int, bottom: int):
        length = top - bottom
        if length == 1:
            return top
        k = int(rng.integers(2, min(length, 4) + 1))
        cuts = sorted(rng.choice(np.arange(1, length), size=k - 1, replace=False).tolist(), reverse=True)
        edges = [top] + [bottom + c for c in cuts] + [bottom]
        return MergeNode(tuple(tree(edges[m], edges[m + 1]) for m in range(len(edges) - 1)))

    return Plan(tuple(tree(b[k], b[k + 1]) for k in range(segments)))


def _model_for(recipe: str, cfg: ImagesStudyConfig, eta_tau: float | None = None) -> StudentModel:
    if recipe == "linear":
        return StudentModel(training="gd", lr=cfg.lr_linear, gd_steps=cfg.node_steps_linear, init=cfg.init, input=cfg.input)
    return StudentModel(eta_tau=cfg.eta_tau if eta_tau is None else eta_tau, init=cfg.init, input=cfg.input)


def _plans_for(cfg: ImagesStudyConfig, problem: Problem, recipe: str, teacher_kind: str) -> list[tuple[str, Plan]]:
    out: list[tuple[str, Plan]] = []
    for name in cfg.plans:
        if name in CANONICAL_KINDS:
            out.append((name, canonical_plan(name, problem.steps, problem.segments)))
        elif name == "optimal":
            out.append((name, solve(problem).plan))
        else:
            plan = parse_plan(name, problem.steps)
            if plan.n_segments != problem.segments:
                continue
            out.append((format_plan(plan), plan))
    rng = np.random.default_rng(derive_seed(cfg.seed, "random-plans", problem.segments) % 2**63)
    seen = {format_plan(p) for _, p in out}
    tries = 0
    added = 0
    while added < cfg.random_plans and tries < 200:
        tries += 1
        plan = random_plan(problem.steps, problem.segments, rng)
        if format_plan(plan) not in seen:
            seen.add(format_plan(plan))
            out.append((f"random{added + 1}", plan))
            added += 1
    return out


# =============================================================================================
# helpers
# =============================================================================================


def ratio(a, b) -> np.ndarray:
    """Elementwise ``a / b`` with NaN where ``b == 0`` (zero-variance directions, which the summaries leave out)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


def _w2_parts(student: np.ndarray, teacher: np.ndarray) -> dict:
    m1, c1 = student.mean(0), np.cov(student, rowvar=False)
    m2, c2 = teacher.mean(0), np.cov(teacher, rowvar=False)
    cov_part = frechet_distance(m1, c1, m1, c2)
    return {"w2_cov": math.sqrt(cov_part), "w2_full": math.sqrt(cov_part + float(np.sum((m1 - m2) ** 2))),
            "mean_error": float(np.linalg.norm(m1 - m2)), "rms_paired": float(np.sqrt(np.mean(np.sum((student - teacher) ** 2, 1))))}


def _rank(measured, predicted) -> dict:
    m, p = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    ok = np.isfinite(m) & np.isfinite(p)
    m, p = m[ok], p[ok]
    if m.size < 3 or np.ptp(m) == 0 or np.ptp(p) == 0:
        return {"spearman": None, "kendall": None, "n": int(m.size), "winner_agrees": bool(m.size and np.argmin(m) == np.argmin(p))}
    return {"spearman": float(stats.spearmanr(m, p).statistic), "kendall": float(stats.kendalltau(m, p).statistic), "n": int(m.size),
            "winner_agrees": bool(np.argmin(m) == np.argmin(p))}


def _teacher_identity(teacher: ImageTeacher, dataset: ImageDataset, summary=None) -> dict:
    ident = {"kind": teacher.kind, "data": dataset.fingerprint(), "schedule": teacher.schedule.name, "steps": teacher.steps,
             "dtype": str(teacher.dtype).replace("torch.", "")}
    if summary is not None:
        ident.update(config=summary.config.to_dict(), step=summary.step)
    return ident


def _classifier_identity(classifier) -> dict | None:
    """What fixes the metrics classifier (its configuration), so that cached units never mix classifiers."""
    return None if classifier is None else getattr(classifier, "identity", None)


def _tile(samples: np.ndarray) -> list:
    return np.round(samples[:GRID_SAMPLES], 4).tolist()


# =============================================================================================
# the study
# =============================================================================================


def _build_teachers(cfg: ImagesStudyConfig, dataset: ImageDataset, schedule, device: torch.device) -> dict:
    teachers: dict = {}
    if "gaussian" in cfg.teachers:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        t = GaussianImageTeacher.from_dataset(dataset, schedule, dtype=dtype, device=device)
        teachers["gaussian"] = (t, _teacher_identity(t, dataset), None)
    if "trained" in cfg.teachers:
        if cfg.checkpoint is not None:
            teacher, summary = load_checkpoint(cfg.checkpoint, device=device, schedule=schedule, dataset=dataset)
            train_info = summary.to_dict()
        else:
            preset = TeacherConfig.quick if cfg.teacher_preset == "quick" else TeacherConfig
            tcfg = preset(data=cfg.data, schedule=cfg.schedule, steps=cfg.steps, seed=cfg.seed)
            started = time.perf_counter()
            summary = train_teacher(tcfg, Path(cfg.out) / "teacher", resume=True, progress=cfg.progress, device=device, dataset=dataset)
            teacher = summary.load_teacher(device=device, schedule=schedule, dataset=dataset)
            train_info = {**summary.to_dict(), "wall_seconds_this_run": time.perf_counter() - started}
        teachers["trained"] = (teacher, _teacher_identity(teacher, dataset, summary), train_info)
    return teachers


def _evaluate_teacher(cfg, teacher: ImageTeacher, z: torch.Tensor, dataset, classifier, store, ident) -> dict:
    unit_cfg = {"unit": "teacher", "teacher": ident, "n_eval": cfg.n_eval, "seed": cfg.seed, "level": cfg.level,
                "classifier": _classifier_identity(classifier)}

    def compute():
        x = _np(teacher.sample(z))
        metrics = evaluate_samples(x, dataset, classifier, seed=cfg.seed)
        lin = read_linearity(teacher.sample, teacher, inputs=z, level=cfg.level)
        steps = step_gains(teacher, n=min(cfg.n_eval, 2048), seed=derive_seed(cfg.seed, "step-gains"), level=cfg.level)
        return {"metrics": metrics, "linearity": lin.to_dict(), "step_gains": steps, "samples": _tile(x)}

    return store.get_or_run(f"teacher-{teacher.kind}", unit_cfg, compute)


def _run_plan_unit(cfg, teacher, ident, recipe, plan, z, teacher_x, dataset, classifier, store, teacher_gain) -> dict:
    train_cfg = (ImageTrainConfig(family="affine", optimizer="sgd", lr=cfg.lr_linear, steps=cfg.node_steps_linear, batch=cfg.batch,
                                  init=cfg.init, input=cfg.input) if recipe == "linear" else
                 ImageTrainConfig(family="denoiser", optimizer="adam", lr=cfg.lr_network, steps=cfg.node_steps_network, batch=cfg.batch,
                                  init=cfg.init, input=cfg.input))
    text = format_plan(plan)
    unit_cfg = {"unit": "plan", "teacher": ident, "recipe": recipe, "train": train_cfg.to_dict(), "plan": text, "n_eval": cfg.n_eval,
                "seed": cfg.seed, "level": cfg.level, "classifier": _classifier_identity(classifier)}

    def compute():
        started = time.perf_counter()
        executed = ImagePlanExecutor(teacher, train_cfg, seed=derive_seed(cfg.seed, teacher.kind, recipe)).run(plan)
        seconds = time.perf_counter() - started
        sampler = executed.sampler()
        with torch.no_grad():
            x = _np(sampler(z))
        lin = read_linearity(sampler, teacher, inputs=z, level=cfg.level)
        metrics = evaluate_samples(x, dataset, classifier, references={"teacher": teacher_x}, seed=cfg.seed)
        norm_noise = np.sqrt(float(teacher.schedule.alpha[-1]) ** 2 * lin.lam + float(teacher.schedule.sigma[-1]) ** 2)
        keep = lin.lam > LAM_FLOOR
        w2_gain = float(np.sqrt(np.sum((norm_noise * (lin.gain - teacher_gain))[keep] ** 2)))
        return {"plan": text, "train_seconds": seconds, "records": executed.records, "metrics": metrics,
                "w2": {**_w2_parts(x, teacher_x), "w2_gain": w2_gain}, "gain": lin.gain, "gain_low": lin.gain_low,
                "gain_high": lin.gain_high, "nonlinear_residual": lin.nonlinear_residual, "linearity": lin.summary, "samples": _tile(x)}

    return store.get_or_run(f"plan-{teacher.kind}-{recipe}-M{plan.n_segments}-{text}", unit_cfg, compute)


def _run_trajectory_unit(cfg, teacher, ident, method, z, teacher_x, dataset, classifier, store, teacher_gain) -> dict:
    from ..trajectory import TrajectoryConfig
    from .trajectory import ImageTrajectorySampler, train_trajectory_student

    tcfg = TrajectoryConfig(method=method, steps=cfg.traj_steps, batch=cfg.traj_batch, lr=cfg.traj_lr, hidden=cfg.traj_hidden,
                            depth=cfg.traj_depth)
    unit_cfg = {"unit": "trajectory", "teacher": ident, "train": tcfg.to_dict(), "segments": list(cfg.segments), "n_eval": cfg.n_eval,
                "seed": cfg.seed, "level": cfg.level, "classifier": _classifier_identity(classifier)}

    def compute():
        started = time.perf_counter()
        trainer, view = train_trajectory_student(teacher, tcfg, seed=derive_seed(cfg.seed, "trajectory", teacher.kind, method))
        seconds = time.perf_counter() - started
        out = {"train_seconds": seconds, "history": trainer.history[-1] if trainer.history else {}, "by_steps": {}}
        norm_noise = None
        for m in cfg.segments:
            sampler = ImageTrajectorySampler(trainer.ema, view, m)
            x = _np(sampler(z))
            lin = read_linearity(sampler, teacher, inputs=z, level=cfg.level)
            if norm_noise is None:
                norm_noise = np.sqrt(float(teacher.schedule.alpha[-1]) ** 2 * lin.lam + float(teacher.schedule.sigma[-1]) ** 2)
            keep = lin.lam > LAM_FLOOR
            out["by_steps"][str(m)] = {
                "metrics": evaluate_samples(x, dataset, classifier, references={"teacher": teacher_x}, seed=cfg.seed),
                "w2": {**_w2_parts(x, teacher_x), "w2_gain": float(np.sqrt(np.sum((norm_noise * (lin.gain - teacher_gain))[keep] ** 2)))},
                "gain": lin.gain, "gain_low": lin.gain_low, "gain_high": lin.gain_high, "linearity": lin.summary, "samples": _tile(x)}
        return out

    return store.get_or_run(f"trajectory-{teacher.kind}-{method}", unit_cfg, compute)


def _lam_bin_labels() -> list[str]:
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(LAM_BINS[:-1], LAM_BINS[1:])]


def _relative_errors(measured_norm: np.ndarray, predicted_norm: np.ndarray, lam: np.ndarray) -> dict:
    keep = lam > LAM_FLOOR
    rel = ratio(np.abs(measured_norm - predicted_norm), np.abs(predicted_norm))
    by_bin = {}
    for label, lo, hi in zip(_lam_bin_labels(), LAM_BINS[:-1], LAM_BINS[1:]):
        mask = keep & (lam >= lo) & (lam < hi) & np.isfinite(rel)
        by_bin[label] = float(np.median(rel[mask])) if np.any(mask) else None
    mask = keep & np.isfinite(rel)
    return {"median": float(np.median(rel[mask])) if np.any(mask) else None, "by_lambda": by_bin, "per_direction": rel}


def _calibrate_eta_tau(schedule, lam, cfg, plan_rows: list[dict], teacher_norm: np.ndarray, grid=None) -> dict:
    r"""Gradient-flow :math:`\eta\tau` that best fits the measured gains of the network recipe.

    The measured gain is first mapped onto the Gaussian teacher's scale, :math:`\hat g_i = g_i T_i / g^T_i`
    (``teacher_norm`` :math:`= g^T_i/T_i`), then :math:`\sum_{\text{plans}}\sum_i \|v_{N,i}\|^2 (\hat g_i - S_i)^2`
    (the model's W2 weighting, directions with :math:`\lambda_i > 10^{-4}`) is minimised over a log grid.
    """
    grid = np.geomspace(1e-3, 1e3, 61) if grid is None else np.asarray(grid, dtype=float)
    keep = lam > LAM_FLOOR
    best = (math.inf, None)
    errors = []
    for value in grid:
        sse = 0.0
        for m in sorted({r["segments"] for r in plan_rows}):
            problem = Problem(schedule, lam, model=_model_for("network", cfg, float(value)), segments=m)
            for row in (r for r in plan_rows if r["segments"] == m):
                pred = evaluate_plan(problem, parse_plan(row["plan"], schedule.steps)).student
                meas = ratio(row["gain"], teacher_norm)
                sse += float(np.nansum((problem.scale * (meas - pred) ** 2)[keep]))
        errors.append(sse)
        if sse < best[0]:
            best = (sse, float(value))
    return {"eta_tau": best[1], "sse": best[0], "at_grid_edge": bool(best[1] in (float(grid[0]), float(grid[-1]))),
            "grid": grid.tolist(), "sse_grid": errors}


def run_images_study(config: ImagesStudyConfig | dict | None = None, **overrides) -> dict:
    """Run the image study (module docstring) and return its result (also written to ``<out>/images.json``).

    Parameters
    ----------
    config : ImagesStudyConfig or dict, optional
    **overrides : fields of :class:`ImagesStudyConfig`
    """
    if config is None:
        values: dict = {}
    elif isinstance(config, ImagesStudyConfig):
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise TypeError(f"config must be an ImagesStudyConfig, a dict or None, got {type(config).__name__}")
    values.update(overrides)
    cfg = ImagesStudyConfig(**values).resolved()
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    store = UnitStore(out)
    dataset = load_dataset(cfg.data, seed=0)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    classifier, classifier_info = (load_or_train_classifier(dataset, out / "cache") if dataset.has_labels else (None, None))
    teachers = _build_teachers(cfg, dataset, schedule, device)
    any_teacher = next(iter(teachers.values()))[0]
    lam = np.array(any_teacher.fit.lam)
    data_reference = evaluate_samples(dataset.train, dataset, classifier, seed=cfg.seed, check_memorization=False)

    result: dict = {"study": "images", "config": cfg.to_dict(), "dataset": dataset.to_dict(), "lam": lam,
                    "classifier": classifier_info, "data_reference": data_reference, "teachers": {}, "plan_students": [],
                    "trajectory_students": [], "rankings": [], "breakdown": [], "calibration": {}}
    progress = None
    if cfg.progress:
        from tqdm.auto import tqdm

        progress = tqdm(desc="images study", leave=False)
    for kind, (teacher, ident, train_info) in teachers.items():
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "eval-inputs"))
        z = teacher.noise_sample(cfg.n_eval, gen)
        unit = _evaluate_teacher(cfg, teacher, z, dataset, classifier, store, ident)
        teacher_x = _np(teacher.sample(z))
        teacher_gain = np.asarray(unit["linearity"]["gain"])
        gauss_gain = np.asarray(unit["linearity"]["predicted"])
        result["teachers"][kind] = {"identity": ident, "training": train_info, **unit}
        for recipe in [r for t, r in cfg.recipes_by_teacher if t == kind]:
            rows = []
            for m in cfg.segments:
                problem = Problem(schedule, lam, model=_model_for(recipe, cfg), segments=m)
                done: dict[str, dict] = {}
                for name, plan in _plans_for(cfg, problem, recipe, kind):
                    text = format_plan(plan)
                    if text not in done:
                        done[text] = _run_plan_unit(cfg, teacher, ident, recipe, plan, z, teacher_x, dataset, classifier, store, teacher_gain)
                        if progress is not None:
                            progress.update(1)
                    unit_p = done[text]
                    ev = evaluate_plan(problem, plan)
                    rel = _relative_errors(ratio(unit_p["gain"], teacher_gain), ratio(ev.student, problem.teacher), lam)
                    rows.append({"teacher": kind, "recipe": recipe, "segments": m, "name": name, "plan": text, "n_merges": plan.n_merges,
                                 "w2_predicted": ev.w2, "student_predicted": ev.student, "gain": unit_p["gain"],
                                 "gain_low": unit_p["gain_low"], "gain_high": unit_p["gain_high"], "w2": unit_p["w2"],
                                 "metrics": unit_p["metrics"], "linearity": unit_p["linearity"], "relative_gain_error": rel,
                                 "train_seconds": unit_p["train_seconds"], "records": unit_p["records"], "samples": unit_p["samples"]})
            result["plan_students"].extend(rows)
            # rankings: unique plans per M, and pooled
            for m in list(cfg.segments) + ["all"]:
                sel = [r for r in rows if m == "all" or r["segments"] == m]
                uniq = {}
                for r in sel:
                    uniq.setdefault((r["segments"], r["plan"]), r)
                sel = list(uniq.values())
                pred = [r["w2_predicted"] for r in sel]
                entry = {"teacher": kind, "recipe": recipe, "segments": m, "plans": [r["plan"] for r in sel], "names": [r["name"] for r in sel],
                         "w2_predicted": pred}
                for key in ("w2_cov", "w2_full", "w2_gain"):
                    meas = [r["w2"][key] for r in sel]
                    entry[f"measured_{key}"] = meas
                    entry[key] = _rank(meas, pred)
                entry["fd_features_test"] = [r["metrics"].get("fd_features_test") for r in sel]
                result["rankings"].append(entry)
            for m in cfg.segments:
                sel = [r for r in rows if r["segments"] == m]
                per_bin = {}
                for label in _lam_bin_labels():
                    vals = [r["relative_gain_error"]["by_lambda"][label] for r in sel if r["relative_gain_error"]["by_lambda"][label] is not None]
                    per_bin[label] = float(np.median(vals)) if vals else None
                result["breakdown"].append({"teacher": kind, "recipe": recipe, "segments": m, "merged_steps_per_segment": cfg.steps / m,
                                            "median_relative_gain_error": float(np.median([r["relative_gain_error"]["median"] for r in sel])),
                                            "by_lambda": per_bin})
            if recipe == "network" and rows:
                cal = _calibrate_eta_tau(schedule, lam, cfg, rows, ratio(teacher_gain, gauss_gain))
                ranks = {}
                for m in list(cfg.segments) + ["all"]:
                    sel = {}
                    for r in rows:
                        if m == "all" or r["segments"] == m:
                            sel.setdefault((r["segments"], r["plan"]), r)
                    pred = []
                    for (mm, text), r in sel.items():
                        pr = Problem(schedule, lam, model=_model_for("network", cfg, cal["eta_tau"]), segments=mm)
                        pred.append(evaluate_plan(pr, parse_plan(text, cfg.steps)).w2)
                    ranks[str(m)] = _rank([r["w2"]["w2_cov"] for r in sel.values()], pred)
                cal["rankings_w2_cov"] = ranks
                result["calibration"][f"{kind}-{recipe}"] = cal
        for method in cfg.trajectory:
            unit_t = _run_trajectory_unit(cfg, teacher, ident, method, z, teacher_x, dataset, classifier, store, teacher_gain)
            if progress is not None:
                progress.update(1)
            for m in cfg.segments:
                entry = unit_t["by_steps"][str(m)]
                model = _model_for("network", cfg)
                problem = Problem(schedule, lam, model=model, segments=m)
                distances = {}
                for name, plan in _plans_for(replace(cfg, random_plans=0), problem, "network", kind):
                    s_norm = ratio(evaluate_plan(problem, plan).student, problem.teacher)
                    g_norm = ratio(entry["gain"], teacher_gain)
                    keep = (lam > LAM_FLOOR) & np.isfinite(s_norm) & np.isfinite(g_norm)
                    distances[name] = float(np.sqrt(np.mean((g_norm - s_norm)[keep] ** 2)))
                closest = min(distances, key=distances.get) if distances else None
                result["trajectory_students"].append({
                    "teacher": kind, "method": method, "segments": m, "w2": entry["w2"], "metrics": entry["metrics"], "gain": entry["gain"],
                    "gain_low": entry["gain_low"], "gain_high": entry["gain_high"], "linearity": entry["linearity"],
                    "plan_distance": distances, "closest_plan": closest, "train_seconds": unit_t["train_seconds"],
                    "final_losses": unit_t["history"], "samples": entry["samples"]})
    if progress is not None:
        progress.close()
    result["summary"] = _summary(result)
    result["unit_cache"] = {"cached": store.hits, "computed": store.runs}
    try:
        from .figures import study_figures

        result["figures"] = study_figures(result, dataset, out)
    except ImportError as exc:  # matplotlib missing: the numbers still count
        result["figures"] = {"error": f"no figures ({exc})"}
    result["elapsed_s"] = time.perf_counter() - started
    result = to_jsonable(result)
    result["result_file"] = str(out / "images.json")
    write_json_atomic(out / "images.json", result)
    return result


def _summary(result: dict) -> dict:
    teachers = {}
    for kind, info in result["teachers"].items():
        m = info["metrics"]
        teachers[kind] = {k: m.get(k) for k in ("fd_pixels_test", "fd_features_test", "classifier_score", "coverage")}
        teachers[kind]["memorized_fraction"] = m["memorization"]["fraction"]
        teachers[kind]["memorization_median_ratio"] = m["memorization"]["median_ratio"]
        teachers[kind]["linear_share"] = info["linearity"]["summary"]["linear_share"]
        teachers[kind]["gaussian_teacher_share"] = info["linearity"]["summary"]["gaussian_teacher_share"]
        teachers[kind]["median_rel_gain_vs_gaussian"] = info["linearity"]["summary"]["median_rel_gain_error"]
    students = []
    for r in result["plan_students"]:
        students.append({"teacher": r["teacher"], "recipe": r["recipe"], "segments": r["segments"], "name": r["name"], "plan": r["plan"],
                         "w2_predicted": r["w2_predicted"], "w2_cov": r["w2"]["w2_cov"], "w2_full": r["w2"]["w2_full"],
                         "fd_pixels_test": r["metrics"]["fd_pixels_test"], "fd_features_test": r["metrics"].get("fd_features_test"),
                         "fd_features_teacher": r["metrics"].get("fd_features_teacher"), "classifier_score": r["metrics"].get("classifier_score"),
                         "median_relative_gain_error": r["relative_gain_error"]["median"]})
    for r in result["trajectory_students"]:
        students.append({"teacher": r["teacher"], "recipe": r["method"], "segments": r["segments"], "name": r["method"], "plan": None,
                         "w2_predicted": None, "w2_cov": r["w2"]["w2_cov"], "w2_full": r["w2"]["w2_full"],
                         "fd_pixels_test": r["metrics"]["fd_pixels_test"], "fd_features_test": r["metrics"].get("fd_features_test"),
                         "fd_features_teacher": r["metrics"].get("fd_features_teacher"), "classifier_score": r["metrics"].get("classifier_score"),
                         "closest_plan": r["closest_plan"]})
    ranks = {f"{e['teacher']}-{e['recipe']}-M{e['segments']}": {"spearman_w2_cov": e["w2_cov"]["spearman"], "kendall_w2_cov": e["w2_cov"]["kendall"],
                                                                   "spearman_w2_gain": e["w2_gain"]["spearman"], "winner_agrees": e["w2_cov"]["winner_agrees"],
                                                                   "plans": e["w2_cov"]["n"]} for e in result["rankings"]}
    return {"teachers": teachers, "data_reference": {k: result["data_reference"].get(k) for k in ("fd_pixels_test", "fd_features_test", "classifier_score")},
            "students": students, "rank_correlation": ranks,
            "breakdown": result["breakdown"], "calibrated_eta_tau": {k: v["eta_tau"] for k, v in result["calibration"].items()}}
