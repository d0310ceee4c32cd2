r"""Checkpoints of the trained image teacher: the file format, atomic writes, loading a teacher back.

``OUT/teacher.pt`` is the dict ``{"format", "config", "step", "model", "ema", "optimizer",
"generator", "losses", "loss_block", "data", "elapsed", "provenance"}`` written by ``torch.save``
through :func:`opmerge.io.atomic_path` and read with ``torch.load(weights_only=True)``;
``OUT/teacher.json`` is its readable summary (:meth:`TeacherCheckpoint.to_dict` plus provenance).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from opmerge.errors import InputError
from opmerge.io import atomic_path
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


def read_checkpoint(path: Path) -> dict:
    """The raw checkpoint dict at ``path`` (``torch.load(weights_only=True)``, on the CPU).

    Parameters
    ----------
    path : Path
        A ``teacher.pt`` file.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    InputError
        When the file is not an image-teacher checkpoint of format :data:`CHECKPOINT_FORMAT`.
    """
    if not path.is_file():
        raise FileNotFoundError(2, "teacher checkpoint not found", str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not an opmerge image-teacher checkpoint (format {CHECKPOINT_FORMAT!r})")
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
        No checkpoint at ``path``.
    InputError
        Not a checkpoint of this format, or other data.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = read_checkpoint(path)
    config = TeacherConfig.from_dict(state["config"])
    dataset = dataset_of(config) if dataset is None else dataset
    if dataset.fingerprint() != state["data"]["fingerprint"]:
        raise InputError(f"{path}: the dataset differs from the one the teacher was trained on (fingerprint mismatch)")
    device = resolve_device(device)
    fit = fit_gaussian(dataset.train)
    net = build_net(config, dataset, fit, device)
    net.load_state_dict(state["ema"])
    dtype = dtype_of(config.dtype) if device.type == "cpu" else torch.float32
    net = net.to(dtype=dtype)
    schedule = make_schedule(config.schedule, config.steps) if schedule is None else schedule
    teacher = TrainedTeacher(net, schedule, fit, torch.tensor(np.array(dataset.train)), config)
    summary = TeacherCheckpoint(path=path, config=config, step=int(state["step"]), losses=tuple(state["losses"]),
                                data=state["data"], elapsed=float(state["elapsed"]), provenance=state.get("provenance"))
    return teacher, summary
