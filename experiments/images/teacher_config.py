r"""The configuration of a trained image teacher (:class:`TeacherConfig`): everything that fixes a
run, stored in its checkpoint; the quick and full presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from opmerge.errors import InputError, InputTypeError

from ._schedule import check_continuous
from .denoiser import PREDICTIONS, dtype_of

__all__ = ["TeacherConfig"]


@dataclass(frozen=True)
class TeacherConfig:
    r"""Everything that fixes a trained teacher (stored in its checkpoint).

    Parameters
    ----------
    data : str                ``"digits"``, ``"mnist"``, ``"cifar10"`` or a path to a ``.npy`` file
    test_fraction, split_seed : the train/test split (``digits`` / ``.npy``)
    schedule : {"rf", "vp-cosine"}   training noise levels :math:`t \sim U(t_\text{min}, 1)` and the default sampling grid
    steps : int               sampling steps ``N`` of the default grid
    prediction : {"x0", "eps"}
    hidden, depth, emb_dim : network width, hidden layers, embedding width (even)
    train_steps : int         Adam updates in total
    batch_size : int
    lr : float                Adam step size (betas (0.9, 0.999))
    lr_schedule : {"cosine", "constant"}   ``cosine``: :math:`\eta_k = \eta\,(0.1 + 0.9\cdot\tfrac12(1 + \cos(\pi k/K)))`
                              (down to a tenth at the last step ``K = train_steps``)
    grad_clip : float         global gradient-norm clip (0 disables)
    ema_decay : float         EMA rate, warmed up as :math:`\min(d, (1 + k)/(10 + k))`
    t_min : float             smallest training time
    seed : int                initial weights and every batch
    dtype : {"float32", "float64"}
    checkpoint_every : int    steps between checkpoints (not part of the identity of a run)
    """

    data: str = "digits"
    test_fraction: float = 0.2
    split_seed: int = 0
    schedule: str = "rf"
    steps: int = 16
    prediction: str = "x0"
    hidden: int = 384
    depth: int = 3
    emb_dim: int = 32
    train_steps: int = 20000
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_min: float = 1e-3
    seed: int = 0
    dtype: str = "float32"
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        check_continuous(self.schedule)
        if self.prediction not in PREDICTIONS:
            raise InputError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        dtype_of(self.dtype)
        if self.lr_schedule not in ("cosine", "constant"):
            raise InputError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        for label in ("steps", "hidden", "depth", "emb_dim", "train_steps", "batch_size", "checkpoint_every"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{label} must be an int >= 1, got {value!r}")
            object.__setattr__(self, label, int(value))
        if self.emb_dim % 2:
            raise InputError(f"emb_dim must be even, got {self.emb_dim}")
        for label, lo, hi in (("lr", 0.0, math.inf), ("ema_decay", 0.0, 1.0), ("t_min", 0.0, 1.0), ("test_fraction", 0.0, 1.0)):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo < float(value) < hi):
                raise InputError(f"{label} must be a number in ({lo}, {hi}), got {value!r}")
            object.__setattr__(self, label, float(value))
        if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) or not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            raise InputError(f"grad_clip must be a finite number >= 0, got {self.grad_clip!r}")
        object.__setattr__(self, "grad_clip", float(self.grad_clip))
        for label in ("seed", "split_seed"):
            if isinstance(getattr(self, label), bool) or not isinstance(getattr(self, label), (int, np.integer)):
                raise InputTypeError(f"{label} must be an int, got {getattr(self, label)!r}")
            object.__setattr__(self, label, int(getattr(self, label)))
        if not isinstance(self.data, str) or not self.data:
            raise InputError("data must be 'digits', 'mnist', 'cifar10' or a path to a .npy file")

    @classmethod
    def quick(cls, **overrides) -> "TeacherConfig":
        """The quick preset (CPU, a few seconds): width 128, 3 layers, 2,000 steps of batch 128, lr 2e-3."""
        base = dict(hidden=128, depth=3, train_steps=2000, batch_size=128, lr=2e-3, ema_decay=0.995, checkpoint_every=500)
        base.update(overrides)
        return cls(**base)

    #: fields that may differ between a checkpoint and a resumed run
    RESUMABLE = ("train_steps", "checkpoint_every", "steps")

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TeacherConfig":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        values : dict
            Field values; an unknown key is an :class:`~opmerge.errors.InputError`.
        """
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InputError(f"unknown teacher configuration keys: {', '.join(sorted(unknown))}")
        return cls(**values)

