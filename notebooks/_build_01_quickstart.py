"""Generate ``notebooks/01_quickstart.ipynb`` (committed without outputs).

Run from the repository root: ``python notebooks/_build_01_quickstart.py``.
"""

from __future__ import annotations

import nbformat

from _notebook import build_notebook, write_notebook

CELLS = [
    ("md", """# opmerge quickstart

Merge plans for diffusion trajectory distillation in the linear regime (specified in `docs/theory.md`):
parse and draw plans, evaluate them, find the optimal plan with a certificate, compare it with the
canonical recipes (vanilla, BOOT, CD, PD) and sweep the data variance $\\lambda$ for a small phase
diagram. Everything runs in well under a minute."""),
    ("code", """import numpy as np

from opmerge import Problem, StudentModel, canonical_plan, draw_plan, evaluate_plan, make_schedule, parse_plan, solve
from opmerge.plans import CANONICAL_KINDS
from opmerge.analysis import classify_plan, family_of_solution, sweep_lambda, sweep_lambda_eta
from opmerge.analysis.plots import draw_plan_tree, plot_phase_diagram, plot_w2_vs_lambda"""),
    ("md", """## 1. Plans: text notation, drawing
Teacher step `n` maps $z_n \\to z_{n-1}$; a node `( ... )` is one distillation run over its children,
noise side first; ` | ` separates the segments (student steps)."""),
    ("code", """plan = parse_plan("((8 7) 6 5) | (4 (3 (2 1)))")
print(plan, "  N =", plan.steps, " M =", plan.n_segments, " merges =", plan.n_merges)
print(draw_plan(plan))
print(classify_plan(plan))"""),
    ("code", """fig, _ = draw_plan_tree(plan)"""),
    ("md", """## 2. Evaluate plans and solve for the optimum
A problem fixes the schedule, the data variance $\\lambda$ and the student model (warm start,
$\\eta\\tau = 0.5$). `solve` returns the optimal plan with a certified lower bound."""),
    ("code", """schedule = make_schedule("vp-cosine", 8)
model = StudentModel(eta_tau=0.5)
problem = Problem(schedule, 0.5, model=model)
for kind in CANONICAL_KINDS:
    p = canonical_plan(kind, 8)
    print(f"{kind:8s} {str(p):32s} W2 = {evaluate_plan(problem, p).w2:.5f}")
solution = solve(problem)
print("optimal ", solution.plan, f"W2 = {solution.w2:.5f}", "proven optimal:", solution.exact,
      "family:", family_of_solution(solution))"""),
    ("md", """## 3. Comparison table across $\\lambda$
The family of the optimum is decided by W2 values: the first canonical plan (vanilla, BOOT, CD, PD)
that attains the optimum within the solver tolerance, otherwise *mixed*."""),
    ("code", """rows = []
for lam in (0.05, 0.3, 1.0, 1.5, 3.0, 10.0, 100.0):
    pr = Problem(schedule, lam, model=model)
    sol = solve(pr)
    w2 = {k: evaluate_plan(pr, canonical_plan(k, 8)).w2 for k in CANONICAL_KINDS}
    rows.append((lam, w2, sol))
print(f"{'lambda':>7} " + " ".join(f"{k:>9}" for k in CANONICAL_KINDS) + f" {'optimal':>9}  family   plan")
for lam, w2, sol in rows:
    print(f"{lam:7g} " + " ".join(f"{w2[k]:9.4f}" for k in CANONICAL_KINDS)
          + f" {sol.w2:9.4f}  {family_of_solution(sol):8s} {sol.plan}")"""),
    ("md", """## 4. A small phase diagram
A log-spaced $\\lambda$ sweep (every point solved exactly, transitions located by bisection), then
a coarse $\\lambda \\times \\eta\\tau$ grid."""),
    ("code", """sweep = sweep_lambda(np.geomspace(0.05, 100, 24), schedule=schedule, model=model, progress=False, workers=1)
print(sweep.summary())
fig, _ = plot_w2_vs_lambda(sweep, title="vp-cosine, N = 8")"""),
    ("code", """grid = sweep_lambda_eta(np.geomspace(0.05, 100, 16), np.geomspace(0.1, 4, 4), schedule=schedule, model=model,
                        progress=False, workers=1)
fig, _ = plot_phase_diagram(grid, title="vp-cosine, N = 8")"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    return build_notebook(CELLS, "quickstart")


if __name__ == "__main__":
    write_notebook(CELLS, "quickstart", "01_quickstart.ipynb")
