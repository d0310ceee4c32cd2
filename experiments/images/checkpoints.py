r"""Checkpoints of the trained image teacher: the file format, atomic writes, loading a teacher back.

``OUT/teacher.pt`` is the dict ``{"format", "config", "step", "model", "ema", "optimizer",
"generator", "losses", "loss_block", "data", "elapsed", "provenance"}`` written by ``torch.save``
through :func:`opmerge.io.atomic_path` and read by :func:`read_checkpoint` through
:func:`opmerge.io.load_torch` (``torch.load(weights_only=True)``), which checks every entry and the
weights' shapes: an empty, truncated, damaged, unsafe or incomplete file is an
:class:`~opmerge.errors.InputError` naming it, never a traceback. ``OUT/teacher.json`` is its
readable summary (:meth:`TeacherCheckpoint.to_dict` plus provenance).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from opmerge._validate import is_real
from opmerge.errors import InputError
from opmerge.io import atomic_path, load_torch, show_path
from opmerge.schedules import Schedule, make_schedule

from .._torch import resolve_device
from .data import GaussianFit, ImageDataset, fit_gaussian, load_dataset
from .denoiser import DenoiserMLP, dtype_of
from .teacher_config import TeacherConfig
from .trained_teacher import TrainedTeacher

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "SUMMARY_NAME",
    "METRICS_NAME",
    "TeacherCheckpoint",
    "save_checkpoint_atomic",
    "read_checkpoint",
    "REQUIRED_ENTRIES",
    "expected_shapes",
    "build_net",
    "dataset_of",
    "load_checkpoint",
]

CHECKPOINT_NAME = "teacher.pt"
CHECKPOINT_FORMAT = "opmerge-image-teacher/1"
#: the readable summary beside the checkpoint
SUMMARY_NAME = "teacher.json"
#: the sample-quality metrics that ``opmerge train-teacher`` writes beside the checkpoint
METRICS_NAME = "teacher_metrics.json"


def dataset_of(config: TeacherConfig) -> ImageDataset:
    """The dataset a teacher configuration names.

    Parameters
    ----------
    config : TeacherConfig
        ``data`` split by ``test_fraction`` and ``split_seed``.

    Returns
    -------
    ImageDataset
    """
    return load_dataset(config.data, test_fraction=config.test_fraction, seed=config.split_seed)


@dataclass(frozen=True)
class TeacherCheckpoint:
    r"""A trained (or partly trained) teacher on disk.

    Attributes
    ----------
    path : Path               the ``teacher.pt`` file (a JSON summary ``teacher.json`` lies beside it)
    config : TeacherConfig
    step : int                Adam updates done
    losses : list of float    mean training loss of every ``log_every`` block of steps
    data : dict               the dataset's description (with its fingerprint)
    elapsed : float           training seconds, summed over sessions
    provenance : dict, optional   the provenance block of the session that wrote the checkpoint
                              (:func:`opmerge.io.provenance`; ``None`` for checkpoints written before it existed)
    """

    path: Path
    config: TeacherConfig
    step: int
    losses: tuple
    data: dict
    elapsed: float
    provenance: dict | None = None

    @property
    def finished(self) -> bool:
        """Whether ``step >= config.train_steps``."""
        return self.step >= self.config.train_steps

    def load_teacher(self, device: str | torch.device = "cpu", schedule: Schedule | None = None,
                     dataset: ImageDataset | None = None) -> TrainedTeacher:
        """The EMA network as a :class:`TrainedTeacher` (see :func:`load_checkpoint`).

        Parameters
        ----------
        device : {"auto", "cpu", "cuda"} or torch.device
        schedule : Schedule, optional
            The sampling grid (default: the configured schedule and steps).
        dataset : ImageDataset, optional
            The training data (default: rebuilt from the configuration); its fingerprint must match.
        """
        return load_checkpoint(self.path, device=device, schedule=schedule, dataset=dataset)[0]

    def to_dict(self) -> dict:
        """JSON-friendly summary."""
        return {"path": str(self.path), "config": self.config.to_dict(), "step": self.step, "finished": self.finished,
                "losses": list(self.losses), "data": self.data, "elapsed": self.elapsed}


def save_checkpoint_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` through :func:`opmerge.io.atomic_path` (never a half-written checkpoint).

    Parameters
    ----------
    obj : dict
        What to save (tensors, plain Python values).
    path : path-like
        Destination file; missing folders are created.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


#: the entries every checkpoint must hold, with their types (checked by :func:`read_checkpoint`)
REQUIRED_ENTRIES = {"format": str, "config": dict, "step": int, "model": dict, "ema": dict, "optimizer": dict,
                    "generator": torch.Tensor, "losses": (list, tuple), "data": dict, "elapsed": (int, float)}


def expected_shapes(config: TeacherConfig, dim: int) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of the :class:`DenoiserMLP` state of ``config`` on ``dim``-dimensional data.

    Parameters
    ----------
    config : TeacherConfig
        Width, depth, embedding size.
    dim : int
        The data's dimension.

    Returns
    -------
    dict
        ``state_dict`` key -> shape.
    """
    hidden, depth, emb = int(config.hidden), int(config.depth), int(config.emb_dim)
    sizes = [int(dim)] + [hidden] * depth
    shapes: dict[str, tuple[int, ...]] = {"mean": (int(dim),)}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"weights.{i}"] = (fan_out, fan_in)
        shapes[f"biases.{i}"] = (fan_out,)
        shapes[f"embeds.{i}"] = (fan_out, emb)
    shapes["out_weight"] = (int(dim), hidden)
    shapes["out_bias"] = (int(dim),)
    return shapes


def _check_weights(weights: dict, shapes: dict[str, tuple[int, ...]], path: Path, entry: str) -> None:
    """Refuse (naming the file) network weights whose names, types or shapes are not those of ``shapes``."""
    if set(weights) != set(shapes):
        missing = sorted(set(shapes) - set(weights))
        extra = sorted(set(weights) - set(shapes))
        parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + ([f"unexpected {', '.join(map(str, extra[:4]))}"] if extra else [])
        raise InputError(f"teacher checkpoint {show_path(path)}: entry {entry!r} is not the network of its configuration ({'; '.join(parts)})")
    for key, shape in shapes.items():
        value = weights[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise InputError(f"teacher checkpoint {show_path(path)}: entry {entry!r}: {key} must be a float tensor, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise InputError(f"teacher checkpoint {show_path(path)}: entry {entry!r}: {key} has shape {tuple(value.shape)}, "
                             f"its configuration needs {shape}")
        if not bool(torch.isfinite(value).all()):
            raise InputError(f"teacher checkpoint {show_path(path)}: entry {entry!r}: {key} contains NaN or inf")


def read_checkpoint(path: Path) -> dict:
    """The raw checkpoint dict at ``path``, read safely and checked.

    Read by :func:`opmerge.io.load_torch` (``torch.load(weights_only=True)``, on the CPU); then every
    entry of :data:`REQUIRED_ENTRIES` must be there with its type, the format must be
    :data:`CHECKPOINT_FORMAT`, the stored configuration valid, ``step``, ``losses`` and ``elapsed``
    finite numbers (``step >= 0``), ``data`` must carry its ``dim`` and ``fingerprint``, and the
    ``model`` and ``ema`` weights must have the names and shapes of the configured network
    (:func:`expected_shapes`), finite.

    Parameters
    ----------
    path : Path
        A ``teacher.pt`` file.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist (:class:`opmerge.io.MissingFileError`, also an ``InputError``).
    InputError
        When the file is empty, truncated, damaged, not a torch file, holds objects a weights-only
        load refuses, or is not a complete image-teacher checkpoint of format
        :data:`CHECKPOINT_FORMAT`; the message names the file.
    """
    path = Path(path)
    shown = show_path(path)
    state = load_torch(path, name="teacher checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        found = f"format {state['format']!r}" if "format" in state else "no 'format' entry"
        raise InputError(f"teacher checkpoint {shown} is not an opmerge image-teacher checkpoint ({found}; expected {CHECKPOINT_FORMAT!r})")
    missing = [key for key in REQUIRED_ENTRIES if key not in state]
    if missing:
        raise InputError(f"teacher checkpoint {shown} lacks the entries {', '.join(map(repr, missing))}: not a complete checkpoint")
    for key, kind in REQUIRED_ENTRIES.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(state[key], bool) or not isinstance(state[key], kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise InputError(f"teacher checkpoint {shown}: entry {key!r} must be a {names}, got {type(state[key]).__name__}")
    try:
        config = TeacherConfig.from_dict(state["config"])
    except (InputError, TypeError, ValueError) as exc:
        raise InputError(f"teacher checkpoint {shown}: its stored configuration is invalid ({exc})") from None
    if state["step"] < 0:
        raise InputError(f"teacher checkpoint {shown}: entry 'step' must be >= 0, got {state['step']}")
    if not math.isfinite(state["elapsed"]) or state["elapsed"] < 0:
        raise InputError(f"teacher checkpoint {shown}: entry 'elapsed' must be finite and >= 0, got {state['elapsed']!r}")
    if not all(is_real(v) for v in state["losses"]):
        raise InputError(f"teacher checkpoint {shown}: entry 'losses' must be a list of numbers")
    dim, fingerprint = state["data"].get("dim"), state["data"].get("fingerprint")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or not isinstance(fingerprint, str):
        raise InputError(f"teacher checkpoint {shown}: entry 'data' must hold the data's 'dim' (an int >= 1) and 'fingerprint' (a str)")
    shapes = expected_shapes(config, dim)
    for entry in ("model", "ema"):
        _check_weights(state[entry], shapes, path, entry)
    if state["generator"].dtype != torch.uint8:
        raise InputError(f"teacher checkpoint {shown}: entry 'generator' must be a uint8 tensor (a random generator's state), "
                         f"got dtype {state['generator'].dtype}")
    return state


def build_net(config: TeacherConfig, dataset: ImageDataset, fit: GaussianFit, device: torch.device) -> DenoiserMLP:
    r"""The initial :class:`DenoiserMLP` of ``config`` (weights from a generator seeded by ``config.seed``),
    preconditioned with the fit's mean and :math:`s = \sqrt{\operatorname{tr}\Sigma/d}`.

    Parameters
    ----------
    config : TeacherConfig
        Width, depth, embedding, prediction, dtype and seed.
    dataset : ImageDataset
        Supplies the dimension.
    fit : GaussianFit
        Supplies :math:`\mu` and :math:`s`.
    device : torch.device

    Returns
    -------
    DenoiserMLP
    """
    dtype = dtype_of(config.dtype)
    gen = torch.Generator().manual_seed(config.seed)
    data_std = math.sqrt(float(np.sum(fit.lam)) / fit.dim)
    net = DenoiserMLP(dataset.dim, config.hidden, config.depth, config.emb_dim, config.prediction,
                      torch.as_tensor(np.array(fit.mean)), data_std, gen, dtype)
    return net.to(device)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", schedule: Schedule | None = None,
                    dataset: ImageDataset | None = None) -> tuple[TrainedTeacher, TeacherCheckpoint]:
    """Load a checkpoint file (or a folder holding ``teacher.pt``): the EMA network as a teacher, and its summary.

    Parameters
    ----------
    path : path-like
        ``teacher.pt`` or its folder.
    device : {"auto", "cpu", "cuda"} or torch.device
        Where the network runs (float32 on CUDA, the configured dtype on the CPU).
    schedule : Schedule, optional
        The sampling grid (default: the configured schedule and steps).
    dataset : ImageDataset, optional
        The training data (default: rebuilt from the stored configuration); it must have the stored
        fingerprint.

    Returns
    -------
    (TrainedTeacher, TeacherCheckpoint)

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path`` (:class:`opmerge.io.MissingFileError`, also an ``InputError``).
    InputError
        A file :func:`read_checkpoint` refuses (empty, truncated, damaged, unsafe, incomplete, wrong
        shapes), or other data; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = read_checkpoint(path)
    config = TeacherConfig.from_dict(state["config"])
    dataset = dataset_of(config) if dataset is None else dataset
    if dataset.fingerprint() != state["data"]["fingerprint"]:
        raise InputError(f"teacher checkpoint {show_path(path)}: the dataset differs from the one the teacher was trained on (fingerprint mismatch)")
    device = resolve_device(device)
    fit = fit_gaussian(dataset.train)
    net = build_net(config, dataset, fit, device)
    try:
        net.load_state_dict(state["ema"])
    except RuntimeError as exc:  # shapes were checked by read_checkpoint; the data's dimension may still differ
        raise InputError(f"teacher checkpoint {show_path(path)}: its weights do not fit a network on this data ({str(exc).splitlines()[0]})") from None
    dtype = dtype_of(config.dtype) if device.type == "cpu" else torch.float32
    net = net.to(dtype=dtype)
    schedule = make_schedule(config.schedule, config.steps) if schedule is None else schedule
    teacher = TrainedTeacher(net, schedule, fit, torch.tensor(np.array(dataset.train)), config)
    summary = TeacherCheckpoint(path=path, config=config, step=int(state["step"]), losses=tuple(state["losses"]),
                                data=state["data"], elapsed=float(state["elapsed"]), provenance=state.get("provenance"))
    return teacher, summary
