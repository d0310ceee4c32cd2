r"""The sample quality of a trained teacher, measured and written beside its checkpoint.

:func:`evaluate_teacher_quality` draws ``n_eval`` samples from a checkpoint's EMA network (DDIM on its
configured grid, inputs from a generator seeded by ``seed``), measures them with
:func:`~experiments.images.metrics.evaluate_samples` (Fréchet distances to held-out images in pixels and
classifier features, classifier score, coverage, memorisation), measures the training images the same
way as the reference floor, and writes both with a provenance block to
``<checkpoint folder>/teacher_metrics.json`` (what ``opmerge train-teacher`` prints).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from opmerge.errors import InputError, InputTypeError
from opmerge.io import provenance, write_json

from .._torch import resolve_device
from ._records import device_label
from .checkpoints import METRICS_NAME, TeacherCheckpoint
from .data import ImageDataset
from .metrics import evaluate_samples, load_or_train_classifier

__all__ = ["evaluate_teacher_quality"]


def evaluate_teacher_quality(checkpoint: TeacherCheckpoint, dataset: ImageDataset, *, n_eval: int = 2000, seed: int = 0,
                             device: str | torch.device = "auto", cache_dir: str | os.PathLike | None = None,
                             write: bool = True) -> dict:
    """Sample the teacher of ``checkpoint``, measure the samples and (by default) write the record as JSON.

    Parameters
    ----------
    checkpoint : TeacherCheckpoint
        The trained teacher (:func:`~experiments.images.teacher_training.train_teacher`'s return value).
    dataset : ImageDataset
        The data it was trained on (its fingerprint is checked when the teacher is loaded).
    n_eval : int
        Samples drawn, ``>= 2``.
    seed : int
        Seed of the sampler's inputs (and of the metrics).
    device : {"auto", "cpu", "cuda"}
        Where the teacher samples.
    cache_dir : path-like, optional
        Folder of the metrics classifier's cache (default ``<checkpoint folder>/cache``).
    write : bool
        Write the record to ``<checkpoint folder>/teacher_metrics.json``.

    Returns
    -------
    dict
        ``checkpoint`` (summary), ``n_eval``, ``seed``, ``classifier`` (its record, or ``None`` for
        unlabelled data), ``evaluation`` (the samples' metrics), ``data_reference`` (the training
        images' metrics, without memorisation), ``metrics_file`` (the path, or ``None``) and
        ``provenance``.
    """
    if not isinstance(checkpoint, TeacherCheckpoint):
        raise InputTypeError(f"checkpoint must be a TeacherCheckpoint, got {type(checkpoint).__name__}")
    if isinstance(n_eval, bool) or not isinstance(n_eval, int) or n_eval < 2:
        raise InputError(f"n_eval must be an int >= 2, got {n_eval!r}")
    folder = Path(checkpoint.path).parent
    device = resolve_device(device)
    teacher = checkpoint.load_teacher(device=device, dataset=dataset)
    classifier, info = (None, None)
    if dataset.has_labels:
        classifier, info = load_or_train_classifier(dataset, folder / "cache" if cache_dir is None else cache_dir)
    samples = teacher.sample_images(n_eval, torch.Generator().manual_seed(seed))
    record = {
        "checkpoint": checkpoint.to_dict(),
        "n_eval": n_eval,
        "seed": seed,
        "classifier": info,
        "evaluation": evaluate_samples(samples, dataset, classifier, seed=seed),
        "data_reference": evaluate_samples(dataset.train, dataset, classifier, seed=seed, check_memorization=False),
        "metrics_file": str(folder / METRICS_NAME) if write else None,
        "provenance": provenance(device=device_label(device),
                                 config={"teacher": checkpoint.config.to_dict(), "step": checkpoint.step, "n_eval": n_eval, "seed": seed}),
    }
    if write:
        write_json(folder / METRICS_NAME, record)
    return record
