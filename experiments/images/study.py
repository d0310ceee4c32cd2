r"""Distillation on digits: plan students and SCoT/TraFlow students against the model's predictions.

:func:`run_images_study` ``(config) -> dict``:

1. **Data and teachers.** The dataset (8x8 digits by default), the Gaussian fit
   :math:`\mathcal N(\mu, U\operatorname{diag}(\lambda)U^\top)` of its training split, the Gaussian teacher
   and/or the trained MLP teacher (from ``checkpoint``, or trained into ``<out>/teacher``, resumable),
   both sampled with DDIM on the ``schedule`` grid of ``N`` steps. Each teacher is evaluated on
   ``n_eval`` fixed inputs :math:`z_N` (the same for every student of that teacher: common random
   numbers): Fréchet distances to held-out images (pixels and classifier features), classifier
   score, class coverage, memorisation, and its linearity (:mod:`~experiments.images.linearity`).
2. **Plan students.** For every teacher, student recipe, number of student steps ``M`` and plan
   (canonical kinds, the optimal plan of the model for the digits spectrum, and random plans), the
   plan is executed by :class:`~experiments.images.distill.ImagePlanExecutor`. Recipes:

   * ``linear`` — affine students, plain SGD (step ``lr_linear``, ``node_steps_linear`` updates per node).
     Against the Gaussian teacher the model's ``training='gd'`` prediction with the same step and count
     is exact in expectation; the model for this recipe is that ``gd`` model.
   * ``network`` — denoiser students (a copy of the teacher's network used for one DDIM update),
     Adam (``lr_network``, ``node_steps_network``). No closed form; the model for this recipe is
     gradient flow with :math:`\eta\tau` = ``eta_tau``, and a calibrated :math:`\eta\tau` is fitted to
     the measured gains afterwards.

3. **SCoT / TraFlow students** (:mod:`~experiments.images.trajectory`), sampled in ``M`` steps.
4. **Readout and comparison.** Per student: measured per-direction gains (``docs/theory.md`` §7) next to the
   model's :math:`S_i` for that plan; W2 to the teacher's samples — ``w2_cov`` (Gaussian W2 between
   the fitted covariances, the part the centred model describes), ``w2_full`` (with the means,
   :math:`\sqrt{\mathrm{FD}}`), ``w2_gain`` (the model's formula :math:`\sqrt{\sum_i \|v_{N,i}\|^2 (g_i - g^T_i)^2}`
   with measured gains); Fréchet distances to held-out images; classifier score and coverage. The
   model's W2 ranking of the plans next to the measured ranking (Spearman and Kendall per teacher,
   recipe and ``M``, and pooled over ``M``); where the prediction breaks: the relative error of the
   teacher-normalised gains :math:`g_i/g^T_i` against :math:`S_i/T_i` by eigenvalue bin and by ``M``.

Results: ``<out>/images.json`` (configuration, every number, a provenance block with the device), figures ``<out>/images_grids_<teacher>``,
``<out>/images_gains_<teacher>``, ``<out>/images_predicted_vs_measured``, ``<out>/images_linearity``
(PDF + PNG + JSON each); finished units are cached in ``<out>/units/`` by
:func:`~experiments.images.study_units.unit_cache` (a rerun resumes; changed code recomputes).
``quick=True``: CPU, well under two minutes including the teacher's training.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from opmerge.errors import InputError, InputTypeError
from opmerge.io import provenance, to_jsonable, write_json
from opmerge.objective import Problem, evaluate_plan
from opmerge.parallel import ExecutorConfig, make_executor, run_cached
from opmerge.plans import Plan, format_plan, parse_plan, random_plan
from opmerge.schedules import make_schedule

from .._torch import derive_seed, resolve_device, to_numpy
from ._records import device_label
from .study_config import DEFAULT_OUT, RECIPES, RESULT_NAME, TEACHERS, ImagesStudyConfig
from .checkpoints import CHECKPOINT_NAME, read_checkpoint
from .comparison import LAM_BINS, LAM_FLOOR, calibrate_eta_tau, lam_bin_labels, model_for, rank_agreement, ratio, relative_gain_errors, summarize
from .data import load_dataset
from .figures import study_figures
from .metrics import evaluate_samples, load_or_train_classifier
from .prediction import RECOMMENDED, read_costs, recommended_plan, score_predictions
from ..calibration import pilot_cost_share
from ..studies._common import resolve_plans
from .study_units import TeacherContext, build_teachers, compute_student_unit, evaluate_teacher, plan_unit, trajectory_unit, unit_cache

__all__ = ["ImagesStudyConfig", "run_images_study", "random_plan", "ratio", "DEFAULT_OUT", "RESULT_NAME", "RECIPES", "TEACHERS",
           "LAM_BINS", "LAM_FLOOR"]


# =============================================================================================
# plans
# =============================================================================================


def _plans_for(cfg: ImagesStudyConfig, problem: Problem, recipe: str, teacher_kind: str) -> list[tuple[str, Plan]]:
    out = resolve_plans(cfg.plans, problem, skip_other_segments=True)
    rng = np.random.default_rng(derive_seed(cfg.seed, "random-plans", problem.segments) % 2**63)
    seen = {format_plan(p) for _, p in out}
    tries = 0
    added = 0
    while added < cfg.random_plans and tries < 200:
        tries += 1
        plan = random_plan(problem.steps, problem.segments, rng)
        if format_plan(plan) not in seen:
            seen.add(format_plan(plan))
            out.append((f"random{added + 1}", plan))
            added += 1
    return out


def _plan_sets(cfg: ImagesStudyConfig, schedule, lam: np.ndarray, teachers: dict, costs) -> dict:
    """``{kind: {recipe: {M: (problem, [(name, plan)], recommendation or None)}}}``: every plan student of the study.

    With a cost model the network recipe's plans at each ``M`` end with the calibrated planner's
    optimum (the recommended plan, measured beside the study's plans).
    """
    out: dict = {}
    for kind in teachers:
        for recipe in [r for t, r in cfg.recipes_by_teacher if t == kind]:
            for m in cfg.segments:
                problem = Problem(schedule, lam, model=model_for(recipe, cfg), segments=m)
                named = _plans_for(cfg, problem, recipe, kind)
                recommendation = None
                if costs is not None and recipe == "network":
                    plan_r, recommendation = recommended_plan(costs, schedule, lam, m, init=cfg.init, input=cfg.input)
                    named.append((RECOMMENDED, plan_r))
                out.setdefault(kind, {}).setdefault(recipe, {})[m] = (problem, named, recommendation)
    return out


def _unit_cost(cfg: ImagesStudyConfig, key: tuple) -> float:
    """A unit's estimated training cost, to hand the longest units out first (the order changes no result).

    A plan student: per merge node, updates x (its children's evaluations + 3 for the student's
    forward and backward), which predicts the digits study's network units to R^2 = 0.97 (docs/parallel.md);
    affine students (``linear``) cost about a tenth of a network evaluation. A trajectory student:
    its updates x 10 evaluations (several network passes per pair, measured 4-6x the longest plan).
    """
    if key[0] == "trajectory":
        return 10.0 * cfg.traj_steps
    recipe, text = key[2], key[3]
    evaluations = sum(len(node.children) + 3 for node in parse_plan(text, cfg.steps).merge_nodes())
    if recipe == "network":
        return float(cfg.node_steps_network * evaluations)
    return 0.1 * cfg.node_steps_linear * evaluations


def run_images_study(config: ImagesStudyConfig | dict | None = None, *, executor: ExecutorConfig | str | None = None, **overrides) -> dict:
    """Run the image study (module docstring) and return its result (also written to ``<out>/images.json``).

    Parameters
    ----------
    config : ImagesStudyConfig or dict, optional
    executor : ExecutorConfig or str, optional
        What trains the student units (:mod:`opmerge.parallel`: ``local``, the default, ``process``
        or ``ray``). Every unit runs with this process's torch thread count, whichever engine runs
        it, so the numbers do not depend on the choice (on the CPU, bit for bit).
    **overrides : fields of :class:`ImagesStudyConfig`
    """
    if config is None:
        values: dict = {}
    elif isinstance(config, ImagesStudyConfig):
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise InputTypeError(f"config must be an ImagesStudyConfig, a dict or None, got {type(config).__name__}")
    values.update(overrides)
    cfg = ImagesStudyConfig(**values).resolved()
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    _check_checkpoint(cfg)  # a damaged teacher file is refused before anything is written
    costs = read_costs(cfg.costs, cfg.steps) if cfg.costs is not None else None
    cache = unit_cache(out)
    dataset = load_dataset(cfg.data, seed=0)
    schedule = make_schedule(cfg.schedule, cfg.steps)
    classifier, classifier_info = (load_or_train_classifier(dataset, out / "cache") if dataset.has_labels else (None, None))
    teachers = build_teachers(cfg, dataset, schedule, device)
    any_teacher = next(iter(teachers.values()))[0]
    lam = np.array(any_teacher.fit.lam)
    data_reference = evaluate_samples(dataset.train, dataset, classifier, seed=cfg.seed, check_memorization=False)

    result: dict = {"study": "images", "config": cfg.to_dict(), "dataset": dataset.to_dict(), "lam": lam,
                    "classifier": classifier_info, "data_reference": data_reference, "teachers": {}, "plan_students": [],
                    "trajectory_students": [], "rankings": [], "breakdown": [], "calibration": {}, "calibrated_prediction": {}}
    # the teachers' units (here), then every student unit through the executor, then the assembly
    contexts: dict[str, TeacherContext] = {}
    teacher_units: dict[str, dict] = {}
    for kind, (teacher, ident, train_info) in teachers.items():
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "eval-inputs"))
        z = teacher.noise_sample(cfg.n_eval, gen)
        teacher_units[kind] = evaluate_teacher(cfg, teacher, z, dataset, classifier, cache, ident)
        contexts[kind] = TeacherContext(cfg, teacher, ident, z, to_numpy(teacher.sample(z)), dataset, classifier,
                                        np.asarray(teacher_units[kind]["linearity"]["gain"]), torch.get_num_threads())
    teacher_counts = {"cached": cache.hits, "computed": cache.misses}
    plan_sets = _plan_sets(cfg, schedule, lam, teachers, costs)
    units = {}
    for kind, by_recipe in plan_sets.items():
        for recipe, by_m in by_recipe.items():
            for m, (problem, named, _) in by_m.items():
                for name, plan in named:
                    units.setdefault(("plan", kind, recipe, format_plan(plan)), plan_unit(contexts[kind], recipe, plan))
        for method in cfg.trajectory:
            units[("trajectory", kind, method)] = trajectory_unit(contexts[kind], method)
    order = sorted(units, key=lambda key: _unit_cost(cfg, key), reverse=True)  # longest first: workers finish together
    with make_executor(executor) as engine:
        computed, unit_stats = run_cached(engine, cache, compute_student_unit, [units[key] for key in order], shared=contexts,
                                          progress=cfg.progress, desc="images study")
    done = dict(zip(order, computed))
    for kind, (teacher, ident, train_info) in teachers.items():
        unit = teacher_units[kind]
        teacher_gain = contexts[kind].teacher_gain
        gauss_gain = np.asarray(unit["linearity"]["predicted"])
        result["teachers"][kind] = {"identity": ident, "training": train_info, **unit}
        for recipe in [r for t, r in cfg.recipes_by_teacher if t == kind]:
            rows = []
            recommendations = {}
            for m in cfg.segments:
                problem, named, recommendation = plan_sets[kind][recipe][m]
                if recommendation is not None:
                    recommendations[str(m)] = recommendation
                for name, plan in named:
                    text = format_plan(plan)
                    unit_p = done[("plan", kind, recipe, text)]
                    ev = evaluate_plan(problem, plan)
                    rel = relative_gain_errors(ratio(unit_p["gain"], teacher_gain), ratio(ev.student, problem.teacher), lam)
                    rows.append({"teacher": kind, "recipe": recipe, "segments": m, "name": name, "plan": text, "n_merges": plan.n_merges,
                                 "w2_predicted": ev.w2, "student_predicted": ev.student, "gain": unit_p["gain"],
                                 "gain_low": unit_p["gain_low"], "gain_high": unit_p["gain_high"], "w2": unit_p["w2"],
                                 "metrics": unit_p["metrics"], "linearity": unit_p["linearity"], "relative_gain_error": rel,
                                 "train_seconds": unit_p["train_seconds"], "records": unit_p["records"], "samples": unit_p["samples"]})
            result["plan_students"].extend(rows)
            if costs is not None and recipe == "network":
                result["calibrated_prediction"][f"{kind}-{recipe}"] = {
                    **score_predictions(rows, costs, schedule, lam, init=cfg.init, input=cfg.input,
                                        pilot_plans=tuple(costs.report.get("pilot_plans", ()))),
                    "recommendations": recommendations, "cost_model": cfg.costs,
                    "pilot_cost_share": pilot_cost_share(list(costs.report.get("pilot_plans", ())), 1,
                                                         sorted({(r["plan"]) for r in rows}), 1)}
            rows = [r for r in rows if r["name"] != RECOMMENDED]  # the comparisons below use the study's own plans
            # rankings: unique plans per M, and pooled
            for m in list(cfg.segments) + ["all"]:
                sel = [r for r in rows if m == "all" or r["segments"] == m]
                uniq = {}
                for r in sel:
                    uniq.setdefault((r["segments"], r["plan"]), r)
                sel = list(uniq.values())
                pred = [r["w2_predicted"] for r in sel]
                entry = {"teacher": kind, "recipe": recipe, "segments": m, "plans": [r["plan"] for r in sel], "names": [r["name"] for r in sel],
                         "w2_predicted": pred}
                for key in ("w2_cov", "w2_full", "w2_gain"):
                    meas = [r["w2"][key] for r in sel]
                    entry[f"measured_{key}"] = meas
                    entry[key] = rank_agreement(meas, pred)
                entry["fd_features_test"] = [r["metrics"].get("fd_features_test") for r in sel]
                result["rankings"].append(entry)
            for m in cfg.segments:
                sel = [r for r in rows if r["segments"] == m]
                per_bin = {}
                for label in lam_bin_labels():
                    vals = [r["relative_gain_error"]["by_lambda"][label] for r in sel if r["relative_gain_error"]["by_lambda"][label] is not None]
                    per_bin[label] = float(np.median(vals)) if vals else None
                result["breakdown"].append({"teacher": kind, "recipe": recipe, "segments": m, "merged_steps_per_segment": cfg.steps / m,
                                            "median_relative_gain_error": float(np.median([r["relative_gain_error"]["median"] for r in sel])),
                                            "by_lambda": per_bin})
            if recipe == "network" and rows:
                cal = calibrate_eta_tau(schedule, lam, cfg, rows, ratio(teacher_gain, gauss_gain))
                ranks = {}
                for m in list(cfg.segments) + ["all"]:
                    sel = {}
                    for r in rows:
                        if m == "all" or r["segments"] == m:
                            sel.setdefault((r["segments"], r["plan"]), r)
                    pred = []
                    for (mm, text), r in sel.items():
                        pr = Problem(schedule, lam, model=model_for("network", cfg, cal["eta_tau"]), segments=mm)
                        pred.append(evaluate_plan(pr, parse_plan(text, cfg.steps)).w2)
                    ranks[str(m)] = rank_agreement([r["w2"]["w2_cov"] for r in sel.values()], pred)
                cal["rankings_w2_cov"] = ranks
                result["calibration"][f"{kind}-{recipe}"] = cal
        for method in cfg.trajectory:
            unit_t = done[("trajectory", kind, method)]
            for m in cfg.segments:
                entry = unit_t["by_steps"][str(m)]
                model = model_for("network", cfg)
                problem = Problem(schedule, lam, model=model, segments=m)
                distances = {}
                for name, plan in _plans_for(replace(cfg, random_plans=0), problem, "network", kind):
                    s_norm = ratio(evaluate_plan(problem, plan).student, problem.teacher)
                    g_norm = ratio(entry["gain"], teacher_gain)
                    keep = (lam > LAM_FLOOR) & np.isfinite(s_norm) & np.isfinite(g_norm)
                    distances[name] = float(np.sqrt(np.mean((g_norm - s_norm)[keep] ** 2)))
                closest = min(distances, key=distances.get) if distances else None
                result["trajectory_students"].append({
                    "teacher": kind, "method": method, "segments": m, "w2": entry["w2"], "metrics": entry["metrics"], "gain": entry["gain"],
                    "gain_low": entry["gain_low"], "gain_high": entry["gain_high"], "linearity": entry["linearity"],
                    "plan_distance": distances, "closest_plan": closest, "train_seconds": unit_t["train_seconds"],
                    "final_losses": unit_t["history"], "samples": entry["samples"]})
    result["summary"] = summarize(result)
    result["unit_cache"] = {"cached": teacher_counts["cached"] + unit_stats["cached"],
                            "computed": teacher_counts["computed"] + unit_stats["computed"], "executor": unit_stats["executor"]}
    try:
        result["figures"] = study_figures(result, dataset, out)
    except ImportError as exc:  # matplotlib missing: the numbers still count
        result["figures"] = {"error": f"no figures ({exc})"}
    _check_figure_names(result["figures"], out / RESULT_NAME)
    result["elapsed_s"] = time.perf_counter() - started
    result = to_jsonable(result)
    result["result_file"] = str(out / RESULT_NAME)
    result["provenance"] = provenance(device=device_label(device), config=result["config"])
    write_json(out / RESULT_NAME, result)
    return result


def _check_checkpoint(cfg: ImagesStudyConfig) -> None:
    """Read and check the trained teacher's checkpoint (``cfg.checkpoint``, or the one a rerun resumes) up front.

    Parameters
    ----------
    cfg : ImagesStudyConfig
        The resolved configuration.

    Raises
    ------
    InputError
        When the file is refused by :func:`~experiments.images.checkpoints.read_checkpoint` (naming it).
    """
    if "trained" not in cfg.teachers:
        return
    if cfg.checkpoint is not None:
        path = Path(cfg.checkpoint)
        read_checkpoint(path / CHECKPOINT_NAME if path.is_dir() else path)
        return
    resumed = Path(cfg.out) / "teacher" / CHECKPOINT_NAME
    if resumed.is_file():
        try:
            read_checkpoint(resumed)
        except InputError as exc:
            raise InputError(f"{exc} (the study would resume it: delete it to train the teacher again)") from None


def _check_figure_names(figures: dict, result_file: Path) -> None:
    """No figure file may take the result file's name (the figures' JSON would overwrite the results)."""
    for paths in figures.values():
        if isinstance(paths, dict) and any(Path(p) == result_file for p in paths.values()):
            raise RuntimeError(f"a figure of the image study would overwrite its result file {result_file}")
