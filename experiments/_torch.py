"""Device, dtype and seeding helpers shared by the bridge (private).

* ``--device auto`` picks CUDA when ``torch.cuda.is_available()``, else the CPU; asking for ``cuda``
  without one is a ``ValueError`` (the CLI turns it into a usage error, exit status 2).
* Computations run in float64 on the CPU and float32 on CUDA (:func:`default_dtype`).
* Every random draw goes through an explicit :class:`torch.Generator`; :func:`derive_seed` turns a
  base seed and a label (a unit name) into an independent 63-bit seed, so results do not depend on
  the order in which units run.
* A training step's networks run eagerly (``compile="off"``, the default) or through
  :func:`torch.compile` with one of its modes (:func:`compiled`; ``"reduce-overhead"`` adds CUDA
  graphs on a GPU). Compiled code may order floating-point operations differently, so a compiled
  run agrees with the eager one to rounding, not bit for bit.
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

from opmerge._validate import choice
from opmerge.cli_options import COMPILE_MODES
from opmerge.errors import InputError

__all__ = ["DEVICES", "COMPILE_MODES", "resolve_device", "default_dtype", "check_compile_mode", "compiled", "derive_seed",
           "make_generator", "to_numpy"]

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


def check_compile_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else an error naming ``compile``."""
    return choice(mode, "compile", COMPILE_MODES)


def compiled(fn, mode: str):
    """``fn`` itself for ``mode="off"``, else ``torch.compile(fn)`` in that mode (a module stays a module
    sharing its parameters; the first calls compile, later ones reuse the code while the guards hold)."""
    if check_compile_mode(mode) == "off":
        return fn
    # The trainers differentiate one compiled graph more than once (the SCoT gradient-norm weights
    # use retain_graph=True), which AOTAutograd's donated buffers forbid: switch them off (they only
    # save memory). Read when a graph is compiled, i.e. at its first call.
    import torch._functorch.config as functorch_config

    functorch_config.donated_buffer = False
    return torch.compile(fn, mode=None if mode == "default" else mode)


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
