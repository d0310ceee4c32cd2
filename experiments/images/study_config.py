"""Configuration of the images study: :class:`ImagesStudyConfig` and the study's named choices.

Kept apart from :mod:`~opmerge.experiments.images.study` (which runs the study) so that the modules
the study uses (comparison, units) can name the configuration without importing the runner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from opmerge._validate import choice
from opmerge.cli_options import COMPILE_MODES
from opmerge.errors import InputError

__all__ = ["ImagesStudyConfig", "DEFAULT_OUT", "RESULT_NAME", "RECIPES", "TEACHERS", "TRAJECTORY_METHODS"]

#: default output folder of ``opmerge validate images``
DEFAULT_OUT = "results/validate/images"
RECIPES = ("linear", "network")
TEACHERS = ("gaussian", "trained")
TRAJECTORY_METHODS = ("scot", "traflow")
#: the result file of the study in its output folder (figures are named ``images_<figure>``, never this)
RESULT_NAME = "images.json"


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
    costs : str, optional             a cost model (``opmerge calibrate --teacher checkpoint``): the network
                                      recipe's plans are also predicted by it, and its recommended plan per
                                      ``M`` is measured (docs/calibration.md §7)
    traj_steps, traj_hidden, traj_depth, traj_lr, traj_batch : SCoT/TraFlow training
    n_eval : int                      fixed inputs per teacher (and per student)
    teacher_preset : {"quick", "full"} size of a teacher trained here
    level : float                     confidence level of the gain intervals
    seed : int
    device : {"auto", "cpu", "cuda"}
    compile : str                     ``off`` (default) or a ``torch.compile`` mode for the students'
                                      training steps (``default``, ``reduce-overhead``: CUDA graphs,
                                      ``max-autotune``); agrees with ``off`` to rounding, not bit for bit
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
    costs: str | None = None
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
    compile: str = "off"
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for label, values, allowed in (("teachers", self.teachers, TEACHERS), ("recipes", self.recipes, RECIPES),
                                       ("trajectory", self.trajectory, TRAJECTORY_METHODS)):
            values = tuple(values)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise InputError(f"{label} must be drawn from {', '.join(allowed)}, got {', '.join(map(str, bad))}")
            object.__setattr__(self, label, values)
        if not self.teachers:
            raise InputError("teachers must name at least one of gaussian, trained")
        if self.schedule not in ("rf", "vp-cosine"):
            raise InputError(f"schedule must be 'rf' or 'vp-cosine' (the trained teacher and SCoT need continuous time), got {self.schedule!r}")
        segs = tuple(int(m) for m in self.segments)
        if not segs or any(m < 1 for m in segs):
            raise InputError(f"segments must be integers >= 1, got {self.segments!r}")
        object.__setattr__(self, "segments", segs)
        if self.init not in ("warm", "ddim") or self.input not in ("forward", "generated"):
            raise InputError(f"init must be warm or ddim and input forward or generated, got {self.init!r}, {self.input!r}")
        if not 0.0 < self.level < 1.0:
            raise InputError(f"level must be in (0, 1), got {self.level!r}")
        if not (isinstance(self.eta_tau, (int, float)) and self.eta_tau > 0):
            raise InputError(f"eta_tau must be > 0, got {self.eta_tau!r}")
        choice(self.compile, "compile", COMPILE_MODES)
        if self.teacher_preset not in (None, "quick", "full"):
            raise InputError(f"teacher_preset must be 'quick' or 'full', got {self.teacher_preset!r}")
        if self.recipes_by_teacher is not None:
            pairs = tuple((str(a), str(b)) for a, b in self.recipes_by_teacher)
            for a, b in pairs:
                if a not in TEACHERS or b not in RECIPES:
                    raise InputError(f"recipes_by_teacher entries must be (teacher, recipe) pairs, got ({a!r}, {b!r})")
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
            raise InputError(f"segments must be <= steps = {values['steps']}, got {values['segments']}")
        return replace(self, **values)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)
