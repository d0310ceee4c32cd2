"""Generate ``notebooks/04_mixture.ipynb`` (committed without outputs).

Run from the repository root: ``python notebooks/_make_04_mixture.py``.
"""

from __future__ import annotations

import nbformat

from _notebook import build_notebook, write_notebook

CELLS = [
    ("md", """# The Gaussian-mixture regime: a nonlinear exact teacher

In the linear regime (`docs/theory.md`) the data is one Gaussian and every merge of teacher steps is
exact in the student family: only the training budget costs accuracy. With a Gaussian mixture the
teacher is nonlinear, and a student of one step's capacity (affine maps gated by the teacher's
responsibilities) can no longer represent a merge of several steps: merging has an *approximation
error* of its own. This notebook shows the presets, the exact teacher against few-step DDIM, how the
approximation error grows with the number of merged steps, how honest the mixture planner is on one
small cell, and the planner's plan against the canonical ones. It runs in well under a minute on a
laptop; `opmerge mixture ...` (see `docs/cli.md`) runs the same studies from the command line."""),
    ("code", """import time

import matplotlib.pyplot as plt
import numpy as np

from opmerge import StudentModel, canonical_plan, format_plan, make_schedule
from opmerge.plans import CANONICAL_KINDS
from opmerge.mixture import (Expectation, MixtureProblem, MixtureTeacher, mixture_preset, optimal_mixture_plan,
                             plan_cost, simulate_plan, w2_samples)
from opmerge.analysis import describe_plan
from opmerge.analysis.mixture import MixtureCell, evaluate_cell, merge_errors
from opmerge.analysis.mixture_plots import plot_honesty_scatter, plot_merge_errors, plot_samples

start = time.perf_counter()"""),
    ("md", """## 1. The presets
`mixture_preset(name, separation)`: `two-2d` (two components $\\pm s/2$ on the first axis, covariance
diag(1, 0.5)), `eight-2d` (eight unit components on a ring, neighbours $s$ apart) and `mixture-16d`
(four components in 16 dimensions with rotated spectra; its first two coordinates are shown). The
separation $s$ is in component standard deviations; at $s = 0$ the mixture is one Gaussian and the
linear regime holds exactly. A file (JSON or `.npz` with `weights`, `means`, `covariances`) is read by
`load_mixture`."""),
    ("code", """presets = {name: mixture_preset(name, 4.0) for name in ("two-2d", "eight-2d", "mixture-16d")}
samples = {name: m.sample(1500, seed=1) for name, m in presets.items()}
for name, m in presets.items():
    print(f"{m!r}: separation {m.separation():.2f}, covariance spectrum {np.round(m.spectrum()[::-1][:4], 2)} ...")
fig, _ = plot_samples({f"{name} (s = 4)": x for name, (x, _) in samples.items()},
                      labels={f"{name} (s = 4)": lab for name, (_, lab) in samples.items()}, share=False)
plt.show()"""),
    ("md", """## 2. The exact teacher against few-step DDIM
`MixtureTeacher` has the exact posterior-mean denoiser of the mixture, DDIM and Heun steps, their
composites, and the probability-flow map (`exact_flow`: RK4 with step doubling, with an error
estimate). From the same noise $z_N$ the exact flow transports $p_N$ onto the data; DDIM with 16 steps
is close, and a DDIM jump over many steps at once (here 16 steps in 4, 2 and 1 jumps) blurs the
components together, which is what a merged student must learn to avoid. W2 is measured against the
exact flow's samples (optimal assignment between the point sets)."""),
    ("code", """mixture = presets["two-2d"]
teacher = MixtureTeacher(mixture, make_schedule("vp-cosine", 16))
z = np.random.default_rng(0).standard_normal((800, 2))  # vp-cosine: alpha_N = 0, so z_N ~ N(0, I)
flow = teacher.exact_flow(z)
print(f"exact flow: error estimate {flow.error_estimate:.1e}")
outputs = {"exact flow": flow.z, "DDIM, 16 steps": teacher.composite(z)}
for jumps in (4, 2, 1):
    x, grid = z, np.linspace(16, 0, jumps + 1).round().astype(int)
    for top, bottom in zip(grid[:-1], grid[1:]):
        x = teacher.ddim_jump(x, int(top), int(bottom))
    outputs[f"DDIM, {jumps} jump{'s' if jumps > 1 else ''}"] = x
for name, x in outputs.items():
    if name != "exact flow":
        print(f"{name:16s} W2 to the exact flow {w2_samples(x, flow.z):.3f}")
fig, _ = plot_samples(outputs, panel_size=2.3)
plt.show()"""),
    ("md", """## 3. The approximation error of a merge
$\\varepsilon(m)$: the best fit in the gated family of the composite of $m$ teacher steps, on the data
side ($m \\to 0$) and on the noise side ($N \\to N - m$). One step is exact (its value is rounding, drawn
at the floor); at separation 0 every merge is exact, as in the linear regime; it grows by orders of
magnitude with the separation and with $m$. `opmerge mixture merge-error` draws the same figure."""),
    ("code", """errors = merge_errors("two-2d", [0, 2, 4, 6], steps=8)
fig, data = plot_merge_errors(errors, floor=1e-16)
plt.show()
for curve in errors["curves"]:
    print(f"separation {curve['separation']:g}: eps(8 steps) = {curve['data_side'][-1]:.2e}")"""),
    ("md", """## 4. How honest is the planner? One small cell
The mixture planner scores a plan by a node-additive cost (each node's trained error carried to the
data by the teacher's remaining steps) and finds its minimum over all plans exactly. Here, for
$N = 5$, $M = 1$, every one of the 45 plans is also simulated exactly: the Spearman correlation of
planner cost and exact MSE, and the regret of the planner's pick (its MSE over the best MSE, minus 1).
`opmerge mixture honesty` does this over a grid of separations and budgets."""),
    ("code", """cell = evaluate_cell(MixtureCell("two-2d", separation=4.0, eta_tau=1.0, steps=5, segments=1))
print(f"{cell['plans']} plans: Spearman {cell['spearman']:.3f}, regret {100 * cell['regret']:.2f}%")
print("planner's pick:", cell["planner_plan"], "| exact optimum:", cell["optimal_plan"], "| linear regime's answer:", cell["linear_plan"])
canonical = {kind: format_plan(canonical_plan(kind, 5, 1)) for kind in CANONICAL_KINDS}
fig, _ = plot_honesty_scatter(cell, canonical=canonical, title="two-2d, separation 4, $\\\\eta\\\\tau$ = 1, N = 5, M = 1")
plt.show()"""),
    ("md", """## 5. The planner's plan against the canonical plans
$N = 8$ teacher steps distilled into $M = 2$ student steps, budget $\\eta\\tau = 1$ per merge: the
planner's plan and the canonical recipes, each simulated exactly (MSE to the teacher's output).
`opmerge mixture plan` prints this table."""),
    ("code", """problem = MixtureProblem(mixture, make_schedule("vp-cosine", 8), StudentModel(eta_tau=1.0),
                         expectation=Expectation("quadrature", order=16))
picked = optimal_mixture_plan(problem, segments=2)
plans = {"planner": picked.plan, **{kind: canonical_plan(kind, 8, 2) for kind in CANONICAL_KINDS}}
rows = []
for name, plan in plans.items():
    sim = simulate_plan(problem, plan, w2=False)
    rows.append((name, plan, plan_cost(picked.tables, plan), sim.mse))
    print(f"{name:8s} {format_plan(plan):32s} {describe_plan(plan):26s} planner cost {rows[-1][2]:.4f}   exact MSE {sim.mse:.4f}")
fig, ax = plt.subplots(figsize=(5.5, 2.8))
ax.barh([r[0] for r in rows][::-1], [r[3] for r in rows][::-1], color=["#8C8C8C"] * 4 + ["#D55E00"])
ax.set_xlabel("exact MSE to the teacher's output")
ax.set_title("N = 8, M = 2, two-2d (s = 4), $\\\\eta\\\\tau$ = 1")
plt.show()
print(f"notebook ran in {time.perf_counter() - start:.0f} s")"""),
    ("md", """The planner cost is an estimate of the MSE built from one node at a time; where it ranks the
plans as the simulation does, its pick is the exact optimum, and the regret measures the rest. The
linear regime's answer for the mixture's covariance spectrum is a natural baseline: `opmerge mixture
phase` maps, over separations and budgets, where the exact optimum leaves it and what the planner's
pick costs there."""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    return build_notebook(CELLS, "mixture")


if __name__ == "__main__":
    write_notebook(CELLS, "mixture", "04_mixture.ipynb")
