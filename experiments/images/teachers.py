r"""Teachers on image data: the Gaussian fitted to the data, and a small MLP diffusion model trained here.

This module gathers the public names of the modules that implement them (import from here or from
the module itself; both stay valid):

* :mod:`~experiments.images.teacher_base` — :class:`ImageTeacher`, the denoiser + DDIM sampler interface;
* :mod:`~experiments.images.gaussian_teacher` — the Gaussian teacher of the fitted images
  (:func:`gaussian_image_teacher`, :func:`gaussian_teacher_from_dataset`; ``GaussianImageTeacher`` is
  their former name): an :class:`experiments.teacher.GaussianTeacher` with the data mean;
* :mod:`~experiments.images.denoiser` — the network :class:`DenoiserMLP` (log-SNR embedding, EDM-style
  preconditioning around the data mean);
* :mod:`~experiments.images.trained_teacher` — :class:`TrainedTeacher`, the network run as a sampler;
* :mod:`~experiments.images.teacher_config` — :class:`TeacherConfig` and its presets;
* :mod:`~experiments.images.checkpoints` — :class:`TeacherCheckpoint`, :func:`load_checkpoint`,
  :func:`save_checkpoint_atomic`;
* :mod:`~experiments.images.teacher_training` — :func:`train_teacher` (resumable bit for bit).
"""

from __future__ import annotations

from .checkpoints import CHECKPOINT_NAME, METRICS_NAME, SUMMARY_NAME, TeacherCheckpoint, load_checkpoint, save_checkpoint_atomic
from .denoiser import ALPHA_ZERO, PREDICTIONS, DenoiserMLP, FixedLevelDenoiser, logsnr_embedding
from .gaussian_teacher import AffineDenoiser, GaussianImageTeacher, gaussian_image_teacher, gaussian_teacher_from_dataset
from .teacher_base import ImageTeacher
from .teacher_config import TeacherConfig
from .teacher_training import train_teacher
from .trained_teacher import TrainedTeacher

__all__ = [
    "PREDICTIONS",
    "ALPHA_ZERO",
    "ImageTeacher",
    "GaussianImageTeacher",
    "gaussian_image_teacher",
    "gaussian_teacher_from_dataset",
    "DenoiserMLP",
    "FixedLevelDenoiser",
    "AffineDenoiser",
    "TrainedTeacher",
    "TeacherConfig",
    "TeacherCheckpoint",
    "train_teacher",
    "load_checkpoint",
    "save_checkpoint_atomic",
    "logsnr_embedding",
    "CHECKPOINT_NAME",
    "SUMMARY_NAME",
    "METRICS_NAME",
]
