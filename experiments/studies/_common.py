r"""What the four validation studies share: the common configuration, plan names, the unit cache and the result file.

Every study is a frozen configuration class (a subclass of :class:`StudyConfig` that adds its own
fields and declares its defaults) and a ``run(config, cache) -> dict`` function with a
``figure(result) -> (fig, data)`` function. :func:`finish` writes the result and the figure:

* ``<out>/<study>.json`` — the result (configuration, predicted and measured values, summary) with a
  ``provenance`` block (:func:`opmerge.io.provenance`, with the torch device);
* ``<out>/<study>-figure.{pdf,png,json}`` — the figure and the numbers it shows;
* ``<out>/units/`` — finished units (:class:`opmerge.io.ResultCache`, namespace ``bridge-unit``, keyed by
  the unit's configuration and the source of the core and of ``opmerge.experiments``), so a rerun
  skips finished units and a code change recomputes them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from opmerge._validate import choice, echo, flag, integer, nonnegative_array, real_number
from opmerge.cli_options import (
    COMPILE_MODES,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_HIDDEN,
    MAX_REPEATS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_THREADS,
    MAX_TORCH_STEPS,
    MAX_TRAIN_STEPS,
    abbreviate_plan,
)
from opmerge.errors import InputError, InputTypeError
from opmerge.io import ResultCache, provenance, to_jsonable, write_json
from opmerge.model import INITS, INPUTS
from opmerge.objective import TARGETS, Problem
from opmerge.plans import CANONICAL_KINDS, Plan, PlanParseError, canonical_plan, format_plan, parse_plan
from opmerge.schedules import SCHEDULE_NAMES
from opmerge.solvers import solve
from opmerge.teacher import SOLVERS

from .._torch import default_dtype, resolve_device
from ..students import FAMILIES
from ..training import OPTIMIZERS

__all__ = ["DEFAULT_OUT", "DEFAULT_PLANS", "UNIT_NAMESPACE", "DEVICES", "MIN_N_EVAL", "StudyConfig", "check_plan_name", "resolve_plans", "rel_gap", "families", "progress",
           "environment", "device_label", "unit_cache", "finish"]

DEFAULT_OUT = "results/validate"
DEFAULT_PLANS = ("vanilla", "boot", "cd", "pd", "optimal")
#: the namespace of the bridge's unit cache
UNIT_NAMESPACE = "bridge-unit"
#: torch devices a study accepts
DEVICES = ("auto", "cpu", "cuda")
#: fewest fresh inputs of a readout (a per-direction regression with an error estimate needs three)
MIN_N_EVAL = 3


def _is_none_or(value, check) -> None:
    if value is not None:
        check(value)


def check_plan_name(name: str, steps: int | None, segments: int | tuple[int, ...] | None) -> None:
    """A plan name of a study: canonical, ``optimal``, or a plan text with ``steps`` leaves and ``segments``
    segments (one of them, for a tuple); ``None`` leaves that count unchecked.

    Parameters
    ----------
    name : str
    steps : int or None
        The teacher steps N the plan must have.
    segments : int, tuple of int, or None
        The student steps M it may have.

    Raises
    ------
    InputError
        Naming ``plans`` (the configuration field; the command lines show it as ``--plan``).
    """
    if name in CANONICAL_KINDS or name == "optimal":
        return
    try:
        plan = parse_plan(name)
    except PlanParseError as exc:
        raise InputError(f"plans: {exc.problem}, in {echo(exc.text, exc.position)!r}") from exc
    shown = abbreviate_plan(name, plan.steps)
    if steps is not None and plan.steps != steps:
        raise InputError(f"plans: {shown!r} has N = {plan.steps} teacher steps but steps = {steps}")
    allowed = (segments,) if isinstance(segments, int) else segments
    if allowed is not None and plan.n_segments not in allowed:
        shown_segments = segments if isinstance(segments, int) else ",".join(map(str, segments))
        raise InputError(f"plans: {shown!r} has {plan.n_segments} segment(s) but segments = {shown_segments}")


@dataclass(frozen=True)
class StudyConfig:
    r"""The fields every study has; a study's configuration subclasses it (``None`` fields take the study's defaults).

    Parameters
    ----------
    quick : bool
        Small size (tests, CPU, seconds).
    schedule : str
        Teacher schedule.
    steps : int
        Teacher steps ``N``.
    segments : int
        Student steps ``M`` of the plan studies.
    solver : {"ddim", "heun"}
    lam : tuple of float
        Eigenvalues of the data.
    plans : tuple of str
        ``vanilla``, ``boot``, ``cd``, ``pd``, ``optimal`` or plans in text notation.
    init, input : str
        Student init and input distribution (docs/theory.md §4).
    level : float
        Confidence level of the intervals, in (0, 1).
    seed : int
    device : {"auto", "cpu", "cuda"}
    compile : {"off", "default", "reduce-overhead", "max-autotune"}
        Run the students' training steps eagerly (default) or through ``torch.compile`` in that
        mode (``reduce-overhead``: CUDA graphs on a GPU); compiled runs agree to rounding.
    threads : int
        ``torch.set_num_threads`` for the study's duration (default 1: the tensors are small and
        several threads are slower, badly so on a shared machine).
    out : str
        Results folder (default ``results/validate/<study>``).
    progress : bool
        tqdm bars.
    """

    #: the study's name (a class attribute of each subclass)
    study: ClassVar[str] = ""

    quick: bool = False
    schedule: str | None = None
    steps: int | None = None
    segments: int | None = None
    solver: str = "ddim"
    lam: tuple | None = None
    plans: tuple | None = None
    init: str = "warm"
    input: str = "forward"
    level: float = 0.99
    seed: int = 0
    device: str = "auto"
    compile: str = "off"
    threads: int | None = None
    out: str | None = None
    progress: bool = True

    #: the student families of the study, and whether ``family`` may be a comma list of them
    family_choices: ClassVar[tuple] = FAMILIES
    family_list: ClassVar[bool] = False

    def __post_init__(self) -> None:
        """Check every field before any work starts (a bad value must not cost minutes of training first).

        Each message names the field and its allowed range; ``opmerge validate`` reports it with the
        option's name. The size fields have the documented maxima of :mod:`opmerge.cli_options`.
        """
        if self.lam is not None:
            lam = nonnegative_array(self.lam, "lam")
            if lam.ndim > 1:
                raise InputError(f"lam must be a list of eigenvalues (1-D), got an array of shape {lam.shape}")
            object.__setattr__(self, "lam", tuple(float(v) for v in np.atleast_1d(lam)))
        if self.plans is not None:
            plans = (self.plans,) if isinstance(self.plans, str) else tuple(str(p) for p in self.plans)
            if not plans:
                raise InputError("plans must name at least one plan (vanilla, boot, cd, pd, optimal or a plan text)")
            object.__setattr__(self, "plans", plans)
        real_number(self.level, "level", low=0.0, low_open=True)
        if not float(self.level) < 1.0:
            raise InputError(f"level must be in (0, 1), got {self.level!r}")
        self._check_common()
        self._check_study()

    def _check_common(self) -> None:
        flag(self.quick, "quick")
        flag(self.progress, "progress")
        _is_none_or(self.schedule, lambda v: choice(v, "schedule", SCHEDULE_NAMES))
        _is_none_or(self.steps, lambda v: integer(v, "steps", low=1, high=MAX_TORCH_STEPS))
        _is_none_or(self.segments, lambda v: integer(v, "segments", low=1, high=self.steps if self.steps is not None else MAX_TORCH_STEPS))
        choice(self.solver, "solver", SOLVERS)
        choice(self.init, "init", INITS)
        choice(self.input, "input", INPUTS)
        integer(self.seed, "seed", low=0, high=MAX_SEED)
        choice(self.device, "device", DEVICES)
        choice(self.compile, "compile", COMPILE_MODES)
        _is_none_or(self.threads, lambda v: integer(v, "threads", low=1, high=MAX_THREADS))
        if self.out is not None and (not isinstance(self.out, (str, Path)) or not str(self.out).strip()):
            raise InputError(f"out must name a results folder, got {self.out!r}")
        for name in self.plans or ():
            check_plan_name(name, self.steps, self.segments)

    def _check_study(self) -> None:
        """The checks of the fields a study adds (each only when the study has the field)."""
        have = set(self.field_names())
        get = lambda name: getattr(self, name) if name in have else None  # noqa: E731
        for name in ("lr", "eta_tau"):
            _is_none_or(get(name), lambda v, name=name: real_number(v, name, low=0.0, low_open=True))
        limits = {"node_steps": (1, MAX_TRAIN_STEPS), "train_steps": (1, MAX_TRAIN_STEPS), "batch": (1, MAX_BATCH),
                  "repeats": (2, MAX_REPEATS), "hidden": (1, MAX_HIDDEN), "depth": (1, MAX_DEPTH), "n_eval": (MIN_N_EVAL, MAX_SAMPLES)}
        for name, (low, high) in limits.items():
            _is_none_or(get(name), lambda v, name=name, low=low, high=high: integer(v, name, low=low, high=high))
        _is_none_or(get("rotated"), lambda v: flag(v, "rotated"))
        _is_none_or(get("optimizer"), lambda v: choice(v, "optimizer", OPTIMIZERS))
        if "target" in have:
            choice(self.target, "target", TARGETS)
        family = get("family")
        if family is not None:
            if not isinstance(family, str):
                raise InputTypeError(f"family must be a str, got {type(family).__name__}")
            names = families(family)
            allowed = ", ".join(self.family_choices)
            if not names:
                raise InputError(f"family must be {'a comma list' if self.family_list else 'one'} of {allowed}, got {family!r}")
            if not self.family_list and len(names) > 1:
                raise InputError(f"family must be one of {allowed} (a single family for the {self.study} study), got {family!r}")
            for item in names:
                choice(item, "family", self.family_choices)

    @classmethod
    def defaults(cls, quick: bool) -> dict:
        """The study's defaults (full size, or ``quick``); see ``docs/bridge.md`` for the reasons."""
        return {"segments": 1, "plans": DEFAULT_PLANS, "threads": 1}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of this configuration's fields."""
        return tuple(f.name for f in fields(cls))

    def resolved(self) -> "StudyConfig":
        """A copy with every ``None`` field replaced by the study's default for ``quick``."""
        values = {name: getattr(self, name) for name in self.field_names()}
        for key, value in self.defaults(self.quick).items():
            if key in values and values[key] is None:
                values[key] = value
        if values["out"] is None:
            values["out"] = str(Path(DEFAULT_OUT) / self.study)
        return type(self)(**values)

    def to_dict(self) -> dict:
        """JSON-friendly dict, with the study's name."""
        return {"study": self.study, **asdict(self)}


def resolve_plans(names, problem: Problem, *, skip_other_segments: bool = False) -> list[tuple[str, Plan]]:
    """``[(name, Plan)]`` for plan names: canonical kinds, ``optimal`` (``opmerge.solvers.solve``) or text notation.

    Duplicated plans are kept under each name (the same plan may be canonical and optimal).

    Parameters
    ----------
    names : iterable of str
        Plan names.
    problem : Problem
        Supplies ``steps`` and ``segments`` (and the problem ``optimal`` solves).
    skip_other_segments : bool
        Leave out a plan text whose number of segments is not ``problem.segments`` (default: raise
        :class:`~opmerge.errors.InputError`).

    Returns
    -------
    list of (str, Plan)
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
                if skip_other_segments:
                    continue
                raise InputError(f"plan {name!r} has {plan.n_segments} segment(s) but the study uses segments = {problem.segments}")
            out.append((format_plan(plan), plan))
    return out


def progress(iterable, enabled: bool, desc: str, total: int | None = None):
    """``iterable`` under a tqdm bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def families(text: str) -> list[str]:
    """The entries of a comma list (``"diagonal,full"``)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def rel_gap(measured, predicted) -> float:
    r"""Largest relative gap :math:`\max_i |m_i - p_i| / |p_i|` (the denominator floored at 1e-300)."""
    measured, predicted = np.asarray(measured, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    scale = np.maximum(np.abs(predicted), 1e-300)
    return float(np.max(np.abs(measured - predicted) / scale))


def environment(cfg: StudyConfig) -> tuple[torch.device, torch.dtype]:
    """The torch device of ``cfg.device`` and its dtype (float64 on the CPU, float32 on CUDA)."""
    device = resolve_device(cfg.device)
    return device, default_dtype(device)


def device_label(device: torch.device) -> str:
    """``"cpu"`` or ``"cuda:0 (<device name>)"`` for the provenance block."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def unit_cache(cfg: StudyConfig) -> ResultCache:
    """The unit cache of a study: ``<out>/units``, namespace ``bridge-unit``, keyed by the core's and the bridge's code."""
    return ResultCache(Path(cfg.out) / "units", UNIT_NAMESPACE, packages=("opmerge.experiments",))


def finish(cfg: StudyConfig, body: dict, figure_fn, started: float, cache: ResultCache) -> dict:
    """Assemble the result, save the figure (``<study>-figure.*``) and write ``<out>/<study>.json`` with its provenance."""
    out = Path(cfg.out)
    device, _ = environment(cfg)
    result: dict[str, Any] = {"study": cfg.study, "config": cfg.to_dict(), **body}
    result["unit_cache"] = {"cached": cache.hits, "computed": cache.misses}
    try:
        fig, data = figure_fn(result)
        from opmerge.analysis.style import save_figure

        paths = save_figure(fig, out / f"{cfg.study}-figure", data, config=result["config"], close=True)
        result["figure"] = {k: str(v) for k, v in paths.items()}
    except ImportError as exc:  # matplotlib missing: the numbers still count
        result["figure"] = {"error": f"no figure ({exc})"}
    result["elapsed_s"] = time.perf_counter() - started
    result = to_jsonable(result)
    result["result_file"] = str(out / f"{cfg.study}.json")
    result["provenance"] = to_jsonable(provenance(device=device_label(device), config=result["config"]))
    write_json(out / f"{cfg.study}.json", result)
    return result


def min_separation(predictions: list) -> float:
    """Smallest relative difference between the predicted gains of two different plans (same direction)."""
    best = float("inf")
    for a in range(len(predictions)):
        for b in range(a + 1, len(predictions)):
            pa, pb = np.asarray(predictions[a]), np.asarray(predictions[b])
            best = min(best, float(np.min(np.abs(pa - pb) / np.abs(pa))))
    return best if math.isfinite(best) else float("nan")
