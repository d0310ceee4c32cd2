r"""Comparing measured students with the model's predictions (the readout half of the image study).

* :func:`w2_parts` — W2 of a student's samples to the teacher's (covariance part, full, paired);
* :func:`rank_agreement` — Spearman/Kendall of measured vs predicted W2 over plans, and whether the
  best plans agree;
* :func:`relative_gain_errors` — the relative error of the teacher-normalised gains
  :math:`g_i/g^T_i` against :math:`S_i/T_i`, by eigenvalue bin;
* :func:`calibrate_eta_tau` — the gradient-flow :math:`\eta\tau` that best fits measured gains;
* :func:`summarize` — the short summary of a study result.

Imported by :mod:`~experiments.images.study` and :mod:`~experiments.images.figures` (which import
nothing of each other's).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from opmerge.model import StudentModel
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import parse_plan
from opmerge.schedules import Schedule

from .metrics import frechet_distance

if TYPE_CHECKING:  # pragma: no cover
    from .study_config import ImagesStudyConfig

__all__ = ["LAM_BINS", "LAM_FLOOR", "ratio", "model_for", "w2_parts", "gain_part_w2", "rank_agreement", "lam_bin_labels", "relative_gain_errors",
           "calibrate_eta_tau", "summarize"]

#: edges of the eigenvalue bins of the breakdown
LAM_BINS = (1e-4, 1e-2, 1e-1, 1.0, math.inf)
#: directions with an eigenvalue at or below this are left out of every summary
LAM_FLOOR = 1e-4


def model_for(recipe: str, cfg: "ImagesStudyConfig", eta_tau: float | None = None) -> StudentModel:
    r"""The model of a student recipe.

    Parameters
    ----------
    recipe : {"linear", "network"}
        ``linear``: gradient descent with the recipe's step ``cfg.lr_linear`` and count
        ``cfg.node_steps_linear`` (``training="gd"``, exact in expectation for affine students of the
        Gaussian teacher); ``network``: gradient flow with budget :math:`\eta\tau`.
    cfg : ImagesStudyConfig
        Supplies the steps, ``init`` and ``input``.
    eta_tau : float, optional
        The flow budget of the ``network`` model (default ``cfg.eta_tau``).

    Returns
    -------
    StudentModel
    """
    if recipe == "linear":
        return StudentModel(training="gd", lr=cfg.lr_linear, gd_steps=cfg.node_steps_linear, init=cfg.init, input=cfg.input)
    return StudentModel(eta_tau=cfg.eta_tau if eta_tau is None else eta_tau, init=cfg.init, input=cfg.input)


def ratio(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise ``a / b`` with NaN where ``b == 0`` (zero-variance directions, which the summaries leave out).

    Parameters
    ----------
    a, b : array-like
        Broadcastable arrays.

    Returns
    -------
    ndarray of float64
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)


def w2_parts(student: np.ndarray, teacher: np.ndarray) -> dict:
    r"""W2 of a student's samples to the teacher's on the same inputs.

    .. math:: W_\text{cov} = \sqrt{\operatorname{tr}\big(C_s + C_t - 2(C_s C_t)^{1/2}\big)},\qquad
              W_\text{full} = \sqrt{W_\text{cov}^2 + \|\mu_s - \mu_t\|^2}

    (Gaussians fitted to the rows, covariances with :math:`1/(n-1)`).

    Parameters
    ----------
    student, teacher : ndarray (n, d)
        Paired samples: row ``k`` of both comes from the same input :math:`z_N`.

    Returns
    -------
    dict
        ``w2_cov`` (the covariance part, what the centred model predicts), ``w2_full``, ``mean_error``
        :math:`\|\mu_s - \mu_t\|` and ``rms_paired`` (root mean squared distance of paired rows).
    """
    m1, c1 = student.mean(0), np.cov(student, rowvar=False)
    m2, c2 = teacher.mean(0), np.cov(teacher, rowvar=False)
    cov_part = frechet_distance(m1, c1, m1, c2)
    return {"w2_cov": math.sqrt(cov_part), "w2_full": math.sqrt(cov_part + float(np.sum((m1 - m2) ** 2))),
            "mean_error": float(np.linalg.norm(m1 - m2)), "rms_paired": float(np.sqrt(np.mean(np.sum((student - teacher) ** 2, 1))))}


def gain_part_w2(schedule: Schedule, lam: np.ndarray, gain: ArrayLike, teacher_gain: ArrayLike) -> float:
    r"""The part of a sampler's :math:`W_2` to the teacher that its per-direction gains carry,

    .. math:: W_{2,\text{gain}} = \sqrt{\textstyle\sum_{\lambda_i > \text{LAM\_FLOOR}} \|v_{N,i}\|^2 (g_i - g^T_i)^2},
              \qquad \|v_{N,i}\| = \sqrt{\alpha_N^2\lambda_i + \sigma_N^2}.

    Parameters
    ----------
    schedule : Schedule
        The sampling grid (:math:`\alpha_N`, :math:`\sigma_N`).
    lam : ndarray (d,)
        Eigenvalues of the data.
    gain, teacher_gain : array-like (d,)
        Measured gains of the sampler and of the teacher.
    """
    lam = np.asarray(lam, dtype=np.float64)
    norm = np.sqrt(float(schedule.alpha[-1]) ** 2 * lam + float(schedule.sigma[-1]) ** 2)
    keep = lam > LAM_FLOOR
    return float(np.sqrt(np.sum((norm * (np.asarray(gain) - np.asarray(teacher_gain)))[keep] ** 2)))


def rank_agreement(measured: ArrayLike, predicted: ArrayLike) -> dict:
    """How well a predicted ordering of plans matches the measured one.

    Parameters
    ----------
    measured, predicted : array-like (k,)
        W2 per plan; pairs with a non-finite entry are dropped.

    Returns
    -------
    dict
        ``spearman``, ``kendall`` (``None`` below 3 pairs or when either side is constant), ``n`` (pairs
        used) and ``winner_agrees`` (the plan with the smallest measured W2 has the smallest predicted one).
    """
    m, p = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    ok = np.isfinite(m) & np.isfinite(p)
    m, p = m[ok], p[ok]
    if m.size < 3 or np.ptp(m) == 0 or np.ptp(p) == 0:
        return {"spearman": None, "kendall": None, "n": int(m.size), "winner_agrees": bool(m.size and np.argmin(m) == np.argmin(p))}
    return {"spearman": float(stats.spearmanr(m, p).statistic), "kendall": float(stats.kendalltau(m, p).statistic), "n": int(m.size),
            "winner_agrees": bool(np.argmin(m) == np.argmin(p))}


def lam_bin_labels() -> list[str]:
    """Labels ``[lo, hi)`` of the eigenvalue bins :data:`LAM_BINS`."""
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(LAM_BINS[:-1], LAM_BINS[1:])]


def relative_gain_errors(measured_norm: np.ndarray, predicted_norm: np.ndarray, lam: np.ndarray) -> dict:
    r"""Relative error of the teacher-normalised gains per direction,

    .. math:: e_i = \frac{|g_i/g^T_i - S_i/T_i|}{|S_i/T_i|},

    with its median over the directions with :math:`\lambda_i >` :data:`LAM_FLOOR` and per eigenvalue bin.

    Parameters
    ----------
    measured_norm : ndarray (d,)
        Measured :math:`g_i/g^T_i`.
    predicted_norm : ndarray (d,)
        The model's :math:`S_i/T_i`.
    lam : ndarray (d,)
        Eigenvalues :math:`\lambda_i`.

    Returns
    -------
    dict
        ``median`` (or ``None``), ``by_lambda`` (label of :func:`lam_bin_labels` -> median or ``None`` for an
        empty bin) and ``per_direction`` (:math:`e_i`, NaN where :math:`S_i/T_i = 0`).
    """
    keep = lam > LAM_FLOOR
    rel = ratio(np.abs(measured_norm - predicted_norm), np.abs(predicted_norm))
    by_bin = {}
    for label, lo, hi in zip(lam_bin_labels(), LAM_BINS[:-1], LAM_BINS[1:]):
        mask = keep & (lam >= lo) & (lam < hi) & np.isfinite(rel)
        by_bin[label] = float(np.median(rel[mask])) if np.any(mask) else None
    mask = keep & np.isfinite(rel)
    return {"median": float(np.median(rel[mask])) if np.any(mask) else None, "by_lambda": by_bin, "per_direction": rel}


def calibrate_eta_tau(schedule: Schedule, lam: np.ndarray, cfg: "ImagesStudyConfig", plan_rows: list[dict], teacher_norm: np.ndarray,
                      grid: ArrayLike | None = None) -> dict:
    r"""Gradient-flow :math:`\eta\tau` that best fits the measured gains of the network recipe.

    The measured gain is first mapped onto the Gaussian teacher's scale, :math:`\hat g_i = g_i T_i / g^T_i`
    (``teacher_norm`` :math:`= g^T_i/T_i`), then :math:`\sum_{\text{plans}}\sum_i \|v_{N,i}\|^2 (\hat g_i - S_i)^2`
    (the model's W2 weighting, directions with :math:`\lambda_i > 10^{-4}`) is minimised over a log grid.

    Parameters
    ----------
    schedule : Schedule
        The teacher's grid.
    lam : ndarray (d,)
        Eigenvalues of the data.
    cfg : ImagesStudyConfig
        Supplies ``init`` and ``input`` of the model.
    plan_rows : list of dict
        Each with ``segments``, ``plan`` (text) and the measured ``gain`` (d,).
    teacher_norm : ndarray (d,)
        :math:`g^T_i/T_i`, the measured teacher gain over the Gaussian one.
    grid : array-like, optional
        Candidate values (default 61 points geometric from 1e-3 to 1e3).

    Returns
    -------
    dict
        ``eta_tau`` (the best value), ``sse``, ``at_grid_edge``, ``grid`` and ``sse_grid``.
    """
    grid = np.geomspace(1e-3, 1e3, 61) if grid is None else np.asarray(grid, dtype=float)
    keep = lam > LAM_FLOOR
    best = (math.inf, None)
    errors = []
    for value in grid:
        sse = 0.0
        for m in sorted({r["segments"] for r in plan_rows}):
            problem = Problem(schedule, lam, model=model_for("network", cfg, float(value)), segments=m)
            for row in (r for r in plan_rows if r["segments"] == m):
                pred = evaluate_plan(problem, parse_plan(row["plan"], schedule.steps)).student
                meas = ratio(row["gain"], teacher_norm)
                sse += float(np.nansum((problem.scale * (meas - pred) ** 2)[keep]))
        errors.append(sse)
        if sse < best[0]:
            best = (sse, float(value))
    return {"eta_tau": best[1], "sse": best[0], "at_grid_edge": bool(best[1] in (float(grid[0]), float(grid[-1]))),
            "grid": grid.tolist(), "sse_grid": errors}


def summarize(result: dict) -> dict:
    """The short summary of a study result.

    Parameters
    ----------
    result : dict
        What :func:`~experiments.images.study.run_images_study` has assembled (teachers, plan and
        trajectory students, rankings, breakdown, calibration, data reference).

    Returns
    -------
    dict
        ``teachers``, ``data_reference``, ``students``, ``rank_correlation``, ``breakdown`` and
        ``calibrated_eta_tau``.
    """
    teachers = {}
    for kind, info in result["teachers"].items():
        m = info["metrics"]
        teachers[kind] = {k: m.get(k) for k in ("fd_pixels_test", "fd_features_test", "classifier_score", "coverage")}
        teachers[kind]["memorized_fraction"] = m["memorization"]["fraction"]
        teachers[kind]["memorization_median_ratio"] = m["memorization"]["median_ratio"]
        teachers[kind]["linear_share"] = info["linearity"]["summary"]["linear_share"]
        teachers[kind]["gaussian_teacher_share"] = info["linearity"]["summary"]["gaussian_teacher_share"]
        teachers[kind]["median_rel_gain_vs_gaussian"] = info["linearity"]["summary"]["median_rel_gain_error"]
    students = []
    for r in result["plan_students"]:
        students.append({"teacher": r["teacher"], "recipe": r["recipe"], "segments": r["segments"], "name": r["name"], "plan": r["plan"],
                         "w2_predicted": r["w2_predicted"], "w2_cov": r["w2"]["w2_cov"], "w2_full": r["w2"]["w2_full"],
                         "fd_pixels_test": r["metrics"]["fd_pixels_test"], "fd_features_test": r["metrics"].get("fd_features_test"),
                         "fd_features_teacher": r["metrics"].get("fd_features_teacher"), "classifier_score": r["metrics"].get("classifier_score"),
                         "median_relative_gain_error": r["relative_gain_error"]["median"]})
    for r in result["trajectory_students"]:
        students.append({"teacher": r["teacher"], "recipe": r["method"], "segments": r["segments"], "name": r["method"], "plan": None,
                         "w2_predicted": None, "w2_cov": r["w2"]["w2_cov"], "w2_full": r["w2"]["w2_full"],
                         "fd_pixels_test": r["metrics"]["fd_pixels_test"], "fd_features_test": r["metrics"].get("fd_features_test"),
                         "fd_features_teacher": r["metrics"].get("fd_features_teacher"), "classifier_score": r["metrics"].get("classifier_score"),
                         "closest_plan": r["closest_plan"]})
    ranks = {f"{e['teacher']}-{e['recipe']}-M{e['segments']}": {"spearman_w2_cov": e["w2_cov"]["spearman"], "kendall_w2_cov": e["w2_cov"]["kendall"],
                                                                   "spearman_w2_gain": e["w2_gain"]["spearman"], "winner_agrees": e["w2_cov"]["winner_agrees"],
                                                                   "plans": e["w2_cov"]["n"]} for e in result["rankings"]}
    calibrated = {key: {"law": c["law"], "floors": c["floors"], "pilot_cost_share": c["pilot_cost_share"],
                        "spearman_pooled": c["pooled"]["spearman"],
                        "by_segments": {m: {"spearman": e["spearman"], "predicted_best_rank": e["predicted_best_rank"],
                                            "recommended": e.get("recommended")} for m, e in c["by_segments"].items()}}
                  for key, c in result.get("calibrated_prediction", {}).items()}
    return {"teachers": teachers, "data_reference": {k: result["data_reference"].get(k) for k in ("fd_pixels_test", "fd_features_test", "classifier_score")},
            "students": students, "rank_correlation": ranks,
            "breakdown": result["breakdown"], "calibrated_eta_tau": {k: v["eta_tau"] for k, v in result["calibration"].items()},
            "calibrated_prediction": calibrated}
