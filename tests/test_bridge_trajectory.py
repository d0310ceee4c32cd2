"""SCoT / TraFlow trajectory maps: G(x, t, t) = x, forward-mode derivative in s, losses, training runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.func import jvp  # noqa: E402

from opmerge.schedules import make_schedule  # noqa: E402

from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher  # noqa: E402
from opmerge.experiments.trajectory import (  # noqa: E402
    TrajectoryConfig,
    TrajectoryNet,
    TrajectoryTrainer,
    consistency_error,
    straightness,
    time_coefficients,
    trajectory_map,
)

pytestmark = pytest.mark.bridge



@pytest.mark.parametrize("schedule", ["rf", "vp-cosine"])
def test_G_is_identity_at_s_equal_t(schedule):
    net = TrajectoryNet(3, 16, 2, schedule, 1.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.last.parameters():
            p.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t in (1.0, 0.6, 0.125, 0.0):
        tt = torch.full((1, 1), t, dtype=torch.float64)
        out = net(x, tt, tt)
        if schedule == "rf" or t == 0.0:
            torch.testing.assert_close(out, x, rtol=0, atol=0)
        else:
            torch.testing.assert_close(out, x, rtol=0, atol=1e-14)


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")  # torch's own jvp decompositions (torch 2.13)
@pytest.mark.parametrize("schedule", ["rf", "vp-cosine"])
def test_jvp_derivative_equals_analytic_for_linear_g(schedule):
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(4, 4, dtype=torch.float64, generator=gen)
    x = torch.randn(30, 4, dtype=torch.float64, generator=gen)
    t = torch.rand(30, 1, dtype=torch.float64, generator=gen) * 0.9 + 0.1
    s = t * torch.rand(30, 1, dtype=torch.float64, generator=gen)

    def g_of(s_):  # linear in x, depends on s
        return (1.0 + s_) * (x @ m.T)

    _, derivative = jvp(lambda s_: trajectory_map(x, g_of(s_), t, s_, schedule), (s,), (torch.ones_like(s),))
    g, dg = g_of(s), x @ m.T
    if schedule == "rf":
        analytic = x / t - g / t + (1.0 - s / t) * dg
    else:
        a_t, sig_t = time_coefficients(schedule, t)
        a_s, sig_s = time_coefficients(schedule, s)
        da, dsig = -0.5 * math.pi * torch.sin(0.5 * math.pi * s), 0.5 * math.pi * torch.cos(0.5 * math.pi * s)
        analytic = da * g + a_s * dg + dsig / sig_t * (x - a_t * g) - sig_s / sig_t * a_t * dg
    torch.testing.assert_close(derivative, analytic, rtol=1e-12, atol=1e-12)


class _StraightMap(torch.nn.Module):
    """The exact straight-line map of a linear teacher pair x0 = T x1 (per direction, rf time)."""

    def __init__(self, gains):
        super().__init__()
        self.gains = gains

    def forward(self, x, t, s):
        return x * (s + (1 - s) * self.gains) / (t + (1 - t) * self.gains)


def test_losses_vanish_for_the_exact_straight_map():
    teacher = GaussianTeacher(make_schedule("rf", 6), make_gaussian([0.3, 2.0]))
    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="traflow", steps=1, hidden=8, depth=1), seed=0)
    gains = torch.as_tensor(teacher.composite_gains())
    straight = _StraightMap(gains)
    trainer.net, trainer.ema = straight, straight
    x1, x0 = trainer.pairs(256)
    assert float(trainer.velocity_loss(x1, x0)) < 1e-24
    assert float(trainer.reconstruction_loss(x1, x0)) < 1e-24
    assert float(trainer.self_consistency_loss(x1, x0)) < 1e-24
    # and a wrong map does not
    wrong = _StraightMap(gains * 1.1)
    trainer.net, trainer.ema = wrong, wrong
    assert float(trainer.velocity_loss(x1, x0)) > 1e-3


@pytest.mark.parametrize("method, velocity_weight", [("scot", "adaptive"), ("scot", 0.03), ("traflow", 0.03)])
def test_short_training_runs_and_reproduces(method, velocity_weight):
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))
    cfg = TrajectoryConfig(method=method, steps=15, batch=32, hidden=16, depth=1, velocity_weight=velocity_weight)
    trainer = TrajectoryTrainer(teacher, cfg, seed=3)
    net = trainer.train(log_every=5)
    assert len(trainer.history) >= 3 and all(math.isfinite(v) for v in trainer.history[-1].values())
    if method == "scot" and velocity_weight == "adaptive":
        assert 0.01 <= trainer.history[-1]["w_velocity"] <= 10.0
    elif method == "scot":
        assert trainer.history[-1]["w_velocity"] == velocity_weight
    x1 = teacher.noise_sample(128, torch.Generator().manual_seed(0))
    again = TrajectoryTrainer(teacher, cfg, seed=3).train()
    with torch.no_grad():
        torch.testing.assert_close(net.sample(x1, 2), again.sample(x1, 2), rtol=0, atol=0)
    # the consistency error is the mean squared one-step vs two-step gap, computed here independently
    with torch.no_grad():
        gap = float((net(x1, net._time(1.0, x1), net._time(0.0, x1))
                     - net(net(x1, net._time(1.0, x1), net._time(0.5, x1)), net._time(0.5, x1), net._time(0.0, x1))).pow(2).mean())
    assert consistency_error(net, x1) == pytest.approx(gap, rel=1e-12)
    assert gap > 0.0  # a 15-update student is not yet consistent


def test_bad_trajectory_configurations():
    with pytest.raises(ValueError, match="method"):
        TrajectoryConfig(method="ctm")
    with pytest.raises(ValueError, match="velocity_weight"):
        TrajectoryConfig(velocity_weight="auto")
    with pytest.raises(ValueError, match="continuous time"):
        TrajectoryTrainer(GaussianTeacher(make_schedule("edm", 4), make_gaussian([1.0])), TrajectoryConfig(steps=1))


class _PathMap(torch.nn.Module):
    """The exact map along the teacher pair's path for any (alpha, sigma): x_t = c(t) x1 per direction with
    c(t) = alpha_t T + sigma_t (1 - alpha_1 T) / sigma_1, so G(x, t, s) = x c(s) / c(t). Its s-derivative
    (by autograd through cos/sin, not through the trainer's time_derivatives) is the path velocity."""

    def __init__(self, gains, schedule):
        super().__init__()
        self.gains, self.schedule = gains, schedule

    def _c(self, t):
        a_t, s_t = time_coefficients(self.schedule, t)
        a_1, s_1 = time_coefficients(self.schedule, torch.ones_like(t))
        return a_t * self.gains + s_t * (1 - a_1 * self.gains) / s_1

    def forward(self, x, t, s):
        return x * self._c(s) / self._c(t)


def test_velocity_loss_vanishes_on_the_exact_path_for_vp_cosine():
    """The velocity target on a non-rf schedule is alpha'_s x0 + sigma'_s eps (not the rf x1 - x0)."""
    teacher = GaussianTeacher(make_schedule("vp-cosine", 6), make_gaussian([0.3, 2.0, 5.0]))
    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="scot", steps=1, hidden=8, depth=1), seed=0)
    gains = torch.as_tensor(teacher.composite_gains())
    exact = _PathMap(gains, "vp-cosine")
    trainer.net = exact
    x1, x0 = trainer.pairs(256)
    assert float(trainer.velocity_loss(x1, x0)) < 1e-20
    trainer.net = _PathMap(gains * 1.1, "vp-cosine")
    assert float(trainer.velocity_loss(x1, x0)) > 1e-3


def test_ema_update_weights_the_old_average_by_the_rate():
    """After update k: theta^- = r_k theta^-_old + (1 - r_k) theta_new with r_k = min(0.999, (1 + k)/(10 + k))."""
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))
    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="traflow", steps=3, batch=16, hidden=8, depth=1, lr=0.05), seed=1)
    for k in (1, 2, 3):
        old = [p.detach().clone() for p in trainer.ema.parameters()]
        trainer.step()
        rate = min(0.999, (1.0 + k) / (10.0 + k))
        assert trainer.updates == k
        moved = 0.0
        for p_old, p_ema, p_net in zip(old, trainer.ema.parameters(), trainer.net.parameters()):
            torch.testing.assert_close(p_ema, rate * p_old + (1 - rate) * p_net, rtol=1e-12, atol=1e-15)
            moved = max(moved, float((p_ema - p_old).abs().max()))
        assert moved > 1e-6  # the step changed the network, so the weights matter


def test_ema_rate_schedule_and_explicit_update_number():
    """r_k = min(r, (1 + k)/(10 + k)): 2/11 at k = 1, 0.1 at k = 0 (a loop counting from 0), r itself late; no warm-up: r."""
    from opmerge.experiments.training import EMA

    net = torch.nn.Linear(2, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, 0.9)
    assert ema.rate_at(1) == pytest.approx(2 / 11) and ema.rate_at(1000) == 0.9 and EMA(net, 0.9, warmup=False).rate_at(1) == 0.9
    with torch.no_grad():
        net.weight.fill_(3.0)
    assert ema.update(net, k=0) == pytest.approx(0.1)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.1 * 1.0 + 0.9 * 3.0, dtype=torch.float64))
    assert ema.updates == 1 and not ema.module.weight.requires_grad


class _CurvedNet(torch.nn.Module):
    """G(x, t, s) = x c(s)/c(t), c(s) = s^p + (1 - s^p) T: from x_1 the trajectory is x_1 c(s) and ends at T x_1.
    p = 1 is the straight line (rf chord); p = 2 bends it by (s^2 - s)(1 - T) x_1. Borrows TrajectoryNet's sampler."""

    sample = TrajectoryNet.sample
    _time = TrajectoryNet._time

    def __init__(self, gains, power):
        super().__init__()
        self.gains, self.power = gains, power

    def _c(self, s):
        return s**self.power + (1 - s**self.power) * self.gains

    def forward(self, x, t, s):
        return x * self._c(s) / self._c(t)


def test_straightness_is_the_mean_squared_distance_to_the_chord():
    gains = torch.tensor([0.3, 0.8], dtype=torch.float64)
    x1 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert straightness(_CurvedNet(gains, 1), x1, 1) < 1e-28
    # one step, 8 points per step: s_j = 1 - j/8, j = 1..7; deviation (s^2 - s)(1 - T_i) x_1i
    s_values = np.array([1 - j / 8 for j in range(1, 8)])
    expected = np.mean((s_values**2 - s_values) ** 2) * float(((1 - gains) ** 2 * x1**2).mean())
    assert straightness(_CurvedNet(gains, 2), x1, 1) == pytest.approx(expected, rel=1e-12)


def test_time_sampling_defaults_and_draws():
    """TraFlow draws continuous times by default (off the grid), SCoT grid times; 'grid' keeps every time on t_n = n/N."""
    assert TrajectoryConfig(method="traflow").times == "continuous"
    assert TrajectoryConfig(method="scot").times == "grid"
    with pytest.raises(ValueError, match="times"):
        TrajectoryConfig(times="uniform")
    teacher = GaussianTeacher(make_schedule("rf", 8), make_gaussian([0.25, 4.0]))
    for times in ("continuous", "grid"):
        trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="traflow", steps=1, hidden=8, depth=1, times=times), seed=0)
        draws = trainer._times(2000, 3)
        assert draws.shape == (2000, 3) and bool((draws[:, 1:] >= draws[:, :-1]).all())
        assert float(draws.min()) >= 0.0 and float(draws.max()) <= 1.0
        on_grid = ((draws * 8 - (draws * 8).round()).abs() < 1e-12).double().mean()
        if times == "continuous":
            assert float(on_grid) == 0.0 and float((draws[:, 1:] > draws[:, :-1]).double().mean()) == 1.0
            # the pairs (s, t) cover the unit square's upper triangle: every cell between grid points is hit
            cells = set(map(tuple, (draws[:, [0, 2]] * 8).floor().long().tolist()))
            assert len(cells) == 36  # 8 diagonal cells + 28 above
        else:
            assert float(on_grid) == 1.0 and bool((draws[:, 1:] > draws[:, :-1]).all())


def test_continuous_times_reach_the_losses():
    """With continuous times the velocity and self-consistency losses evaluate G at non-grid (t, s): spy on the network."""
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))
    seen: list[torch.Tensor] = []

    class Spy(_StraightMap):
        def forward(self, x, t, s):
            seen.extend([t.detach().reshape(-1), s.detach().reshape(-1)])
            return super().forward(x, t, s)

    for times in ("continuous", "grid"):
        trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="traflow", steps=1, hidden=8, depth=1, times=times), seed=0)
        spy = Spy(torch.as_tensor(teacher.composite_gains()))
        trainer.net, trainer.ema = spy, spy
        x1, x0 = trainer.pairs(64)
        seen.clear()
        trainer.velocity_loss(x1, x0)
        trainer.self_consistency_loss(x1, x0)
        values = torch.cat(seen)
        off_grid = float(((values * 4 - (values * 4).round()).abs() > 1e-9).double().mean())
        assert (off_grid > 0.9) if times == "continuous" else (off_grid == 0.0)


def test_consistency_draws_follow_ctm_and_reach_the_anchor():
    """anchor=True: n2 uniform on 1..N, m uniform below it, n1 uniform on m..n2-1 (so t1 = s happens); False: s < t1."""
    n_steps, count = 4, 200_000
    teacher = GaussianTeacher(make_schedule("rf", n_steps), make_gaussian([0.25, 4.0]))
    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="scot", steps=1, hidden=8, depth=1), seed=0)
    idx = trainer._consistency_indices(count).numpy()
    assert bool(((idx[:, 0] <= idx[:, 1]) & (idx[:, 1] < idx[:, 2]) & (idx[:, 2] <= n_steps)).all())
    expected = {}
    for n2 in range(1, n_steps + 1):
        for m in range(n2):
            for n1 in range(m, n2):
                expected[(m, n1, n2)] = 1.0 / n_steps / n2 / (n2 - m)
    keys, counts = np.unique(idx, axis=0, return_counts=True)
    observed = {tuple(k): c / count for k, c in zip(keys.tolist(), counts)}
    assert set(observed) == set(expected)
    for key, p in expected.items():  # 5 standard errors
        assert abs(observed[key] - p) < 5 * math.sqrt(p * (1 - p) / count), key
    strict = TrajectoryTrainer(teacher, TrajectoryConfig(method="scot", steps=1, hidden=8, depth=1, anchor=False), seed=0)
    idx = strict._consistency_indices(1000).numpy()
    assert bool(((idx[:, 0] < idx[:, 1]) & (idx[:, 1] < idx[:, 2])).all())


class _ScaledTeacherMap(torch.nn.Module):
    """G(x, t, s) = D(t -> s) x on the grid, the teacher's own composite, except that every jump to s = 0 from
    t > 0 is scaled by c: self-consistent along the teacher, wrong by the factor c in every one-step sample."""

    def __init__(self, teacher, scale):
        super().__init__()
        n = teacher.steps
        table = np.ones((n + 1, n + 1, teacher.dim))
        for top in range(n + 1):
            for bottom in range(top):
                table[top, bottom] = np.atleast_1d(teacher.composite_gains(top, bottom))
        table[1:, 0] *= scale
        self.table, self.n = torch.as_tensor(table), n

    def forward(self, x, t, s):
        top = (t.reshape(-1) * self.n).round().long()
        bottom = (s.reshape(-1) * self.n).round().long()
        return x * self.table[top, bottom]


def test_the_anchor_pins_the_one_step_map_to_the_teacher():
    """Without the anchor (s < t1) a student that is consistent along the teacher but off by a factor c in every jump
    to 0 has zero soft-consistency loss for every c; with it (s <= t1) the loss is zero only at c = 1."""
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))

    def loss(anchor, scale):
        trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="scot", steps=1, hidden=8, depth=1, anchor=anchor), seed=0)
        trainer.net = trainer.ema = _ScaledTeacherMap(teacher, scale)
        return float(trainer.consistency_loss(4096))

    assert loss(False, 0.8) < 1e-24 and loss(False, 1.25) < 1e-24
    assert loss(True, 1.0) < 1e-24
    assert loss(True, 0.8) > 1e-3 and loss(True, 1.25) > 1e-3


def test_continuous_consistency_times_keep_s_at_most_t1():
    """With continuous times s is jittered inside its grid cell where that stays below t1 and equals t1 on anchors."""
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, s):
            calls.append((t.detach().expand(x.shape[0], 1).reshape(-1), s.detach().expand(x.shape[0], 1).reshape(-1)))
            return x

    trainer = TrajectoryTrainer(teacher, TrajectoryConfig(method="scot", steps=1, hidden=8, depth=1, times="continuous"), seed=0)
    trainer.net = trainer.ema = Spy()
    trainer.consistency_loss(4000)
    (t2, s), _, (t1, s_again), _ = calls
    assert torch.equal(s, s_again) and bool((s <= t1).all()) and bool((t1 < t2).all())
    on_grid = (s * 4 - (s * 4).round()).abs() < 1e-12
    assert 0.2 < float((s == t1).double().mean()) < 0.8  # anchors
    assert float((~on_grid).double().mean()) > 0.2  # jittered elsewhere


@pytest.mark.slow
@pytest.mark.parametrize("method", ["scot", "traflow"])
def test_compiled_trajectory_step_matches_the_eager_one(method):
    """torch.compile of the losses' network part (SCoT: the consistency against the EMA network, the
    denoising loss, the gradient-norm weight; TraFlow: reconstruction, self-consistency; the
    forward-mode velocity stays eager): the same records and parameters as eagerly to rounding, and
    dynamo compiled the frames instead of silently falling back to eager."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([0.25, 4.0]))
    cfg = TrajectoryConfig(method=method, steps=3, batch=32, hidden=16, depth=2)
    out = {}
    for mode in ("off", "default"):
        trainer = TrajectoryTrainer(teacher, cfg, seed=3, compile=mode)
        trainer.train(log_every=1)
        out[mode] = (trainer.history, [p.detach().clone() for p in trainer.net.parameters()])
    assert counters["frames"]["ok"] >= 2 and not counters["unimplemented"] and not counters["graph_break"]
    (eager, eager_params), (fast, fast_params) = out["off"], out["default"]
    assert len(eager) == len(fast) == 3
    for a, b in zip(eager, fast):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-15)
    for a, b in zip(eager_params, fast_params):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
