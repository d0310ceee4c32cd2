"""Generate ``notebooks/02_bridge.ipynb`` (committed without outputs).

Run from the repository root: ``python notebooks/_make_02_bridge.py``.
"""

from __future__ import annotations

import nbformat

from _notebook import build_notebook, write_notebook

CELLS = [
    ("md", """# The torch bridge: real students read back into the model

The linear-regime model (`docs/theory.md`) predicts what a distilled student learns. Here we
train students for real in PyTorch on Gaussian data and read them back (`docs/theory.md` §7):

1. one merge plan (BOOT) executed as a sequence of distillation runs, with linear students trained by
   exact-loss gradient descent (where the model is exact) and with small MLPs trained by Adam
   (where it is an approximation);
2. a SCoT student (a continuous-time trajectory model) and its trajectories.

Quick sizes: the whole notebook runs in well under a minute on a CPU. The full studies are
`opmerge validate exactness|sgd|ranking|scot` (see `docs/bridge.md`)."""),
    ("code", """import numpy as np
import torch

from opmerge import Problem, StudentModel, canonical_plan, evaluate_plan, make_schedule
from opmerge.experiments.executor import PlanExecutor, TrainConfig, core_model
from opmerge.experiments.gaussian import make_gaussian
from opmerge.experiments.readout import read_out
from opmerge.experiments.teacher import GaussianTeacher
from opmerge.experiments.trajectory import TrajectoryConfig, TrajectoryTrainer, consistency_error, straightness
from opmerge.analysis.style import new_figure

torch.set_num_threads(1)  # small tensors: one thread is fastest
torch.manual_seed(0)"""),
    ("md", """## 1. One plan trained for real
Data: a rotated 3-direction Gaussian ($\\lambda = 0.2, 1, 5$), teacher: DDIM on `vp-cosine` with
$N = 6$ steps. The plan is BOOT, `(((((6 5) 4) 3) 2) 1)`: five distillation runs, each warm-started
from the operator currently in use at its input time."""),
    ("code", """schedule = make_schedule("vp-cosine", 6)
data = make_gaussian([0.2, 1.0, 5.0], rotated=True, seed=1)
teacher = GaussianTeacher(schedule, data)          # float64 on the CPU
plan = canonical_plan("boot", 6)
print("plan", plan, "| teacher composite T per direction:", np.round(teacher.composite_gains(), 4))

# (a) full-linear students, exact-loss gradient descent: the model's training='gd' closed form
linear_cfg = TrainConfig(family="full", optimizer="exact-gd", lr=0.02, steps=25)
linear = PlanExecutor(teacher, linear_cfg, seed=0).run(plan)
predicted_gd = evaluate_plan(Problem(schedule, data.lam, model=core_model(linear_cfg)), plan).student

# (b) residual-MLP students (all coordinates, so they must find the eigenbasis), Adam, fixed budget
mlp_cfg = TrainConfig(family="mlp", optimizer="adam", lr=3e-4, steps=100, batch=256, hidden=32)
mlp = PlanExecutor(teacher, mlp_cfg, seed=0).run(plan)
predicted_flow = evaluate_plan(Problem(schedule, data.lam, model=StudentModel(eta_tau=0.5)), plan).student"""),
    ("md", """Read both students back on fresh $z_N$ (the same inputs for both): per eigen-direction the
effective gain $g_i = \\mathrm{Cov}(f(z)_i, z_i)/\\mathrm{Var}(z_i)$ with its 99% interval, and the
share of $\\mathrm{Var}(f(z)_i)$ that $g_i z_i$ does not explain."""),
    ("code", """z = teacher.noise_sample(20000, torch.Generator().manual_seed(7))
r_lin = read_out(linear.sampler(), teacher, inputs=z, predicted=predicted_gd)
r_mlp = read_out(mlp.sampler(), teacher, inputs=z, predicted=predicted_flow)
print(f"{'lambda':>7} {'T':>8} {'model gd':>9} {'linear GD':>10} {'model flow':>11} {'MLP (Adam) gain, 99% CI':>30} {'residual':>9}")
for i, lam in enumerate(data.lam):
    print(f"{lam:7.2f} {teacher.composite_gains()[i]:8.4f} {predicted_gd[i]:9.4f} {r_lin.gain[i]:10.4f} {predicted_flow[i]:11.4f}"
          f"   {r_mlp.gain[i]:8.4f} [{r_mlp.gain_low[i]:.4f}, {r_mlp.gain_high[i]:.4f}] {r_mlp.residual[i]:9.2e}")
print("max |linear GD student - model gd| =", float(np.max(np.abs(r_lin.gain - predicted_gd))))
for name, r in (("linear GD", r_lin), ("MLP Adam", r_mlp)):
    print(f"{name:10s} W2 to teacher {r.w2_gaussian['teacher']:.4f} (sample OT {r.w2_sample['teacher']:.4f}), "
          f"to data {r.w2_gaussian['data']:.4f}, to its prediction {r.w2_gaussian['predicted']:.4f}")"""),
    ("md", """The linear students reproduce the closed form to rounding; the MLP students trained with Adam
learn a different amount per node than the gradient-flow model with $\\eta\\tau = 0.5$ assumes
(Adam's step does not scale with the input variance $q_j$), which is what the `ranking` study
measures across $\\lambda$.

## 2. A SCoT student and its trajectories
SCoT learns $G(x_t, t, s) = \\tfrac{s}{t} x_t + (1 - \\tfrac{s}{t})\\, g(x_t, t, s)$ (rectified-flow
time) with a velocity loss (derivative in $s$ by forward-mode autodiff), CTM's soft trajectory
consistency against an EMA copy and a denoising loss. Teacher: DDIM on `rf` with $N = 8$ steps,
two directions ($\\lambda = 0.25, 4$)."""),
    ("code", """rf = make_schedule("rf", 8)
data2 = make_gaussian([0.25, 4.0])
teacher2 = GaussianTeacher(rf, data2)
trainer = TrajectoryTrainer(teacher2, TrajectoryConfig(method="scot", steps=300, batch=128, hidden=64, depth=2, lr=2e-3), seed=0)
net = trainer.train()
x1 = teacher2.noise_sample(4096, torch.Generator().manual_seed(3))
for k in (1, 2, 4):
    r = read_out(trainer.sampler(k), teacher2, inputs=x1, n_ot=256)
    print(f"{k}-step gains {np.round(r.gain, 4)}  (teacher T {np.round(teacher2.composite_gains(), 4)}, exact flow "
          f"{np.round(np.sqrt(data2.lam), 4)})  W2 to teacher {r.w2_gaussian['teacher']:.4f}")
print("straightness (1 step)", round(straightness(net, x1[:512], 1), 5), " consistency 1 vs 2 steps", round(consistency_error(net, x1), 5))"""),
    ("code", """starts = teacher2.noise_sample(6, torch.Generator().manual_seed(11))
s_fine = torch.linspace(1.0, 0.0, 41, dtype=torch.float64)
with torch.no_grad():
    one_jump = torch.stack([net(starts, torch.ones(1, 1, dtype=torch.float64), s.view(1, 1)) for s in s_fine])  # (41, 6, 2)
    two_step = [starts, net.sample(starts, 2, grid=[1.0, 0.5]), net.sample(starts, 2)]
    teacher_path = torch.stack(teacher2.trajectory(starts))  # grid states z_8 ... z_0
    flow = torch.stack([teacher2.exact_flow_at(starts, 0.0, 1.0, 1.0 - s, s) for s in s_fine])
fig, (ax1, ax2) = new_figure(1, 2, width=9.5, height=4.2)
for k in range(starts.shape[0]):
    ax1.plot(one_jump[:, k, 0], one_jump[:, k, 1], "-", color="#D55E00", lw=1.2, label="SCoT G(x1, 1, s)" if k == 0 else None)
    ax1.plot(teacher_path[:, k, 0], teacher_path[:, k, 1], "o--", color="#000000", ms=2.5, lw=0.8, label="teacher DDIM (N = 8)" if k == 0 else None)
    ax1.plot(flow[:, k, 0], flow[:, k, 1], ":", color="#0072B2", lw=1.2, label="exact flow" if k == 0 else None)
    ax1.plot([p[k, 0] for p in two_step], [p[k, 1] for p in two_step], "s-", color="#009E73", ms=3, lw=0.8, label="SCoT 2 steps" if k == 0 else None)
ax1.set_xlabel("direction 1 ($\\\\lambda$ = 0.25)")
ax1.set_ylabel("direction 2 ($\\\\lambda$ = 4)")
ax1.set_title("trajectories from six noise samples $x_1$")
ax1.legend(fontsize=7)
steps = [1, 2, 4, 8]
gains = np.array([read_out(trainer.sampler(k), teacher2, inputs=x1, n_ot=0).gain for k in steps])
for i, lam in enumerate(data2.lam):
    ax2.plot(steps, gains[:, i], "o-", label=f"SCoT, $\\\\lambda$ = {lam:g}")
    ax2.axhline(teacher2.composite_gains()[i], color="k", ls="--", lw=0.8)
    ax2.axhline(np.sqrt(lam), color="#0072B2", ls=":", lw=0.8)
ax2.set_xscale("log", base=2)
ax2.set_xlabel("sampling steps")
ax2.set_ylabel("effective gain")
ax2.set_title("gain vs steps (dashed: teacher T, dotted: exact flow)")
ax2.legend(fontsize=7)
fig.tight_layout()"""),
    ("md", """With a few hundred updates the student is far from converged; the full `scot` study trains
SCoT and TraFlow for thousands of updates on 2- and 16-direction Gaussians and asks which merge
plan's prediction the learned gains sit closest to."""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    return build_notebook(CELLS, "bridge")


if __name__ == "__main__":
    write_notebook(CELLS, "bridge", "02_bridge.ipynb")
