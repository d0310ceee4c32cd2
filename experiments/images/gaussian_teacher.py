r"""The Gaussian image teacher: the exact denoiser of :math:`\mathcal N(\mu, \Sigma)` fitted to the training images.

.. math:: \hat x_0 = \mu + \alpha\Sigma(\alpha^2\Sigma + \sigma^2 I)^{-1}(z - \alpha\mu)
          = \mu + U \operatorname{diag}\Big(\frac{\alpha\lambda}{\alpha^2\lambda + \sigma^2}\Big) U^\top (z - \alpha\mu).

There is one Gaussian teacher in the project, :class:`experiments.teacher.GaussianTeacher`; with a
data mean it is the centred teacher conjugated by the shift :math:`z \mapsto z - \alpha_n\mu` (the DDIM
update is affine with matching shifts), so its sampler's per-direction gain is
:func:`opmerge.teacher.teacher_composite` exactly. This module only builds it from image data:
:func:`gaussian_image_teacher` from a :class:`~experiments.images.data.GaussianFit`,
:func:`gaussian_teacher_from_dataset` from an :class:`~experiments.images.data.ImageDataset`.
``GaussianImageTeacher(...)`` and ``GaussianImageTeacher.from_dataset(...)`` are the same two
factories under their former name; both return a :class:`~experiments.teacher.GaussianTeacher`.
"""

from __future__ import annotations

import numpy as np
import torch

from opmerge.errors import InputTypeError
from opmerge.schedules import Schedule

from ..teacher import AffineDenoiser, GaussianTeacher
from .data import GaussianFit, ImageDataset, fit_gaussian

__all__ = ["AffineDenoiser", "GaussianImageTeacher", "gaussian_image_teacher", "gaussian_teacher_from_dataset"]


def gaussian_image_teacher(schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                           device: torch.device | str = "cpu") -> GaussianTeacher:
    r"""The Gaussian teacher of a fit: eigenvalues ``fit.lam``, eigenbasis ``fit.basis``, mean ``fit.mean`` (DDIM sampler).

    Parameters
    ----------
    schedule : Schedule
        The sampling grid.
    fit : GaussianFit
        The Gaussian fitted to the training images (:func:`~experiments.images.data.fit_gaussian`).
    train : tensor (n, dim), optional
        Training rows: the sampler's inputs :math:`z_N = \alpha_N x_0 + \sigma_N\varepsilon` draw
        :math:`x_0` among them (without them, from the Gaussian).
    dtype : torch.dtype, optional
        Default float64 on the CPU, float32 on CUDA.
    device : str or torch.device

    Returns
    -------
    GaussianTeacher
        ``kind == "gaussian"``, with ``mean``, ``train`` and ``fit`` set.
    """
    if not isinstance(fit, GaussianFit):
        raise InputTypeError(f"fit must be a GaussianFit, got {type(fit).__name__}")
    return GaussianTeacher.from_fit(schedule, fit, train, dtype, device)


def gaussian_teacher_from_dataset(dataset: ImageDataset, schedule: Schedule, dtype: torch.dtype | None = None,
                                  device: torch.device | str = "cpu") -> GaussianTeacher:
    """Fit the Gaussian to ``dataset.train`` (:func:`~experiments.images.data.fit_gaussian`) and build its teacher,
    holding the training rows (:func:`gaussian_image_teacher`).

    Parameters
    ----------
    dataset : ImageDataset
    schedule : Schedule
        The sampling grid.
    dtype : torch.dtype, optional
        Default float64 on the CPU, float32 on CUDA.
    device : str or torch.device

    Returns
    -------
    GaussianTeacher
    """
    if not isinstance(dataset, ImageDataset):
        raise InputTypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    return gaussian_image_teacher(schedule, fit_gaussian(dataset.train), torch.tensor(np.array(dataset.train)), dtype, device)


class GaussianImageTeacher:
    """The two factories under their former class name (calls return a :class:`~experiments.teacher.GaussianTeacher`).

    ``GaussianImageTeacher(schedule, fit, train=None, dtype=None, device="cpu")`` is
    :func:`gaussian_image_teacher`; ``GaussianImageTeacher.from_dataset(dataset, schedule, dtype=None, device="cpu")``
    is :func:`gaussian_teacher_from_dataset`. No object is ever an instance of this class: test for
    ``GaussianTeacher`` instead.
    """

    def __new__(cls, schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                device: torch.device | str = "cpu") -> GaussianTeacher:  # type: ignore[misc]
        return gaussian_image_teacher(schedule, fit, train, dtype, device)

    from_dataset = staticmethod(gaussian_teacher_from_dataset)
