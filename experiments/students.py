r"""Student families for plan execution: diagonal linear, full linear and residual MLPs.

Every student maps a batch of row vectors ``z`` of shape ``(n, d)`` (grid time ``j``) to ``(n, d)``
(grid time ``i``).

* ``diagonal`` — one gain per eigen-direction: :math:`f(z) = U \operatorname{diag}(a) U^\top z`
  (:class:`DiagonalLinear`; the eigenbasis ``U`` of the data is given to it).
* ``full`` — a matrix: :math:`f(z) = A z` (:class:`FullLinear`; on rotated data it must find the
  eigenbasis itself).
* ``mlp`` — residual MLP on all coordinates: :math:`f(z) = B z + h(z)` with a learnable matrix ``B``
  and an MLP ``h`` whose last layer starts at zero (:class:`ResidualMLP`), so a student can start as
  an exact copy of a linear operator (warm start from a teacher step).
* ``mlp-separable`` — the same, one small MLP per eigen-direction acting on that eigen-coordinate
  only: :math:`f(z) = U(b \odot c + h(c))`, :math:`c = U^\top z`, :math:`h_i` a function of :math:`c_i`.
  It is ``d`` independent one-dimensional nonlinear students trained in one batch; the ranking
  study uses it to run every :math:`\lambda` of a grid at once.

:func:`build_student` starts a student from an operator: a student of the same family is copied
(warm start from a trained student keeps its nonlinearity), any other operator must be linear and
is read back as a matrix (:func:`~experiments.teacher.operator_matrix`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from opmerge.errors import InputError

from .gaussian import GaussianData
from .teacher import operator_matrix

__all__ = ["FAMILIES", "LINEAR_FAMILIES", "DiagonalLinear", "FullLinear", "GroupedMLP", "ResidualMLP", "build_student", "student_matrix"]

FAMILIES = ("diagonal", "full", "mlp", "mlp-separable")
LINEAR_FAMILIES = ("diagonal", "full")


class DiagonalLinear(nn.Module):
    r"""Diagonal linear student in the eigenbasis: :math:`f(z) = ((z U) \odot a) U^\top`.

    Parameters
    ----------
    gains : tensor of shape (d,)
        Initial gains :math:`a_i` (copied into a parameter).
    data : GaussianData
        Supplies the eigenbasis ``U``.
    """

    def __init__(self, gains: torch.Tensor, data: GaussianData) -> None:
        super().__init__()
        self.data = data
        self.gain = nn.Parameter(gains.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.data.from_eigen(self.data.to_eigen(z) * self.gain)


class FullLinear(nn.Module):
    r"""Full linear student :math:`f(z) = z A^\top` (``A`` of shape ``(d, d)``, copied into a parameter)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(matrix.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return z @ self.weight.T


class GroupedMLP(nn.Module):
    r"""``G`` independent MLPs evaluated in one batch: input ``(n, G, p)`` -> output ``(n, G, p)``.

    Layers :math:`h \mapsto \mathrm{SiLU}(h W_l + b_l)` with per-group weights ``(G, in, out)``;
    ``depth`` hidden layers of width ``hidden``; the output layer starts at exactly zero, the
    hidden layers uniform in :math:`\pm 1/\sqrt{\mathrm{fan\_in}}` (PyTorch's default bound), drawn
    from ``generator``.
    """

    def __init__(self, groups: int, width: int, hidden: int, depth: int, generator: torch.Generator,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise InputError(f"hidden and depth must be >= 1, got hidden = {hidden}, depth = {depth}")
        sizes = [width] + [hidden] * depth
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(groups, fan_in, fan_out, generator=generator, dtype=dtype, device=device) * 2 - 1) * bound
            b = (torch.rand(groups, fan_out, generator=generator, dtype=dtype, device=device) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.out_weight = nn.Parameter(torch.zeros(groups, hidden, width, dtype=dtype, device=device))
        self.out_bias = nn.Parameter(torch.zeros(groups, width, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x
        for w, b in zip(self.weights, self.biases):
            h = torch.nn.functional.silu(torch.einsum("ngi,gio->ngo", h, w) + b)
        return torch.einsum("ngi,gio->ngo", h, self.out_weight) + self.out_bias


class ResidualMLP(nn.Module):
    r"""Residual MLP student: linear part plus an MLP correction that starts at zero.

    ``separable=False``: :math:`f(z) = z B^\top + h(z)` (``B`` a full matrix, ``h`` one MLP on all
    ``d`` coordinates). ``separable=True``: in eigen-coordinates :math:`c = zU`,
    :math:`f(z) = (b \odot c + h(c)) U^\top` with ``d`` one-input MLPs :math:`h_i(c_i)`.

    Parameters
    ----------
    matrix : tensor (d, d)
        Initial linear part (for ``separable`` only its eigen-diagonal :math:`u_i^\top B u_i` is used).
    data : GaussianData
    hidden, depth : int
        Width and number of hidden layers of the MLP.
    separable : bool
    generator : torch.Generator
        Draws the hidden-layer weights.
    """

    def __init__(self, matrix: torch.Tensor, data: GaussianData, hidden: int, depth: int, separable: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.data, self.separable = data, bool(separable)
        d = data.dim
        dtype, device = matrix.dtype, matrix.device
        if self.separable:
            u = data.basis_tensor(dtype, device)
            diag = torch.diagonal(matrix) if u is None else torch.einsum("ki,kl,li->i", u, matrix, u)
            self.base = nn.Parameter(diag.detach().clone())
            self.mlp = GroupedMLP(d, 1, hidden, depth, generator, dtype, device)
        else:
            self.base = nn.Parameter(matrix.detach().clone())
            self.mlp = GroupedMLP(1, d, hidden, depth, generator, dtype, device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.separable:
            c = self.data.to_eigen(z)
            out = c * self.base + self.mlp(c.unsqueeze(-1)).squeeze(-1)
            return self.data.from_eigen(out)
        return z @ self.base.T + self.mlp(z.unsqueeze(1)).squeeze(1)


def _same_family(module: nn.Module, family: str) -> bool:
    if family == "diagonal":
        return isinstance(module, DiagonalLinear)
    if family == "full":
        return isinstance(module, FullLinear)
    if family == "mlp":
        return isinstance(module, ResidualMLP) and not module.separable
    return isinstance(module, ResidualMLP) and module.separable


def build_student(family: str, start, data: GaussianData, *, dtype: torch.dtype, device: torch.device | str,
                  generator: torch.Generator | None = None, hidden: int = 32, depth: int = 2) -> nn.Module:
    r"""A trainable student of ``family`` that starts as the operator ``start``.

    Parameters
    ----------
    family : {"diagonal", "full", "mlp", "mlp-separable"}
    start : nn.Module, callable or tensor (d, d)
        The initial operator. A module of the same family is deep-copied (all parameters trainable);
        anything else must be linear and is read back as its matrix :math:`A = f(I)^\top`.
        For ``diagonal`` the eigen-diagonal :math:`a_i = u_i^\top A u_i` is kept.
    generator : torch.Generator
        Needed by the MLP families (hidden-layer init).
    """
    if family not in FAMILIES:
        raise InputError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if isinstance(start, nn.Module) and _same_family(start, family):
        student = copy.deepcopy(start)
        for p in student.parameters():
            p.requires_grad_(True)
        return student
    if isinstance(start, torch.Tensor):
        matrix = start.to(dtype=dtype, device=device)
    else:
        matrix = operator_matrix(start, data.dim, dtype, device)
    if family == "diagonal":
        u = data.basis_tensor(dtype, device)
        gains = torch.diagonal(matrix) if u is None else torch.einsum("ki,kl,li->i", u, matrix, u)
        return DiagonalLinear(gains, data)
    if family == "full":
        return FullLinear(matrix)
    if generator is None:
        raise InputError("the MLP families need a torch.Generator for their initial weights")
    return ResidualMLP(matrix, data, hidden, depth, family == "mlp-separable", generator)


def student_matrix(module: nn.Module, dim: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Matrix of a linear student (or any linear operator): ``operator_matrix`` without gradients."""
    return operator_matrix(module, dim, dtype, device)
