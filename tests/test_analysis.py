"""Tests for analysis.classify and analysis.phase: families, sweeps, thresholds, cache, parallelism.

Independent routes: brute force over every plan (N <= 6) for the optimum, direct solves on both
sides of every located threshold, a synthetic step function for the bisection, and counting
solver calls for the cache.
"""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from hypothesis import given, settings

import opmerge.analysis.phase as phase
from opmerge.analysis import (
    FAMILIES,
    canonical_w2,
    classify_plan,
    family_from_values,
    family_of_solution,
    locate_transition,
    segment_family,
    sweep_lambda,
    sweep_lambda_eta,
    sweep_lambda_steps,
    sweep_two_directions,
)
from opmerge.analysis._cache import PointCache, config_key, write_json_atomic
from opmerge import Problem, StudentModel, brute_force, canonical_plan, make_schedule, parse_plan, solve
from opmerge.plans import CANONICAL_KINDS, canonical_tree, tree_bottom, tree_top

try:  # tests/ is not a package: pytest puts it on sys.path ("prepend" import mode)
    from strategies import plans
except ModuleNotFoundError:  # tests/ became a package
    from tests.strategies import plans

fast = settings(max_examples=150, deadline=None)


def _problem(lam, steps=6, **model):
    return Problem(make_schedule("vp-cosine", steps), lam, model=StudentModel(**model))


# ------------------------------------------------------------------------------------------
# classify_plan
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CANONICAL_KINDS)
@pytest.mark.parametrize("segments", [1, 2])
def test_canonical_plans_classify_as_their_kind(kind, segments):
    plan = canonical_plan(kind, 8, segments)
    assert classify_plan(plan).family == kind


def test_small_ambiguous_cases_resolve_in_order():
    # two leaves: every kind is the same tree -> vanilla; three-leaf PD is the BOOT chain -> boot
    for kind in CANONICAL_KINDS:
        assert classify_plan(canonical_plan(kind, 2)).family == "vanilla"
    assert classify_plan(canonical_plan("pd", 3)).family == "boot"
    assert classify_plan(canonical_plan("cd", 3)).family == "cd"
    # all segments single leaves (M = N): vanilla
    assert classify_plan(parse_plan("3 | 2 | 1")).family == "vanilla"


@pytest.mark.parametrize(
    "text",
    ["((6 5) 4 (3 (2 1)))", "((6 5) 4 3 2 1)", "(((6 5) 4) 3 2 1)", "((6 5) 4) | (3 (2 1))"],
)
def test_mixed_plans(text):
    plan = parse_plan(text)
    assert classify_plan(plan).family == "mixed"


def test_mixed_across_segments_and_segment_families():
    plan = parse_plan("((6 5) 4) | (3 2 1)")  # BOOT segment then a vanilla segment
    shape = classify_plan(plan)
    assert shape.family == "mixed"
    assert shape.segment_families == ("boot", "vanilla")
    # non-uniform boundaries still classify per segment
    assert classify_plan(parse_plan("(((6 5) 4) 3) | ((2 1))".replace("((2 1))", "(2 1)"))).family == "boot"


def test_shape_numbers():
    boot = classify_plan(canonical_plan("boot", 6))
    assert (boot.depth, boot.n_merges, boot.mean_arity, boot.skew) == (5, 5, 2.0, 1.0)
    cd = classify_plan(canonical_plan("cd", 6))
    assert (cd.depth, cd.n_merges, cd.mean_arity, cd.skew) == (5, 5, 2.0, -1.0)
    van = classify_plan(canonical_plan("vanilla", 6))
    assert (van.depth, van.n_merges, van.mean_arity, van.skew) == (1, 1, 6.0, 0.0)
    pd = classify_plan(canonical_plan("pd", 8))
    assert (pd.depth, pd.n_merges, pd.mean_arity, pd.skew) == (3, 7, 2.0, 0.0)
    mixed = classify_plan(parse_plan("((6 5) 4 (3 (2 1)))"))
    # nodes: (6 5) leaf-only, (2 1) leaf-only, (3 (2 1)) right-nested, root: first and last are nodes
    assert mixed.n_merges == 4 and mixed.mean_arity == pytest.approx(9 / 4)
    assert mixed.skew == pytest.approx(-1 / 2)
    leaves_only = classify_plan(parse_plan("3 | 2 | 1"))
    assert (leaves_only.n_merges, leaves_only.mean_arity, leaves_only.skew, leaves_only.depth) == (0, 0.0, 0.0, 0)
    assert json.loads(json.dumps(boot.to_dict()))["family"] == "boot"


@fast
@given(plans(max_steps=9))
def test_classify_matches_canonical_rebuild(plan):
    shape = classify_plan(plan)
    assert shape.family in FAMILIES
    assert -1.0 <= shape.skew <= 1.0
    assert shape.segments == plan.n_segments and shape.n_merges == plan.n_merges
    matching = [
        k for k in CANONICAL_KINDS if all(canonical_tree(k, tree_top(s), tree_bottom(s)) == s for s in plan.segments)
    ]
    assert shape.family == (matching[0] if matching else "mixed")
    assert all(segment_family(s) in FAMILIES for s in plan.segments)


def test_classify_rejects_non_plans():
    with pytest.raises(TypeError, match="plan"):
        classify_plan("(2 1)")


# ------------------------------------------------------------------------------------------
# family_of_solution (THEORY.md §6), against brute force
# ------------------------------------------------------------------------------------------


def _brute_family(problem):
    best = brute_force(problem)[0].w2
    sol = solve(problem)
    return family_from_values(canonical_w2(problem), best, sol.tol)


@pytest.mark.parametrize(
    "lam, expected",
    [(0.05, "boot"), (0.3, "boot"), (1.0, "boot"), (1.5, "mixed"), (3.0, "vanilla"), (10.0, "vanilla"), (100.0, "vanilla")],
)
def test_theory_section6_families_warm(lam, expected):
    problem = _problem(lam)
    solution = solve(problem)
    assert family_of_solution(solution) == expected
    assert _brute_family(problem) == expected


@pytest.mark.parametrize("init", ["ddim", "zero"])
@pytest.mark.parametrize("lam", [0.05, 1.0, 1.5, 10.0])
def test_theory_section6_no_transition_without_warm_start(init, lam):
    assert family_of_solution(solve(_problem(lam, init=init))) == "vanilla"


def test_family_ties_break_toward_vanilla_boot_cd_pd():
    problem = _problem(1.0)  # boot optimal, vanilla a little worse
    w2 = canonical_w2(problem)
    assert w2["boot"] < w2["vanilla"]
    fake = types.SimpleNamespace(problem=problem, w2=w2["boot"], tol=0.0)
    assert family_of_solution(fake) == "boot"
    # widen the tolerance so that vanilla ties with the optimum: the earlier kind wins
    fake.tol = w2["vanilla"] - w2["boot"]
    assert family_of_solution(fake) == "vanilla"
    # exact ties (N = 2: every canonical plan is the same tree)
    sol2 = solve(_problem(0.3, steps=2))
    assert family_of_solution(sol2) == "vanilla"
    # nothing within tolerance -> mixed
    assert family_from_values({"vanilla": 2.0, "boot": 3.0, "cd": 4.0, "pd": 5.0}, 1.0, 0.5) == "mixed"
    assert family_from_values({"vanilla": 2.0, "boot": 3.0, "cd": 1.0, "pd": 1.0}, 1.0, 0.0) == "cd"
    with pytest.raises(ValueError, match="tol"):
        family_from_values({}, 1.0, -1.0)
    with pytest.raises(TypeError, match="Solution"):
        family_of_solution(object())


# ------------------------------------------------------------------------------------------
# locate_transition
# ------------------------------------------------------------------------------------------


def test_locate_transition_synthetic_step():
    calls = []

    def family_at(x):
        calls.append(x)
        return "boot" if x < 1.2345 else "vanilla"

    t = locate_transition(1.0, 2.0, "boot", "vanilla", family_at, tol=1e-4)
    assert t["lam_lo"] < 1.2345 <= t["lam_hi"]
    assert t["lam_hi"] - t["lam_lo"] <= 1e-4 * t["lam_hi"]
    assert abs(t["lam"] - 1.2345) <= 1e-4 * 1.2345
    assert (t["from"], t["to"]) == ("boot", "vanilla") and t["evaluations"] == len(calls)


def test_locate_transition_three_families_finds_first_change():
    def family_at(x):
        return "boot" if x < 1.1 else ("mixed" if x < 1.3 else "vanilla")

    t = locate_transition(1.0, 2.0, "boot", "vanilla", family_at, tol=1e-3)
    assert t["to"] == "mixed" and t["lam_lo"] < 1.1 <= t["lam_hi"]
    with pytest.raises(ValueError, match="differ"):
        locate_transition(1.0, 2.0, "boot", "boot", family_at)
    with pytest.raises(ValueError, match="lam_a < lam_b"):
        locate_transition(2.0, 1.0, "boot", "vanilla", family_at)


# ------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------


def test_sweep_lambda_reproduces_section6_and_thresholds():
    sweep = sweep_lambda([0.3, 1.5, 10.0], schedule="vp-cosine", steps=6, tol=1e-3, progress=False, workers=1)
    assert sweep.family == ("boot", "mixed", "vanilla")
    assert sweep.exact.all()
    assert [(t["from"], t["to"]) for t in sweep.thresholds] == [("boot", "mixed"), ("mixed", "vanilla")]
    for t in sweep.thresholds:
        assert t["lam_lo"] < t["lam"] < t["lam_hi"]
        assert t["lam_hi"] - t["lam_lo"] <= 1e-3 * t["lam_hi"]
        # independent check: solve directly on both sides of the bracket
        assert family_of_solution(solve(_problem(t["lam_lo"]))) == t["from"]
        assert family_of_solution(solve(_problem(t["lam_hi"]))) == t["to"]
    # canonical curves are the plain evaluations
    for k, lam in enumerate(sweep.lam):
        assert sweep.canonical["boot"][k] == canonical_w2(_problem(lam))["boot"]
    d = json.loads(json.dumps(sweep.to_dict()))
    assert d["family"] == list(sweep.family) and len(d["thresholds"]) == 2
    assert [r["family"] for r in sweep.family_ranges()] == ["boot", "mixed", "vanilla"]
    assert "boot -> mixed" in sweep.summary()


def test_sweep_lambda_ddim_init_has_no_transition():
    sweep = sweep_lambda(np.geomspace(0.05, 100, 8), schedule="vp-cosine", steps=6, model=StudentModel(init="ddim"), progress=False, workers=1)
    assert set(sweep.family) == {"vanilla"} and sweep.thresholds == ()


def test_sweep_input_checks():
    with pytest.raises(ValueError, match="strictly increasing"):
        sweep_lambda([1.0, 0.5], schedule="vp-cosine", steps=4, progress=False)
    with pytest.raises(ValueError, match="steps"):
        sweep_lambda([1.0], schedule="vp-cosine", progress=False)
    with pytest.raises(ValueError, match="workers"):
        sweep_lambda([1.0], schedule="vp-cosine", steps=4, workers=0, progress=False)
    with pytest.raises(ValueError, match="tol"):
        sweep_lambda([1.0], schedule="vp-cosine", steps=4, tol=2.0, progress=False)
    with pytest.raises(TypeError, match="schedule"):
        sweep_lambda([1.0], schedule=3, steps=4, progress=False)


def _count_solves(monkeypatch):
    calls = {"n": 0}
    real = phase.solve

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(phase, "solve", counting)
    return calls


def test_cache_resume_recomputes_nothing(tmp_path, monkeypatch):
    lams = [0.3, 0.9, 1.5, 4.0, 10.0]
    calls = _count_solves(monkeypatch)
    first = sweep_lambda(lams, schedule="vp-cosine", steps=6, cache_dir=tmp_path, progress=False, workers=1)
    n_first = calls["n"]
    assert n_first > len(lams)  # grid plus the bisection points
    assert first.stats["computed"] == len(lams) and first.stats["cached"] == 0
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == n_first
    second = sweep_lambda(lams, schedule="vp-cosine", steps=6, cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == n_first  # nothing solved again, thresholds included
    assert second.stats["cached"] == len(lams) and second.stats["computed"] == 0
    assert second.to_dict() == first.to_dict()
    # a different configuration is a different key
    sweep_lambda(lams[:1], schedule="vp-cosine", steps=6, model=StudentModel(eta_tau=0.7), cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == n_first + 1


def test_cache_file_format_and_corruption(tmp_path):
    cache = PointCache(tmp_path)
    config = {"a": 1, "b": [0.5, 2.0]}
    assert cache.load(config) is None
    cache.store(config, {"w2": 0.125})
    assert cache.load(config) == {"w2": 0.125}
    path = cache.path_for(config_key(config))
    stored = json.loads(path.read_text())
    assert stored["config"] == config and stored["key"] == config_key(config)
    assert config_key({"b": [0.5, 2.0], "a": 1}) == config_key(config)  # key order does not matter
    path.write_text("{ not json")
    assert cache.load(config) is None  # unreadable file is a miss
    assert (cache.hits, cache.writes) == (1, 1)
    assert not [p for p in tmp_path.rglob("*.tmp")]
    write_json_atomic(tmp_path / "x.json", {"v": np.float64(1.5), "arr": np.arange(3)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": 1.5, "arr": [0, 1, 2]}


def test_parallel_equals_serial(monkeypatch):
    monkeypatch.setattr(phase, "PARALLEL_MIN_SECONDS", 0.0)  # force the process pool
    lams = np.geomspace(0.2, 20.0, 12)
    serial = sweep_lambda(lams, schedule="vp-cosine", steps=7, workers=1, progress=False)
    parallel = sweep_lambda(lams, schedule="vp-cosine", steps=7, workers=2, progress=False)
    assert parallel.stats["parallel"] and not serial.stats["parallel"]
    assert parallel.to_dict() == serial.to_dict()
    grid_s = sweep_lambda_eta([0.3, 1.5, 10.0], [0.25, 1.0], schedule="vp-cosine", steps=6, workers=1, progress=False)
    grid_p = sweep_lambda_eta([0.3, 1.5, 10.0], [0.25, 1.0], schedule="vp-cosine", steps=6, workers=2, progress=False)
    assert grid_p.to_dict() == grid_s.to_dict()


def test_grid_sweeps_eta_and_steps():
    grid = sweep_lambda_eta([0.3, 1.5, 10.0], [0.5, 2.0], schedule="vp-cosine", steps=6, workers=1, progress=False)
    assert grid.family[0] == ("boot", "mixed", "vanilla")  # eta_tau = 0.5 row is THEORY.md §6
    assert grid.w2.shape == (2, 3) and grid.family_codes().shape == (2, 3)
    for r, eta in enumerate(grid.y):
        for c, lam in enumerate(grid.x):
            assert grid.w2[r, c] == solve(_problem(lam, eta_tau=float(eta))).w2
    assert all(len(row) >= 1 for row in grid.thresholds)
    steps = sweep_lambda_steps([0.3, 10.0], [4, 6], workers=1, progress=False, locate=False)
    assert steps.y.tolist() == [4, 6] and steps.family[1] == ("boot", "vanilla")
    assert steps.thresholds == ((), ())


def test_two_direction_sweep_matches_brute_force():
    grid = sweep_two_directions([0.3, 10.0], [0.3, 10.0], schedule="vp-cosine", steps=5, workers=1, progress=False)
    for r, lam2 in enumerate(grid.y):
        for c, lam1 in enumerate(grid.x):
            problem = Problem(make_schedule("vp-cosine", 5), [lam1, lam2], weights=[1.0, 1.0])
            best = brute_force(problem)[0].w2
            assert grid.w2[r, c] == pytest.approx(best, rel=1e-12, abs=1e-15)
    # equal eigenvalues: the joint problem is the one-direction problem
    assert grid.family[0][0] == "boot" and grid.family[1][1] == "vanilla"
    assert math.isfinite(float(grid.w2.max()))


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_cli_phase_json(tmp_path, capsys):
    from opmerge.analysis.cli import main

    code = main(["phase", "--steps", "6", "--points", "5", "--lam-min", "0.3", "--lam-max", "10", "--json", "--no-plot",
                 "--no-progress", "--workers", "1", "--out", str(tmp_path)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert out["family"][0] == "boot" and out["family"][-1] == "vanilla"
    assert len(out["lam"]) == len(out["w2"]) == 5
    assert [(t["from"], t["to"]) for t in out["thresholds"]][-1][1] == "vanilla"
    assert all({"lam", "from", "to"} <= t.keys() for t in out["thresholds"])
    assert out["config"]["schedule"]["steps"] == 6
    assert json.loads((tmp_path / "phase.json").read_text())["family"] == out["family"]


def test_cli_phase_table_and_usage_errors(tmp_path, capsys):
    from opmerge.analysis.cli import main
    from opmerge.cli_options import UsageError

    assert main(["phase", "--steps", "6", "--points", "4", "--no-progress", "--workers", "1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "boot" in text and "thresholds" in text
    assert (tmp_path / "phase_w2.png").is_file() and (tmp_path / "phase_w2.json").is_file()
    with pytest.raises(UsageError, match="lam-max"):
        main(["phase", "--lam-min", "3", "--lam-max", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["phase", "--points", "0"])


# ------------------------------------------------------------------------------------------
# figures (layout numbers; the pictures themselves are checked by eye)
# ------------------------------------------------------------------------------------------


def test_tree_layout_and_save_figure(tmp_path):
    from opmerge.analysis.plots import draw_plan_tree
    from opmerge.analysis.style import save_figure

    fig, data = draw_plan_tree("((4 3) 2) | 1")
    nodes = sorted((n["top"], n["bottom"], n["y"], n["x"]) for n in data["nodes"])
    # leaf n at x = N - n; node at height 1 + max child height, centred over first and last child
    assert nodes == [(4, 1, 2.0, 1.25), (4, 2, 1.0, 0.5)]
    assert [leaf["x"] for leaf in data["leaves"]] == [3.0, 2.0, 1.0, 0.0]
    assert data["segments"] == [[4, 1], [1, 0]] and data["family"] == "boot"
    paths = save_figure(fig, tmp_path / "tree", data, config={"n": 4}, close=True)
    payload = json.loads(paths["json"].read_text())
    assert payload["data"]["plan"] == "((4 3) 2) | 1" and payload["config"] == {"n": 4}
    assert paths["png"].read_bytes().startswith(b"\x89PNG") and paths["pdf"].read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_describe_plan():
    from opmerge.analysis import describe_plan

    assert describe_plan(parse_plan("((((6 5) 4) 3) 2) | 1")) == "BOOT 6..2 | step 1"
    assert describe_plan(canonical_plan("pd", 8, 2)) == "PD 8..5 | PD 4..1"
    assert describe_plan(parse_plan("((6 5) 4 (3 (2 1)))")) == "mixed 6..1"


@pytest.mark.slow
def test_demo_quick(tmp_path):
    from opmerge.analysis.demo import format_summary, run_demo

    summary = run_demo(tmp_path, quick=True, workers=1, progress=False)
    assert [j["segments"] for j in summary["joint"]] == [1, 2, 4]
    for j in summary["joint"]:
        assert j["exact"] and j["w2"] <= min(j["canonical"].values()) + 1e-12
        # the reported W2 is that of the reported plan on the solved spectrum
        problem = Problem(make_schedule("vp-cosine", 6), summary["spectrum"]["solved_lam"],
                          weights=summary["spectrum"]["solved_weights"], segments=j["segments"])
        from opmerge import evaluate_plan

        assert evaluate_plan(problem, parse_plan(j["plan"])).w2 == pytest.approx(j["w2"], rel=1e-12)
    assert summary["spectrum"]["directions"] == 64
    assert sum(summary["directions"]["counts"].values()) == 64
    text = format_summary(summary)
    assert "optimal W2" in text and "thresholds" in text
    for name in ("demo.json", "demo_spectrum.png", "demo_joint_plans.pdf", "demo_phase_diagram.json"):
        assert (tmp_path / name).is_file()
