"""Device, dtype and seeding helpers shared by the bridge (private).

* ``--device auto`` picks CUDA when ``torch.cuda.is_available()``, else the CPU; asking for ``cuda``
  without one is a ``ValueError`` (the CLI turns it into a usage error, exit status 2).
* Computations run in float64 on the CPU and float32 on CUDA (:func:`default_dtype`).
* Every random draw goes through an explicit :class:`torch.Generator`; :func:`derive_seed` turns a
  base seed and a label (a unit name) into an independent 63-bit seed, so results do not depend on
  the order in which units run.
* ``MKL_CBWR=AUTO,STRICT`` is set (unless already set) before torch is imported: MKL's kernel choice
  then does not depend on memory alignment, and the same unit gives the same bits in every process.
"""

from __future__ import annotations

import hashlib
import os

# Bit-for-bit CPU results: MKL (torch's BLAS on x86) picks kernels by the memory alignment of each
# array unless told not to, so the same unit could differ in the last bits from one process to the
# next (seen: 1 unit of 86 of the digits study, 1e-9 relative). Strict conditional numerical
# reproducibility fixes the path; it is read when MKL is first used, so set it before that
# (the command line sets it before importing anything). A value the user set is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402
import torch  # noqa: E402

from opmerge.errors import InputError

__all__ = ["DEVICES", "resolve_device", "default_dtype", "derive_seed", "make_generator", "to_numpy"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for ``name`` in ``{"auto", "cpu", "cuda"}`` (or a ``torch.device``).

    Raises
    ------
    ValueError
        For an unknown name, or ``"cuda"`` when CUDA is not available.
    """
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES and not (isinstance(name, str) and name.startswith("cuda:")):
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but CUDA is not available on this machine (use --device cpu or auto)")
    return torch.device(name)


def default_dtype(device: torch.device) -> torch.dtype:
    """float64 on the CPU (bit-reproducible, exact comparisons), float32 on CUDA."""
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def derive_seed(seed: int, *labels: object) -> int:
    """An independent seed for ``labels`` under the base ``seed``: the first 63 bits of SHA-256 of ``"seed|label|..."``."""
    text = "|".join([str(int(seed))] + [str(label) for label in labels])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) >> 1


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def to_numpy(t: torch.Tensor | ArrayLike) -> np.ndarray:
    """A tensor (detached, on the CPU) or an array as a float64 numpy array."""
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)
