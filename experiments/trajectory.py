r"""SCoT and TraFlow: continuous-time trajectory students on Gaussian data (docs/bridge.md §2).

Both learn a map :math:`G(x_t, t, s)` from time :math:`t` to any earlier :math:`s \le t`
(grid time :math:`t_n = n/N`; :math:`t = 1` noise, :math:`t = 0` data). With a network ``g`` in the
role of a denoiser,

.. math:: G(x_t, t, s) = \alpha_s g + \frac{\sigma_s}{\sigma_t}(x_t - \alpha_t g),
          \qquad \text{rf: } G = \frac{s}{t} x_t + \Big(1 - \frac{s}{t}\Big) g ,

so :math:`G(x, t, t) = x` by construction (exactly, for ``rf``). Continuous :math:`(\alpha, \sigma)`
are available for ``rf`` (:math:`1 - t, t`) and ``vp-cosine`` (:math:`\cos, \sin` of :math:`\pi t/2`).

The network (:class:`TrajectoryNet`): EDM preconditioning as CTM,
:math:`g = c_\text{skip} x + c_\text{out} F(c_\text{in} x, e(t), e(s))` with
:math:`c_\text{skip} = \sigma_d^2\alpha_t/(\sigma_t^2 + \alpha_t^2\sigma_d^2)`,
:math:`c_\text{out} = \sigma_t\sigma_d/\sqrt{\sigma_t^2 + \alpha_t^2\sigma_d^2}`,
:math:`c_\text{in} = 1/\sqrt{\sigma_t^2 + \alpha_t^2\sigma_d^2}` (:math:`\sigma_d^2` = mean data variance),
:math:`e(t) = (t, \sin(2^k \pi t), \cos(2^k \pi t))_{k < 4}` and ``F`` an MLP (SiLU) whose last layer starts at zero.

Teacher pairs :math:`(x_1, \hat x_0)`: :math:`x_1 = z_N` and :math:`\hat x_0` the teacher's ODE solve,
``pairs="ddim"`` (default: the DDIM sampler on the step grid, the teacher whose composite the
plan model predicts) or ``pairs="exact"`` (the exact flow, the true ODE solution for Gaussian data).

Losses (squared L2 summed over coordinates, averaged over the batch). Times (``TrajectoryConfig.times``):
``"grid"`` draws every time on the grid; ``"continuous"`` (TraFlow's default) draws the velocity pair
:math:`s < t`, the self-consistency triple :math:`s < u < t` as sorted uniforms on :math:`[0, 1]` and the
denoising time on :math:`(0, 1]`, and jitters the soft consistency's :math:`s` inside its grid cell
(the teacher's :math:`t_1 < t_2` stay on its grid):

* velocity: :math:`\| \partial_s G(x_t, t, s) - v \|^2` with :math:`x_t = \alpha_t \hat x_0 + \sigma_t \hat\varepsilon`
  on the pair's path (rf: the straight line :math:`t x_1 + (1-t)\hat x_0`) and
  :math:`v = \alpha'_s \hat x_0 + \sigma'_s \hat\varepsilon` (rf: :math:`x_1 - \hat x_0`),
  :math:`\hat\varepsilon = (x_1 - \alpha_1 \hat x_0)/\sigma_1`; :math:`\partial_s` by forward mode (:func:`torch.func.jvp`);
* soft consistency (CTM): :math:`s \le t_1 < t_2` (:math:`t_1, t_2` on the grid; :math:`t_1 = s` anchors the student to the teacher), :math:`x_{t_2}` from the forward process,
  :math:`x_{t_1}` the teacher solver from :math:`x_{t_2}`;
  :math:`\| G^-(G(x_{t_2}, t_2, s), s, 0) - G^-(G^-(x_{t_1}, t_1, s), s, 0) \|^2` (target without gradient);
* denoising (CTM): :math:`\| x_0 - g(x_t, t, t) \|^2` on forward samples at :math:`t > 0`, weight :math:`w(t) = 1`;
* TraFlow reconstruction :math:`\|G(x_1, 1, 0) - \hat x_0\|^2` and self-consistency
  :math:`\| G(x_t, t, s) - G^-(G(x_t, t, u), u, s) \|^2` for :math:`s < u < t` (target without gradient).

SCoT = :math:`w_v` velocity + consistency + :math:`w_d` denoising; :math:`w_v` fixed (default 0.03) or the gradient-norm ratio
:math:`\|\nabla_{W_L} L_\text{cons}\| / \|\nabla_{W_L} L_\text{vel}\|` clipped to [0.01, 10];
:math:`w_d = \|\nabla_{W_L} L_\text{cons}\| / (\|\nabla_{W_L} L_\text{den}\| + 10^{-8})` clipped to [0, 10^4]
(CTM's adaptive weight), :math:`W_L` the last layer. TraFlow = reconstruction + velocity + self-consistency
(fixed weights). :math:`G^-` is an EMA copy, rate :math:`\min(r, (1+k)/(10+k))` at update ``k``
(``r = 0.999``; the warm-up keeps short runs from chasing their random start).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.func import jvp

from opmerge.errors import InputError

from ._torch import check_compile_mode, compiled, make_generator
from .teacher import GaussianTeacher
from .training import EMA, GradientStepper

__all__ = ["TRAJECTORY_SCHEDULES", "METHODS", "TIME_SAMPLINGS", "TrajectoryConfig", "TrajectoryNet", "TrajectoryTrainer", "time_coefficients",
           "trajectory_map", "straightness", "teacher_straightness", "consistency_error"]

TRAJECTORY_SCHEDULES = ("rf", "vp-cosine")
METHODS = ("scot", "traflow")
TIME_SAMPLINGS = ("continuous", "grid")
DEFAULT_TIMES = {"traflow": "continuous", "scot": "grid"}
_FREQS = (1.0, 2.0, 4.0, 8.0)


def time_coefficients(schedule: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Continuous :math:`(\alpha(t), \sigma(t))`: ``rf`` :math:`(1 - t, t)`, ``vp-cosine`` :math:`(\cos\frac{\pi t}2, \sin\frac{\pi t}2)`."""
    if schedule == "rf":
        return 1.0 - t, t
    if schedule == "vp-cosine":
        return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)
    raise InputError(f"trajectory students need a continuous-time schedule: one of {', '.join(TRAJECTORY_SCHEDULES)}, got {schedule!r}")


def time_derivatives(schedule: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\alpha'(t), \sigma'(t))` of :func:`time_coefficients`."""
    if schedule == "rf":
        return -torch.ones_like(t), torch.ones_like(t)
    if schedule == "vp-cosine":
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t), 0.5 * math.pi * torch.cos(0.5 * math.pi * t)
    raise InputError(f"trajectory students need a continuous-time schedule: one of {', '.join(TRAJECTORY_SCHEDULES)}, got {schedule!r}")


def trajectory_map(x: torch.Tensor, g: torch.Tensor, t: torch.Tensor, s: torch.Tensor, schedule: str = "rf") -> torch.Tensor:
    r""":math:`G = \alpha_s g + \frac{\sigma_s}{\sigma_t}(x - \alpha_t g)` (rf: :math:`\frac st x + (1 - \frac st) g`); ``t = 0`` gives ``x``.

    ``t`` and ``s`` broadcast against ``x`` (shape ``(n, 1)``); the division is guarded so that
    gradients stay finite where :math:`t = 0` (then :math:`s = 0` and :math:`G = x`).
    """
    positive = t > 0
    t_safe = torch.where(positive, t, torch.ones_like(t))
    if schedule == "rf":
        ratio = torch.where(positive, s / t_safe, torch.ones_like(t))
        return ratio * x + (1.0 - ratio) * g
    a_t, s_t = time_coefficients(schedule, t_safe)
    a_s, s_s = time_coefficients(schedule, s)
    ratio = torch.where(positive, s_s / s_t, torch.ones_like(t))
    a_t = torch.where(positive, a_t, torch.ones_like(t))
    return a_s * g + ratio * (x - a_t * g)


def _embed(t: torch.Tensor) -> torch.Tensor:
    feats = [t]
    for f in _FREQS:
        feats.append(torch.sin(f * math.pi * t))
        feats.append(torch.cos(f * math.pi * t))
    return torch.cat(feats, dim=-1)


class TrajectoryNet(nn.Module):
    r"""The trajectory map :math:`G(x, t, s)` with its denoiser-like network :math:`g(x, t, s)` (see the module docstring).

    Parameters
    ----------
    dim : int
    hidden, depth : int
        MLP width and number of hidden layers.
    schedule : {"rf", "vp-cosine"}
    sigma_data : float
        :math:`\sigma_d` of the preconditioning (root mean data variance).
    generator : torch.Generator
        Draws the initial hidden-layer weights (uniform :math:`\pm 1/\sqrt{\mathrm{fan\_in}}`).
    """

    def __init__(self, dim: int, hidden: int, depth: int, schedule: str, sigma_data: float, generator: torch.Generator,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> None:
        super().__init__()
        time_coefficients(schedule, torch.zeros(1))  # validates the schedule name
        self.dim, self.schedule, self.sigma_data = int(dim), schedule, float(sigma_data)
        width = dim + 2 * (1 + 2 * len(_FREQS))
        sizes = [width] + [hidden] * depth
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            lin = nn.Linear(fan_in, fan_out, dtype=dtype, device=device)
            bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=generator, dtype=dtype, device=device) * 2 - 1) * bound)
                lin.bias.copy_((torch.rand(lin.bias.shape, generator=generator, dtype=dtype, device=device) * 2 - 1) * bound)
            layers += [lin, nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.last = nn.Linear(hidden, dim, dtype=dtype, device=device)
        with torch.no_grad():
            self.last.weight.zero_()
            self.last.bias.zero_()

    def g(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        r"""The network :math:`g(x, t, s) = c_\text{skip}(t) x + c_\text{out}(t) F(c_\text{in}(t) x, e(t), e(s))`."""
        a_t, s_t = time_coefficients(self.schedule, t)
        sd2 = self.sigma_data**2
        denom = s_t**2 + a_t**2 * sd2
        c_skip = sd2 * a_t / denom
        c_out = s_t * self.sigma_data / torch.sqrt(denom)
        c_in = 1.0 / torch.sqrt(denom)
        t_b, s_b = t.expand(x.shape[0], 1), s.expand(x.shape[0], 1)
        h = self.body(torch.cat([c_in * x, _embed(t_b), _embed(s_b)], dim=-1))
        return c_skip * x + c_out * self.last(h)

    def forward(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        r""":math:`G(x, t, s)` (:func:`trajectory_map` of :meth:`g`); ``t``, ``s`` of shape ``(n, 1)`` or ``(1, 1)``."""
        return trajectory_map(x, self.g(x, t, s), t, s, self.schedule)

    def sample(self, x1: torch.Tensor, steps: int = 1, grid: list[float] | None = None) -> torch.Tensor:
        r"""Few-step sampling :math:`\hat x_{t_{k-1}} = G(\hat x_{t_k}, t_k, t_{k-1})` on ``t_k = k/steps`` (or ``grid``, descending)."""
        times = grid if grid is not None else [k / steps for k in range(steps, -1, -1)]
        x = x1
        for t_hi, t_lo in zip(times[:-1], times[1:]):
            x = self(x, self._time(t_hi, x), self._time(t_lo, x))
        return x

    def _time(self, value: float, like: torch.Tensor) -> torch.Tensor:
        return torch.full((1, 1), float(value), dtype=like.dtype, device=like.device)


@dataclass(frozen=True)
class TrajectoryConfig:
    r"""Training configuration of a SCoT or TraFlow student.

    Parameters
    ----------
    method : {"scot", "traflow"}
    steps : int
        Adam updates.
    batch : int
    lr : float
    hidden, depth : int
    ema : float
        EMA rate of the target network :math:`G^-` (0.999).
    velocity_weight : float or "adaptive"
        SCoT's :math:`w_v`: fixed (default 0.03) or ``"adaptive"``, the clipped gradient-norm ratio. The
        straightness and the consistency with the teacher cannot both hold on Gaussian data (docs/bridge.md
        §7); at the adaptive weight (which settles near 1) the compromise holds the one-step gain at
        0.82–0.95 of the teacher's on 16 directions; at 0.03 (and 6000 updates) within 10 % for λ ≥ 0.3.
    denoising : bool
        Add CTM's denoising loss with its adaptive weight (SCoT only).
    pairs : {"ddim", "exact"}
        How the teacher makes :math:`\hat x_0` from :math:`x_1`.
    times : {"continuous", "grid"} or None
        Where the losses draw their times (docs/bridge.md §2): ``"continuous"`` draws the velocity,
        self-consistency and denoising times uniformly on :math:`[0, 1]` and the soft consistency's
        target time :math:`s` uniformly inside its grid cell (the teacher's :math:`t_1, t_2` stay on its
        grid); ``"grid"`` keeps every time on the grid :math:`t_n = n/N`. ``None`` (default): the
        method's default, ``"continuous"`` for TraFlow (as its paper; on the grid it does not converge
        on 16 directions) and ``"grid"`` for SCoT (continuous times made its one-step shrink worse).
    anchor : bool
        Draw the soft consistency's times as CTM, :math:`s \le t_1 < t_2`, so that :math:`t_1 = s` (the
        teacher all the way to :math:`s`) ties the student to the teacher (default). ``False`` keeps the
        strict :math:`s < t_1` of earlier versions, under which a student whose every jump to 0 is off
        by the same factor has zero consistency loss (docs/bridge.md §7); kept to reproduce old numbers.
    """

    method: str = "scot"
    steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    hidden: int = 128
    depth: int = 3
    ema: float = 0.999
    velocity_weight: float | str = 0.03
    denoising: bool = True
    pairs: str = "ddim"
    times: str | None = None
    anchor: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.pairs not in ("ddim", "exact"):
            raise InputError(f"pairs must be 'ddim' or 'exact', got {self.pairs!r}")
        if self.times is None:
            object.__setattr__(self, "times", DEFAULT_TIMES[self.method])
        if self.times not in TIME_SAMPLINGS:
            raise InputError(f"times must be one of {', '.join(TIME_SAMPLINGS)}, got {self.times!r}")
        if not (0.0 <= self.ema < 1.0):
            raise InputError(f"ema must be in [0, 1), got {self.ema!r}")
        if not (self.velocity_weight == "adaptive" or (isinstance(self.velocity_weight, (int, float)) and self.velocity_weight >= 0)):
            raise InputError(f"velocity_weight must be 'adaptive' or a number >= 0, got {self.velocity_weight!r}")
        for label, value in (("steps", self.steps), ("batch", self.batch), ("hidden", self.hidden), ("depth", self.depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{label} must be an int >= 1, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be finite and > 0, got {self.lr!r}")

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


class TrajectoryTrainer:
    """Train a :class:`TrajectoryNet` by SCoT or TraFlow against a :class:`~experiments.teacher.GaussianTeacher`.

    Parameters
    ----------
    teacher : GaussianTeacher
        Its schedule must be ``rf`` or ``vp-cosine`` (grid ``t_n = n/N``).
    config : TrajectoryConfig
    seed : int
    compile : {"off", "default", "reduce-overhead", "max-autotune"}
        Run the network part of the losses eagerly (default) or through :func:`torch.compile` in
        that mode (:func:`experiments._torch.compiled`): the consistency, denoising,
        reconstruction and self-consistency losses and the gradient-norm weights go through the
        compiled code; the draws, the forward-mode velocity loss, Adam and the EMA update stay
        eager. ``"reduce-overhead"`` adds CUDA graphs on a GPU.
    """

    def __init__(self, teacher: GaussianTeacher, config: TrajectoryConfig, seed: int = 0, compile: str = "off") -> None:
        if teacher.schedule.name not in TRAJECTORY_SCHEDULES:
            raise InputError(f"trajectory students need an rf or vp-cosine teacher (continuous time), got {teacher.schedule.name!r}")
        if teacher.steps < 2:
            raise InputError("trajectory students need a teacher with N >= 2 steps (s < t1 < t2 on the grid)")
        self.teacher, self.config = teacher, config
        self.compile = check_compile_mode(compile)
        self.generator = make_generator(seed, teacher.device)
        dtype, device = teacher.dtype, teacher.device
        sigma_data = float(np.sqrt(np.mean(teacher.data.lam)))
        self.net = TrajectoryNet(teacher.dim, config.hidden, config.depth, teacher.schedule.name, sigma_data, self.generator, dtype, device)
        self.average = EMA(self.net, config.ema, warmup=True)
        # the network part of each loss (forward passes, squared error) on inputs drawn eagerly, so
        # the draws are the same with and without compilation. The velocity loss stays eager: a
        # backward pass through torch.func.jvp inside torch.compile fails for this network at most
        # sizes (torch 2.13, "ZeroTensors are immutable", PyTorch issue 177261: every size tried
        # with two hidden layers, and one hidden layer at batch 256), and a compiled network called
        # from an eager jvp falls back to eager anyway
        self._consistency_term = compiled(self._consistency_of, self.compile)
        self._denoising_term = compiled(self._denoising_of, self.compile)
        self._reconstruction_term = compiled(self._reconstruction_of, self.compile)
        self._self_consistency_term = compiled(self._self_consistency_of, self.compile)
        self.stepper = GradientStepper("adam", self.net.parameters(), config.lr)
        self.history: list[dict] = []
        n = teacher.steps
        self.grid = torch.arange(n + 1, dtype=dtype, device=device) / n
        a1, s1 = time_coefficients(teacher.schedule.name, torch.ones(1, dtype=dtype))
        self._a1, self._s1 = float(a1), float(s1)
        self._alpha = torch.tensor(np.array(teacher.schedule.alpha), dtype=dtype, device=device)
        self._sigma = torch.tensor(np.array(teacher.schedule.sigma), dtype=dtype, device=device)

    @property
    def ema(self) -> TrajectoryNet:
        r"""The EMA network :math:`G^-` (:class:`~experiments.training.EMA`)."""
        return self.average.module

    @ema.setter
    def ema(self, module: nn.Module) -> None:
        self.average.module = module

    @property
    def updates(self) -> int:
        """Number of updates so far."""
        return self.average.updates

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The Adam optimiser."""
        return self.stepper.adam

    # ---- data -------------------------------------------------------------------------------
    def pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Teacher pairs :math:`(x_1, \hat x_0)`: :math:`x_1 = z_N`, :math:`\hat x_0` by the DDIM sampler or the exact flow."""
        t = self.teacher
        x1 = t.noise_sample(n, self.generator)
        with torch.no_grad():
            x0 = t.sample(x1) if self.config.pairs == "ddim" else t.exact_flow(x1)
        return x1, x0

    def _grid_times(self, n: int, count: int) -> torch.Tensor:
        """``count`` strictly increasing grid indices per sample, uniformly among the increasing tuples (shape (n, count))."""
        big = self.teacher.steps + 1
        keys = torch.rand(n, big, generator=self.generator, dtype=self.teacher.dtype, device=self.teacher.device)
        idx = keys.argsort(dim=1)[:, :count]
        return idx.sort(dim=1).values

    def _times(self, n: int, count: int) -> torch.Tensor:
        """``count`` increasing times per sample (shape (n, count)): sorted uniforms on [0, 1] (``times="continuous"``) or grid times."""
        if self.config.times == "continuous":
            draws = torch.rand(n, count, generator=self.generator, dtype=self.teacher.dtype, device=self.teacher.device)
            return draws.sort(dim=1).values
        return self.grid[self._grid_times(n, count)]

    def _consistency_indices(self, n: int) -> torch.Tensor:
        r"""Grid indices ``(m, n_1, n_2)`` of :math:`s \le t_1 < t_2` per sample (shape (n, 3)).

        ``anchor=True`` (CTM's draw on the grid): :math:`n_2` uniform on :math:`1..N`, :math:`m` uniform on
        :math:`0..n_2-1`, :math:`n_1` uniform on :math:`m..n_2-1`. ``anchor=False``: strictly increasing
        triples, uniform among them.
        """
        if not self.config.anchor:
            return self._grid_times(n, 3)
        t, g = self.teacher, self.generator
        dtype, device = t.dtype, t.device
        n2 = 1 + (torch.rand(n, generator=g, dtype=dtype, device=device) * t.steps).floor().long()
        m = (torch.rand(n, generator=g, dtype=dtype, device=device) * n2).floor().long()
        n1 = m + (torch.rand(n, generator=g, dtype=dtype, device=device) * (n2 - m)).floor().long()
        return torch.stack([m, n1, n2], dim=1)

    def _teacher_between(self, x: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """Run the teacher per sample from grid index ``top`` down to ``bottom`` (masked steps)."""
        t = self.teacher
        with torch.no_grad():
            for n in range(t.steps, 0, -1):
                active = ((top >= n) & (bottom < n)).unsqueeze(-1)
                if bool(active.any()):
                    x = torch.where(active, t.step(x, n), x)
        return x

    # ---- losses -----------------------------------------------------------------------------
    def velocity_loss(self, x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E\|\partial_s G(x_t, t, s) - v\|^2` with the derivative by :func:`torch.func.jvp`."""
        name = self.teacher.schedule.name
        times = self._times(x1.shape[0], 2)
        s, t = times[:, :1], times[:, 1:]
        eps = (x1 - self._a1 * x0) / self._s1
        a_t, s_t = time_coefficients(name, t)
        x_t = a_t * x0 + s_t * eps
        da, ds = time_derivatives(name, s)
        target = da * x0 + ds * eps
        with warnings.catch_warnings():
            # torch.func.jvp loads torch's own jvp decompositions, which call the deprecated torch.jit.script
            # internally (torch 2.13); the bridge itself scripts nothing
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
            _, d_s = jvp(lambda s_: self.net(x_t, t, s_), (s,), (torch.ones_like(s),))
        return (d_s - target).pow(2).sum(-1).mean()

    def consistency_loss(self, n: int) -> torch.Tensor:
        r"""CTM soft consistency: :math:`\|G^-(G(x_{t_2}, t_2, s), s, 0) - G^-(G^-(x_{t_1}, t_1, s), s, 0)\|^2`."""
        t = self.teacher
        idx = self._consistency_indices(n)
        m, n1, n2 = idx[:, 0], idx[:, 1], idx[:, 2]
        x0 = t.data.sample(n, self.generator, t.dtype, t.device)
        eps = t.data.noise(n, self.generator, t.dtype, t.device)
        alpha, sigma = self._alpha, self._sigma
        x_t2 = alpha[n2].unsqueeze(-1) * x0 + sigma[n2].unsqueeze(-1) * eps
        x_t1 = self._teacher_between(x_t2, n2, n1)
        s, t1, t2 = self.grid[m].unsqueeze(-1), self.grid[n1].unsqueeze(-1), self.grid[n2].unsqueeze(-1)
        if self.config.times == "continuous":  # s uniform in its cell [t_m, t_{m+1}) where that stays below t_1; s = t_1 stays
            jitter = torch.rand(s.shape, generator=self.generator, dtype=s.dtype, device=s.device) / t.steps
            s = s + torch.where((m < n1).unsqueeze(-1), jitter, torch.zeros_like(jitter))
        return self._consistency_term(x_t2, t2, x_t1, t1, s)

    def _consistency_of(self, x_t2: torch.Tensor, t2: torch.Tensor, x_t1: torch.Tensor, t1: torch.Tensor,
                        s: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(s)
        estimate = self.ema(self.net(x_t2, t2, s), s, zero)
        with torch.no_grad():
            target = self.ema(self.ema(x_t1, t1, s), s, zero)
        return (estimate - target).pow(2).sum(-1).mean()

    def denoising_loss(self, n: int) -> torch.Tensor:
        r"""CTM denoising: :math:`\mathbb E\|x_0 - g(x_t, t, t)\|^2` on forward samples at times :math:`t > 0` (grid or continuous)."""
        t = self.teacher
        if self.config.times == "continuous":  # t uniform on (0, 1]
            tt = 1.0 - torch.rand(n, 1, generator=self.generator, dtype=t.dtype, device=t.device)
            a_t, s_t = time_coefficients(t.schedule.name, tt)
        else:
            idx = torch.randint(1, t.steps + 1, (n,), generator=self.generator, device=t.device)
            tt = self.grid[idx].unsqueeze(-1)
            a_t, s_t = self._alpha[idx].unsqueeze(-1), self._sigma[idx].unsqueeze(-1)
        x0 = t.data.sample(n, self.generator, t.dtype, t.device)
        eps = t.data.noise(n, self.generator, t.dtype, t.device)
        x_t = a_t * x0 + s_t * eps
        return self._denoising_term(x0, x_t, tt)

    def _denoising_of(self, x0: torch.Tensor, x_t: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return (x0 - self.net.g(x_t, tt, tt)).pow(2).sum(-1).mean()

    def reconstruction_loss(self, x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        r"""TraFlow output reconstruction :math:`\|G(x_1, 1, 0) - \hat x_0\|^2`."""
        return self._reconstruction_term(x1, x0)

    def _reconstruction_of(self, x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        one = torch.ones(1, 1, dtype=x1.dtype, device=x1.device)
        return (self.net(x1, one, torch.zeros_like(one)) - x0).pow(2).sum(-1).mean()

    def self_consistency_loss(self, x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        r"""TraFlow self-consistency :math:`\|G(x_t, t, s) - G^-(G(x_t, t, u), u, s)\|^2`, :math:`s < u < t`, target without gradient."""
        name = self.teacher.schedule.name
        times = self._times(x1.shape[0], 3)
        s, u, t = (times[:, k : k + 1] for k in range(3))
        eps = (x1 - self._a1 * x0) / self._s1
        a_t, s_t = time_coefficients(name, t)
        x_t = a_t * x0 + s_t * eps
        return self._self_consistency_term(x_t, t, u, s)

    def _self_consistency_of(self, x_t: torch.Tensor, t: torch.Tensor, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.ema(self.net(x_t, t, u), u, s)
        return (self.net(x_t, t, s) - target).pow(2).sum(-1).mean()

    def _last_grad_norm(self, loss: torch.Tensor) -> float:
        (grad,) = torch.autograd.grad(loss, self.net.last.weight, retain_graph=True, allow_unused=True)
        return 0.0 if grad is None else float(grad.norm())

    # ---- training ---------------------------------------------------------------------------
    def step(self) -> dict:
        """One Adam update; returns the losses and weights of this update."""
        cfg, n = self.config, self.config.batch
        x1, x0 = self.pairs(n)
        record: dict = {}
        if cfg.method == "scot":
            l_vel = self.velocity_loss(x1, x0)
            l_cons = self.consistency_loss(n)
            total = l_cons
            g_cons = None
            if cfg.velocity_weight == "adaptive":
                g_cons = self._last_grad_norm(l_cons)
                w_vel = min(max(g_cons / max(self._last_grad_norm(l_vel), 1e-12), 0.01), 10.0)
            else:
                w_vel = float(cfg.velocity_weight)
            total = total + w_vel * l_vel
            record.update(velocity=float(l_vel.detach()), consistency=float(l_cons.detach()), w_velocity=w_vel)
            if cfg.denoising:
                l_den = self.denoising_loss(n)
                g_cons = self._last_grad_norm(l_cons) if g_cons is None else g_cons
                w_den = min(max(g_cons / (self._last_grad_norm(l_den) + 1e-8), 0.0), 1e4)
                total = total + w_den * l_den
                record.update(denoising=float(l_den.detach()), w_denoising=w_den)
        else:
            l_rec = self.reconstruction_loss(x1, x0)
            l_vel = self.velocity_loss(x1, x0)
            l_self = self.self_consistency_loss(x1, x0)
            total = l_rec + l_vel + l_self
            record.update(reconstruction=float(l_rec.detach()), velocity=float(l_vel.detach()), self_consistency=float(l_self.detach()))
        record["total"] = self.stepper.step(total)
        self.average.update(self.net)
        return record

    def train(self, steps: int | None = None, progress: bool = False, log_every: int = 50) -> TrajectoryNet:
        """Run ``steps`` updates (default ``config.steps``); keeps every ``log_every``-th record in ``history``. Returns the EMA network."""
        steps = self.config.steps if steps is None else int(steps)
        iterator = range(steps)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc=self.config.method, leave=False)
        for k in iterator:
            record = self.step()
            if k % log_every == 0 or k == steps - 1:
                record["update"] = self.updates
                self.history.append(record)
        return self.ema

    def sampler(self, steps: int, use_ema: bool = True):
        """A function :math:`z_N \\mapsto` ``steps``-step sample of the (EMA) student, for :func:`~experiments.readout.read_out`."""
        net = self.ema if use_ema else self.net

        def run(z: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net.sample(z, steps)

        return run


def straightness(net: TrajectoryNet, x1: torch.Tensor, steps: int, points_per_step: int = 8) -> float:
    r"""Mean squared deviation (per coordinate) of the ``steps``-step trajectory from its chord.

    The trajectory is :math:`G(\hat x_{t_k}, t_k, s)` for ``points_per_step`` times :math:`s` inside each
    step :math:`t_k \to t_{k-1}`, with :math:`\hat x_{t_k}` the sampler's states; the chord is the
    rf-time straight line :math:`s\,x_1 + (1 - s)\,\hat x_0` to the final sample.
    """
    with torch.no_grad():
        final = net.sample(x1, steps)
        times = [k / steps for k in range(steps, -1, -1)]
        x, total, count = x1, 0.0, 0
        for t_hi, t_lo in zip(times[:-1], times[1:]):
            t = net._time(t_hi, x)
            for j in range(1, points_per_step):
                s_val = t_hi + (t_lo - t_hi) * j / points_per_step
                point = net(x, t, net._time(s_val, x))
                chord = s_val * x1 + (1.0 - s_val) * final
                total += float((point - chord).pow(2).mean())
                count += 1
            x = net(x, t, net._time(t_lo, x))
    return total / max(count, 1)


def teacher_straightness(teacher: GaussianTeacher, x1: torch.Tensor) -> float:
    r"""The same measure for the teacher's grid trajectory (states :math:`z_n` against the chord at :math:`t_n = n/N`)."""
    with torch.no_grad():
        states = teacher.trajectory(x1)
        final = states[-1]
        n = teacher.steps
        values = [float((states[n - k] - (k / n * x1 + (1 - k / n) * final)).pow(2).mean()) for k in range(1, n)]
    return float(np.mean(values)) if values else 0.0


def consistency_error(net: TrajectoryNet, x1: torch.Tensor) -> float:
    r"""One step against two: :math:`\mathbb E\|G(x_1, 1, 0) - G(G(x_1, 1, \tfrac12), \tfrac12, 0)\|^2` per coordinate."""
    with torch.no_grad():
        return float((net.sample(x1, 1) - net.sample(x1, 2)).pow(2).mean())
