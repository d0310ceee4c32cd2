r"""The units of the image study: teachers, their evaluation, plan students and trajectory students.

Each unit (a teacher's evaluation, one plan student, one trajectory student) is computed once and kept
in an :class:`opmerge.io.ResultCache` (namespace :data:`UNIT_NAMESPACE`, code fingerprint of the core
and ``opmerge.experiments``) under ``<out>/units/``, keyed by its full configuration including the
teacher's identity and the classifier's: a rerun only computes what is missing, and a change of the
code that computes the units invalidates them. A unit file that is damaged, hand-edited (its
checksum no longer matches) or of the wrong shape (:func:`valid_teacher_unit`, :func:`valid_plan_unit`,
:func:`valid_trajectory_unit`) is recomputed, with one ``opmerge: warning:`` line on stderr naming it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from opmerge._validate import is_real
from opmerge.io import ResultCache
from opmerge.parallel import CachedUnit
from opmerge.plans import Plan, format_plan, parse_plan
from opmerge.schedules import Schedule

from .._torch import derive_seed, to_numpy
from ..teacher import GaussianTeacher
from .comparison import gain_part_w2, w2_parts
from .data import ImageDataset
from .distill import ImagePlanExecutor, ImageTrainConfig
from .linearity import read_linearity, step_gains
from .metrics import ImageClassifier, evaluate_samples
from .gaussian_teacher import gaussian_teacher_from_dataset
from .teachers import ImageTeacher, TeacherCheckpoint, TeacherConfig, load_checkpoint, train_teacher

if TYPE_CHECKING:  # pragma: no cover
    from .study_config import ImagesStudyConfig

__all__ = ["UNIT_NAMESPACE", "GRID_SAMPLES", "unit_cache", "tile_samples", "teacher_identity", "classifier_identity",
           "build_teachers", "evaluate_teacher", "read_student", "TeacherContext", "plan_train_config", "plan_unit", "trajectory_unit",
           "compute_student_unit", "valid_teacher_unit",
           "valid_plan_unit", "valid_trajectory_unit"]

#: the namespace of the study's units in the result cache
UNIT_NAMESPACE = "images-unit"
#: samples kept per student for the figures' grids
GRID_SAMPLES = 36


def _need(unit: dict, key: str, check, what: str) -> object:
    """``unit[key]`` if ``check`` accepts it, else a ``ValueError`` naming the key and what it must be."""
    if key not in unit:
        raise ValueError(f"no {key!r}")
    if not check(unit[key]):
        raise ValueError(f"{key!r} must be {what}, got {type(unit[key]).__name__}")
    return unit[key]


def _numbers(value: object) -> bool:
    return isinstance(value, list) and all(is_real(v) for v in value)


def _check_readout(unit: object, where: str = "") -> None:
    """Refuse a student readout (:func:`read_student`) of the wrong shape (``ValueError``)."""
    if not isinstance(unit, dict):
        raise ValueError(f"{where}expected an object, got {type(unit).__name__}")
    try:
        metrics = _need(unit, "metrics", lambda v: isinstance(v, dict), "an object")
        _need(metrics, "fd_pixels_test", is_real, "a number")
        w2 = _need(unit, "w2", lambda v: isinstance(v, dict), "an object")
        for key in ("w2_cov", "w2_full", "w2_gain"):
            _need(w2, key, is_real, "a number")
        gains = [_need(unit, key, _numbers, "a list of numbers") for key in ("gain", "gain_low", "gain_high")]
        if len({len(g) for g in gains}) != 1:
            raise ValueError("'gain', 'gain_low' and 'gain_high' differ in length")
        _need(unit, "linearity", lambda v: isinstance(v, dict), "an object")
        _need(unit, "samples", lambda v: isinstance(v, list), "a list")
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def valid_teacher_unit(unit: object) -> None:
    """Check the shape of a cached teacher unit (:func:`evaluate_teacher`).

    Parameters
    ----------
    unit : object
        The cached result.

    Raises
    ------
    ValueError
        Naming the first missing or mistyped entry (the cache then recomputes the unit).
    """
    if not isinstance(unit, dict):
        raise ValueError(f"expected an object, got {type(unit).__name__}")
    metrics = _need(unit, "metrics", lambda v: isinstance(v, dict), "an object")
    _need(metrics, "fd_pixels_test", is_real, "a number")
    lin = _need(unit, "linearity", lambda v: isinstance(v, dict), "an object")
    gain = _need(lin, "gain", _numbers, "a list of numbers")
    if len(_need(lin, "predicted", _numbers, "a list of numbers")) != len(gain):
        raise ValueError("'linearity': 'gain' and 'predicted' differ in length")
    _need(unit, "step_gains", lambda v: isinstance(v, (dict, list)), "an object or a list")
    _need(unit, "samples", lambda v: isinstance(v, list), "a list")


def valid_plan_unit(unit: object) -> None:
    """Check the shape of a cached plan-student unit (:func:`plan_unit`).

    Parameters
    ----------
    unit : object
        The cached result.

    Raises
    ------
    ValueError
        Naming the first missing or mistyped entry (the cache then recomputes the unit).
    """
    _check_readout(unit)
    _need(unit, "plan", lambda v: isinstance(v, str), "a plan text")
    _need(unit, "train_seconds", is_real, "a number")
    _need(unit, "records", lambda v: isinstance(v, list), "a list")
    _need(unit, "nonlinear_residual", lambda v: v is None or is_real(v) or isinstance(v, (list, dict)), "a number or a list")


def _check_trajectory_unit(wanted: list, unit: object) -> None:
    if not isinstance(unit, dict):
        raise ValueError(f"expected an object, got {type(unit).__name__}")
    _need(unit, "train_seconds", is_real, "a number")
    _need(unit, "history", lambda v: isinstance(v, dict), "an object")
    by_steps = _need(unit, "by_steps", lambda v: isinstance(v, dict), "an object")
    for m in wanted:
        if m not in by_steps:
            raise ValueError(f"'by_steps' has no readout for M = {m}")
        _check_readout(by_steps[m], f"'by_steps'[{m}]: ")


def valid_trajectory_unit(segments) -> Callable[[object], None]:
    """The shape check of a cached trajectory-student unit (:func:`trajectory_unit`) read out at ``segments``.

    Parameters
    ----------
    segments : iterable of int
        The numbers of student steps ``M`` the unit must hold a readout for.

    Returns
    -------
    callable
        ``check(unit)``, raising ``ValueError`` naming the first missing or mistyped entry.
    """
    return partial(_check_trajectory_unit, [str(int(m)) for m in segments])


def unit_cache(out: str | Path) -> ResultCache:
    """The result cache of the study's units, ``<out>/units/``.

    Parameters
    ----------
    out : path-like
        The study's output folder.

    Returns
    -------
    ResultCache
        Namespace :data:`UNIT_NAMESPACE`; keys include the code fingerprint of the core and of
        ``opmerge.experiments``.
    """
    return ResultCache(Path(out) / "units", UNIT_NAMESPACE, packages=("opmerge.experiments",))


def teacher_identity(teacher: "ImageTeacher | GaussianTeacher", dataset: ImageDataset, summary: TeacherCheckpoint | None = None) -> dict:
    """What fixes a teacher: part of every unit's key.

    Parameters
    ----------
    teacher : ImageTeacher or GaussianTeacher
    dataset : ImageDataset
        Its data (the fingerprint enters the identity).
    summary : TeacherCheckpoint, optional
        A trained teacher's checkpoint (its configuration and step enter the identity).

    Returns
    -------
    dict
        ``kind``, ``data``, ``schedule``, ``steps``, ``dtype`` (and ``config``, ``step``).
    """
    ident = {"kind": teacher.kind, "data": dataset.fingerprint(), "schedule": teacher.schedule.name, "steps": teacher.steps,
             "dtype": str(teacher.dtype).replace("torch.", "")}
    if summary is not None:
        ident.update(config=summary.config.to_dict(), step=summary.step)
    return ident


def classifier_identity(classifier: ImageClassifier | None) -> dict | None:
    """What fixes the metrics classifier (its configuration), so that cached units never mix classifiers."""
    return None if classifier is None else getattr(classifier, "identity", None)


def tile_samples(samples: np.ndarray) -> list:
    """The first :data:`GRID_SAMPLES` rows, rounded to 4 decimals (the sample grids of the figures)."""
    return np.round(samples[:GRID_SAMPLES], 4).tolist()


def build_teachers(cfg: "ImagesStudyConfig", dataset: ImageDataset, schedule: Schedule, device: torch.device) -> dict:
    """The configured teachers: the Gaussian one of the data, and a trained one loaded from
    ``cfg.checkpoint`` or trained (resumably) into ``<out>/teacher``.

    Parameters
    ----------
    cfg : ImagesStudyConfig
    dataset : ImageDataset
    schedule : Schedule
        The sampling grid.
    device : torch.device

    Returns
    -------
    dict
        ``{kind: (teacher, identity, training record or None)}``.
    """
    teachers: dict = {}
    if "gaussian" in cfg.teachers:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        t = gaussian_teacher_from_dataset(dataset, schedule, dtype=dtype, device=device)
        teachers["gaussian"] = (t, teacher_identity(t, dataset), None)
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
        teachers["trained"] = (teacher, teacher_identity(teacher, dataset, summary), train_info)
    return teachers


def evaluate_teacher(cfg: "ImagesStudyConfig", teacher: "ImageTeacher | GaussianTeacher", z: torch.Tensor, dataset: ImageDataset,
                     classifier: ImageClassifier | None, cache: ResultCache, ident: dict) -> dict:
    """The teacher's unit: sample metrics on the inputs ``z``, its linearity readout and per-step gains.

    Parameters
    ----------
    cfg : ImagesStudyConfig
    teacher : ImageTeacher or GaussianTeacher
    z : tensor (n_eval, d)
        The fixed sampler inputs.
    dataset : ImageDataset
    classifier : ImageClassifier, optional
    cache : ResultCache
    ident : dict
        :func:`teacher_identity` of ``teacher``.

    Returns
    -------
    dict
        ``metrics``, ``linearity``, ``step_gains``, ``samples`` (cached).
    """
    unit_cfg = {"unit": "teacher", "teacher": ident, "n_eval": cfg.n_eval, "seed": cfg.seed, "level": cfg.level,
                "classifier": classifier_identity(classifier)}

    def compute():
        x = to_numpy(teacher.sample(z))
        metrics = evaluate_samples(x, dataset, classifier, seed=cfg.seed)
        lin = read_linearity(teacher.sample, teacher, inputs=z, level=cfg.level)
        steps = step_gains(teacher, n=min(cfg.n_eval, 2048), seed=derive_seed(cfg.seed, "step-gains"), level=cfg.level)
        return {"metrics": metrics, "linearity": lin.to_dict(), "step_gains": steps, "samples": tile_samples(x)}

    return cache.get_or_compute({"label": f"teacher-{teacher.kind}", **unit_cfg}, compute, validate=valid_teacher_unit)


def read_student(cfg: "ImagesStudyConfig", sampler, teacher: "ImageTeacher | GaussianTeacher", z: torch.Tensor, teacher_x: np.ndarray,
                 dataset: ImageDataset, classifier: ImageClassifier | None, teacher_gain: np.ndarray, *, nonlinear: bool = False) -> dict:
    r"""A student sampler read out on the fixed inputs ``z``: metrics, W2 parts, per-direction gains, linearity, samples.

    ``w2_gain`` is :math:`\sqrt{\sum_i (\|v_{N,i}\| (g_i - g^{\text{teacher}}_i))^2}` over the directions with
    :math:`\lambda_i >` :data:`~experiments.images.comparison.LAM_FLOOR`, with
    :math:`\|v_{N,i}\| = \sqrt{\alpha_N^2\lambda_i + \sigma_N^2}`.

    Parameters
    ----------
    cfg, teacher, z, teacher_x, dataset, classifier, teacher_gain :
        As in :class:`TeacherContext`.
    sampler : callable
        The student: a batch :math:`z_N` to samples.
    nonlinear : bool
        Also report ``nonlinear_residual`` (before ``linearity``).

    Returns
    -------
    dict
        ``metrics``, ``w2``, ``gain``, ``gain_low``, ``gain_high`` (``nonlinear_residual``), ``linearity``, ``samples``.
    """
    with torch.no_grad():
        x = to_numpy(sampler(z))
    lin = read_linearity(sampler, teacher, inputs=z, level=cfg.level)
    metrics = evaluate_samples(x, dataset, classifier, references={"teacher": teacher_x}, seed=cfg.seed)
    w2_gain = gain_part_w2(teacher.schedule, lin.lam, lin.gain, teacher_gain)
    out = {"metrics": metrics, "w2": {**w2_parts(x, teacher_x), "w2_gain": w2_gain}, "gain": lin.gain, "gain_low": lin.gain_low,
           "gain_high": lin.gain_high}
    if nonlinear:
        out["nonlinear_residual"] = lin.nonlinear_residual
    out.update(linearity=lin.summary, samples=tile_samples(x))
    return out


@dataclass(frozen=True)
class TeacherContext:
    """What every student unit of one teacher needs; sent once per batch to the executor's workers.

    Parameters
    ----------
    cfg : ImagesStudyConfig
        The resolved study configuration.
    teacher : ImageTeacher or GaussianTeacher
    ident : dict
        :func:`teacher_identity` of ``teacher`` (part of every unit's key).
    z : tensor (n_eval, d)
        The fixed sampler inputs :math:`z_N` shared by the teacher and all its students.
    teacher_x : ndarray (n_eval, d)
        The teacher's samples on ``z``.
    dataset : ImageDataset
    classifier : ImageClassifier, optional
    teacher_gain : ndarray (d,)
        The teacher's measured per-direction gain (for ``w2_gain``).
    threads : int
        torch's CPU threads for every unit, whichever process runs it (the caller's count, so that
        every executor computes the same numbers).
    """

    cfg: "ImagesStudyConfig"
    teacher: "ImageTeacher | GaussianTeacher"
    ident: dict
    z: torch.Tensor
    teacher_x: np.ndarray
    dataset: ImageDataset
    classifier: ImageClassifier | None
    teacher_gain: np.ndarray
    threads: int


def plan_train_config(cfg: "ImagesStudyConfig", recipe: str) -> ImageTrainConfig:
    """How every merge node of a plan student is trained: affine students and SGD (``linear``) or denoiser copies and Adam (``network``)."""
    if recipe == "linear":
        return ImageTrainConfig(family="affine", optimizer="sgd", lr=cfg.lr_linear, steps=cfg.node_steps_linear, batch=cfg.batch,
                                init=cfg.init, input=cfg.input)
    return ImageTrainConfig(family="denoiser", optimizer="adam", lr=cfg.lr_network, steps=cfg.node_steps_network, batch=cfg.batch,
                            init=cfg.init, input=cfg.input)


def plan_unit(context: TeacherContext, recipe: str, plan: Plan) -> CachedUnit:
    """The unit of one plan student (its cache key, and the task :func:`compute_student_unit` runs).

    Parameters
    ----------
    context : TeacherContext
    recipe : {"linear", "network"}
    plan : Plan

    Returns
    -------
    CachedUnit
        Its result: ``plan``, ``train_seconds``, ``records``, ``metrics``, ``w2``, ``gain``,
        ``gain_low``, ``gain_high``, ``nonlinear_residual``, ``linearity``, ``samples``.
    """
    cfg = context.cfg
    text = format_plan(plan)
    unit_cfg = {"unit": "plan", "teacher": context.ident, "recipe": recipe, "train": plan_train_config(cfg, recipe).to_dict(), "plan": text,
                "n_eval": cfg.n_eval, "seed": cfg.seed, "level": cfg.level, "classifier": classifier_identity(context.classifier),
                "compile": cfg.compile}
    return CachedUnit({"label": f"plan-{context.teacher.kind}-{recipe}-M{plan.n_segments}-{text}", **unit_cfg},
                      ("plan", context.teacher.kind, recipe, text), valid_plan_unit)


def trajectory_unit(context: TeacherContext, method: str) -> CachedUnit:
    """The unit of one SCoT/TraFlow student, trained once and read out at every ``M`` of ``cfg.segments``.

    Parameters
    ----------
    context : TeacherContext
    method : {"scot", "traflow"}

    Returns
    -------
    CachedUnit
        Its result: ``train_seconds``, ``history`` and ``by_steps`` (``str(M)`` -> metrics, W2
        parts, gains, linearity, samples).
    """
    cfg = context.cfg
    unit_cfg = {"unit": "trajectory", "teacher": context.ident, "train": _trajectory_config(cfg, method).to_dict(),
                "segments": list(cfg.segments), "n_eval": cfg.n_eval, "seed": cfg.seed, "level": cfg.level,
                "classifier": classifier_identity(context.classifier), "compile": cfg.compile}
    return CachedUnit({"label": f"trajectory-{context.teacher.kind}-{method}", **unit_cfg}, ("trajectory", context.teacher.kind, method),
                      valid_trajectory_unit(cfg.segments))


def _trajectory_config(cfg: "ImagesStudyConfig", method: str):
    from ..trajectory import TrajectoryConfig

    return TrajectoryConfig(method=method, steps=cfg.traj_steps, batch=cfg.traj_batch, lr=cfg.traj_lr, hidden=cfg.traj_hidden,
                            depth=cfg.traj_depth)


def compute_student_unit(contexts: dict, task: tuple) -> dict:
    """Train and read out one student unit (the executor's unit function; module level so that it pickles).

    Parameters
    ----------
    contexts : dict
        ``{teacher kind: TeacherContext}``.
    task : tuple
        ``("plan", kind, recipe, plan text)`` or ``("trajectory", kind, method)`` (from
        :func:`plan_unit`, :func:`trajectory_unit`).

    Returns
    -------
    dict
        The unit's result (see :func:`plan_unit`, :func:`trajectory_unit`).
    """
    what, kind = task[0], task[1]
    c = contexts[kind]
    cfg, teacher = c.cfg, c.teacher
    torch.set_num_threads(c.threads)
    started = time.perf_counter()
    if what == "plan":
        recipe, text = task[2], task[3]
        plan = parse_plan(text, teacher.steps)
        executed = ImagePlanExecutor(teacher, plan_train_config(cfg, recipe), seed=derive_seed(cfg.seed, teacher.kind, recipe),
                                     compile=cfg.compile).run(plan)
        seconds = time.perf_counter() - started
        readout = read_student(cfg, executed.sampler(), teacher, c.z, c.teacher_x, c.dataset, c.classifier, c.teacher_gain, nonlinear=True)
        return {"plan": text, "train_seconds": seconds, "records": executed.records, **readout}
    from .trajectory import ImageTrajectorySampler, train_trajectory_student

    method = task[2]
    trainer, view = train_trajectory_student(teacher, _trajectory_config(cfg, method), seed=derive_seed(cfg.seed, "trajectory", teacher.kind, method),
                                             compile=cfg.compile)
    seconds = time.perf_counter() - started
    out = {"train_seconds": seconds, "history": trainer.history[-1] if trainer.history else {}, "by_steps": {}}
    for m in cfg.segments:
        sampler = ImageTrajectorySampler(trainer.ema, view, m)
        out["by_steps"][str(m)] = read_student(cfg, sampler, teacher, c.z, c.teacher_x, c.dataset, c.classifier, c.teacher_gain)
    return out
