r"""Continuous-time versions of the ``rf`` and ``vp-cosine`` schedules (private).

``docs/theory.md`` §1 defines both on the grid :math:`t_n = n/N`; here they are functions of :math:`t \in [0, 1]`
(0 = data, 1 = noise), so that a network trained at continuous times can be sampled on any grid and
the trajectory students can differentiate in time:

* ``rf``: :math:`\alpha(t) = 1 - t`, :math:`\sigma(t) = t`;
* ``vp-cosine``: :math:`\alpha(t) = \cos(\pi t/2)`, :math:`\sigma(t) = \sin(\pi t/2)`.

On the grid :math:`t_n = n/N` these equal :func:`opmerge.schedules.make_schedule`'s arrays.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from opmerge.errors import InputError

__all__ = ["CONTINUOUS_SCHEDULES", "alpha_sigma", "check_continuous"]

CONTINUOUS_SCHEDULES = ("rf", "vp-cosine")


def check_continuous(name: str) -> str:
    """``name`` if it has a continuous-time form here.

    Parameters
    ----------
    name : str
        A schedule name.

    Raises
    ------
    InputError
        When ``name`` is not in :data:`CONTINUOUS_SCHEDULES`.
    """
    if name not in CONTINUOUS_SCHEDULES:
        raise InputError(f"schedule must be one of {', '.join(CONTINUOUS_SCHEDULES)} (continuous time), got {name!r}")
    return name


def alpha_sigma(name: str, t: float | np.ndarray | torch.Tensor) -> tuple:
    r""":math:`(\alpha(t), \sigma(t))` of the continuous schedule (module docstring).

    Parameters
    ----------
    name : {"rf", "vp-cosine"}
    t : float, array or tensor
        Times in :math:`[0, 1]` (0 = data, 1 = noise).

    Returns
    -------
    (alpha, sigma)
        Of the type of ``t``.
    """
    check_continuous(name)
    lib = torch if isinstance(t, torch.Tensor) else np
    if name == "rf":
        return 1.0 - t, t * 1.0
    return lib.cos(0.5 * math.pi * t), lib.sin(0.5 * math.pi * t)
