"""Generate ``notebooks/03_images.ipynb`` (committed without outputs).

Run from the repository root: ``python notebooks/_make_03_images.py``.
"""

from __future__ import annotations

import nbformat

from _notebook import build_notebook, write_notebook

CELLS = [
    ("md", """# The bridge on images: digits, a trained teacher, distilled students

8x8 digits (scikit-learn, shipped; no download). Two teachers: the Gaussian fitted to the digits
(its samplers are exactly the linear model of `docs/theory.md`) and a small MLP diffusion model
trained here in seconds. We measure how linear the trained teacher is per eigen-direction, distil
merge-plan students and SCoT/TraFlow students from both, and compare the model's predicted W2
ranking of the plans with the measured one. Everything runs in quick mode on a CPU (about a
minute); the full study is `opmerge validate images` (see `docs/images.md`)."""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

from opmerge import make_schedule
from opmerge.experiments.images.data import fit_gaussian, load_digits_dataset
from opmerge.experiments.images.figures import tile_images
from opmerge.experiments.images.linearity import teacher_linearity
from opmerge.experiments.images.metrics import evaluate_samples, load_or_train_classifier
from opmerge.experiments.images.study import run_images_study
from opmerge.experiments.images.teachers import GaussianImageTeacher, TeacherConfig, train_teacher

torch.set_num_threads(1)  # small networks: one thread is fastest, and a shared machine stays responsive
work = Path(tempfile.mkdtemp(prefix="opmerge-images-"))"""),
    ("md", """## 1. Data and its spectrum
Pixels $p \\in \\{0..16\\}$ scaled to $x = p/8 - 1$; a seeded 80/20 split. The Gaussian fit
$\\mathcal N(\\mu, U \\operatorname{diag}(\\lambda) U^\\top)$ of the training images gives the eigenvalues
the model works with (a dozen large ones, a long tail, and exact zeros for the always-blank corner pixels)."""),
    ("code", """digits = load_digits_dataset()
fit = fit_gaussian(digits.train)
print(digits.n_train, "training and", digits.n_test, "held-out images; total variance", round(float(fit.lam.sum()), 3))
fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
a1.imshow(1 - tile_images(digits.test[:64], (8, 8)), cmap="gray"); a1.axis("off"); a1.set_title("held-out digits")
a2.semilogy(np.arange(1, 65), np.maximum(fit.lam, 1e-8), "o-", ms=3); a2.set_xlabel("direction i"); a2.set_ylabel(r"$\\lambda_i$")
a2.set_title("eigenvalues of the digits covariance"); plt.show()"""),
    ("md", """## 2. Two teachers
The Gaussian teacher's denoiser is $\\hat x_0 = \\mu + \\alpha\\Sigma(\\alpha^2\\Sigma + \\sigma^2 I)^{-1}(z - \\alpha\\mu)$.
The trained teacher is an MLP denoiser (quick preset: width 128, 2,000 Adam steps; a checkpoint with
its full configuration, optimizer and random state is written atomically and can be resumed).
A classifier trained here (an MLP on the 64 pixels) gives the FID-like Fréchet distance on its
features, a classifier score (IS-like, at most 10) and class coverage."""),
    ("code", """schedule = make_schedule("rf", 8)
gauss = GaussianImageTeacher.from_dataset(digits, schedule)
checkpoint = train_teacher(TeacherConfig.quick(steps=8), work / "teacher", progress=False, device="cpu")
trained = checkpoint.load_teacher(schedule=schedule)
classifier, info = load_or_train_classifier(digits, work / "cache")
print(f"teacher trained for {checkpoint.step} steps in {checkpoint.elapsed:.1f} s; classifier test accuracy {info['test_accuracy']:.3f}")
z = gauss.noise_sample(1000, torch.Generator().manual_seed(0))
rows = {"training images": digits.train[:1000], "Gaussian teacher": gauss.sample(z), "trained teacher": trained.sample(z.float())}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (name, x) in zip(axes, rows.items()):
    m = evaluate_samples(x, digits, classifier)
    ax.imshow(1 - tile_images(np.asarray(x)[:49], (8, 8)), cmap="gray"); ax.axis("off")
    ax.set_title(f"{name}\\nFD feat {m['fd_features_test']:.1f}, score {m['classifier_score']:.2f}", fontsize=9)
plt.show()"""),
    ("md", """## 3. How linear is the trained teacher?
Per eigen-direction $i$ of the digits covariance, the effective gain $g_i = \\mathrm{Cov}(f(z)_i, z_i)/\\mathrm{Var}(z_i)$
of the sampler $z_N \\mapsto x$ on fresh inputs, next to the Gaussian teacher's composite $T_i$
(`opmerge.teacher.teacher_composite`). For the Gaussian teacher they agree to rounding; the trained
teacher's "linear share" is the part of its output variance explained by the best affine map of $z_N$."""),
    ("code", """lin_g = teacher_linearity(gauss, n=2000)
lin_t = teacher_linearity(trained, n=2000)
print("Gaussian teacher: max |g - T| =", f"{np.max(np.abs(lin_g.gain - lin_g.predicted)):.1e}")
print("trained teacher: linear share", round(lin_t.summary["linear_share"], 3),
      "| Gaussian-teacher share", round(lin_t.summary["gaussian_teacher_share"], 3))
keep = fit.lam > 1e-4
plt.figure(figsize=(5, 3.2))
plt.semilogx(fit.lam[keep], lin_g.predicted[keep], "k-", label="Gaussian T (model)")
plt.errorbar(fit.lam[keep], lin_t.gain[keep], yerr=[lin_t.gain[keep] - lin_t.gain_low[keep], lin_t.gain_high[keep] - lin_t.gain[keep]],
             fmt="o", ms=3, label="trained teacher (99% CI)")
plt.xlabel(r"$\\lambda_i$"); plt.ylabel("gain"); plt.legend(); plt.show()"""),
    ("md", """## 4. Distillation: the quick study
Plan students for $M = 1, 2, 4$ student steps (vanilla, BOOT and the model's optimal plan for the
digits spectrum): affine students trained by SGD from the Gaussian teacher (the model's `gd`
prediction is exact in expectation there) and denoiser students (a copy of the teacher's network,
Adam) from the trained teacher; SCoT students from both (the CLI's quick run adds TraFlow). The
study reuses the teacher trained above."""),
    ("code", """result = run_images_study(quick=True, out=str(work / "study"), checkpoint=str(work / "teacher"), device="cpu", progress=False,
                          trajectory=("scot",))
print(f"{result['elapsed_s']:.0f} s")
for key, r in result["summary"]["rank_correlation"].items():
    print(f"{key:24s} Spearman (model W2 vs measured W2): {r['spearman_w2_cov']}  winner agrees: {r['winner_agrees']}")"""),
    ("code", """for row in result["summary"]["students"]:
    pred = "   -  " if row["w2_predicted"] is None else f"{row['w2_predicted']:.3f}"
    print(f"{row['teacher']:8s} {row['recipe']:8s} M={row['segments']} {row['name']:8s} W2 predicted {pred}, measured {row['w2_cov']:.3f};"
          f" FD features {row['fd_features_test']:.1f}")"""),
    ("code", """display(Image(result["figures"]["predicted_vs_measured"]["png"], width=900))
display(Image(result["figures"]["grids_trained"]["png"], width=420))"""),
    ("md", """Against the Gaussian teacher the affine students land on the model's predictions (measured W2 on
the diagonal, rank correlation 1): on real digit inputs only the first two moments matter for
a linear student. Against the trained teacher the network students scatter away from the
diagonal: that gap is what the model does not capture (a nonlinear teacher and student, Adam, few
updates per node). `opmerge validate images` runs the full size (16 teacher steps, more plans,
both recipes for both teachers) and writes the same figures."""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    return build_notebook(CELLS, "images")


if __name__ == "__main__":
    write_notebook(CELLS, "images", "03_images.ipynb")
