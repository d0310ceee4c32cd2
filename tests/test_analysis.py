"""Tests of opmerge.analysis: families, sweeps, thresholds, the point cache, parallelism, the CLI.

Independent routes: brute force over every plan (N <= 6) for the optimum, direct solves on both
sides of every located threshold, a synthetic step function for the bisection (and its values
pinned from the code before the bisection drivers were merged), and counting solver calls for the
cache.
"""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from hypothesis import given, settings

import opmerge.analysis.points as points
import opmerge.analysis.runner as runner
from opmerge.analysis import (
    FAMILIES,
    direction_families,
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
from opmerge import Problem, StudentModel, brute_force, canonical_plan, make_schedule, parse_plan, solve
from opmerge.analysis.bisection import bisect_brackets
from opmerge.errors import InputError, InputTypeError
from opmerge.io import ResultCache
from opmerge.solvers import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET
from opmerge.plans import CANONICAL_KINDS, MergeNode, canonical_tree, tree_bottom, tree_top

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


def _skew_by_definition(plan):
    """skew = (L - R) / K straight from the definition in docs/analysis.md, walking every node."""
    left = right = nested = 0
    stack = [s for s in plan.segments if isinstance(s, MergeNode)]
    while stack:
        node = stack.pop()
        kids = node.children
        is_node = [isinstance(c, MergeNode) for c in kids]
        left += is_node[0] and not is_node[-1]
        right += is_node[-1] and not is_node[0]
        nested += any(is_node)
        stack.extend(c for c in kids if isinstance(c, MergeNode))
    return 0.0 if nested == 0 else (left - right) / nested


@fast
@given(plans(max_steps=9))
def test_classify_matches_canonical_rebuild(plan):
    shape = classify_plan(plan)
    assert shape.skew == pytest.approx(_skew_by_definition(plan), abs=1e-15)
    assert shape.segments == plan.n_segments and shape.n_merges == plan.n_merges
    matching = [
        k for k in CANONICAL_KINDS if all(canonical_tree(k, tree_top(s), tree_bottom(s)) == s for s in plan.segments)
    ]
    assert shape.family == (matching[0] if matching else "mixed")
    for s in plan.segments:
        fits = [k for k in CANONICAL_KINDS if canonical_tree(k, tree_top(s), tree_bottom(s)) == s]
        assert segment_family(s) == (fits[0] if fits else "mixed")


def test_classify_rejects_non_plans():
    with pytest.raises(TypeError, match="plan"):
        classify_plan("(2 1)")


# ------------------------------------------------------------------------------------------
# family_of_solution (docs/theory.md §6), against brute force
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


def _step(x):
    return "boot" if x < 1.2345 else "vanilla"


def _three(x):
    return "boot" if x < 1.1 else ("mixed" if x < 1.3 else "vanilla")


def test_locate_transition_synthetic_step():
    calls = []

    def family_at(x):
        calls.append(x)
        return _step(x)

    t = locate_transition(1.0, 2.0, "boot", "vanilla", family_at, tol=1e-4)
    assert t["lam_lo"] < 1.2345 <= t["lam_hi"]
    assert t["lam_hi"] - t["lam_lo"] <= 1e-4 * t["lam_hi"]
    assert t["lam"] == math.sqrt(t["lam_lo"] * t["lam_hi"])
    assert (t["from"], t["to"]) == ("boot", "vanilla") and t["evaluations"] == len(calls)
    # every evaluation is the geometric midpoint of the bracket it halves: replay the bisection
    a, b = 1.0, 2.0
    for x in calls:
        assert x == math.sqrt(a * b)
        a, b = (x, b) if _step(x) == "boot" else (a, x)
    assert (a, b) == (t["lam_lo"], t["lam_hi"])


# values of the separate 1-D and 2-D bisection loops before they became one driver (same inputs)
PINNED_STEP = {"lam": 1.234471939232311, "lam_lo": 1.2344197143394726, "lam_hi": 1.2345241663346405,
               "from": "boot", "to": "vanilla", "evaluations": 13}
PINNED_STEP_FROM_ZERO = {"lam": 1.2347330968407393, "lam_lo": 1.2343152711818954, "lam_hi": 1.2351510639369332,
                         "from": "boot", "to": "vanilla", "evaluations": 11}
PINNED_THREE = {"lam": 1.0997739589935456, "lam_lo": 1.099401802630222, "lam_hi": 1.1001462413347953,
                "from": "boot", "to": "mixed", "evaluations": 10}
PINNED_SWEEP_N6 = (  # sweep_lambda([0.3, 10], vp-cosine N = 6, warm, eta*tau = 0.5, tol = 1e-3): one cell, two changes
    {"lam": 1.3029815561721731, "lam_lo": 1.3024239386749696, "lam_hi": 1.3035394124067523, "from": "boot", "to": "mixed", "evaluations": 12},
    {"lam": 2.034579765457594, "lam_lo": 2.0335679419071244, "lam_hi": 2.035592092451729, "from": "mixed", "to": "vanilla", "evaluations": 11},
)


def test_bisection_pinned_values():
    assert locate_transition(1.0, 2.0, "boot", "vanilla", _step, tol=1e-4) == PINNED_STEP
    assert locate_transition(0.0, 2.0, "boot", "vanilla", _step, tol=1e-3) == PINNED_STEP_FROM_ZERO  # a = 0: arithmetic midpoint first
    assert locate_transition(1.0, 2.0, "boot", "vanilla", _three, tol=1e-3) == PINNED_THREE


def test_batched_driver_follows_every_change_in_one_cell():
    rounds = []

    def families_at(points):
        rounds.append(len(points))
        return [(_three if tag == 0 else _step)(x) for tag, x in points]

    found = bisect_brackets([(0, 1.0, 2.0, "boot", "vanilla"), (1, 1.0, 2.0, "boot", "vanilla")], families_at, tol=1e-3, follow=True)
    by_tag = {tag: [t for g, t in found if g == tag] for tag in (0, 1)}
    # tag 0: boot -> mixed exactly as the one-bracket call, then the restart finds mixed -> vanilla at 1.3
    assert by_tag[0][0] == PINNED_THREE
    assert (by_tag[0][1]["from"], by_tag[0][1]["to"]) == ("mixed", "vanilla")
    assert by_tag[0][1]["lam_lo"] < 1.3 <= by_tag[0][1]["lam_hi"]
    assert by_tag[1] == [locate_transition(1.0, 2.0, "boot", "vanilla", _step, tol=1e-3)]
    # both brackets share rounds: the first round evaluates both midpoints together
    assert rounds[0] == 2 and sum(rounds) == sum(t["evaluations"] for _, t in found)
    # without follow the third family ends the search
    assert len(bisect_brackets([(0, 1.0, 2.0, "boot", "vanilla")], families_at, tol=1e-3, follow=False)) == 1


def test_sweep_thresholds_pinned():
    sweep = sweep_lambda([0.3, 10.0], schedule="vp-cosine", steps=6, tol=1e-3, progress=False, workers=1)
    assert sweep.thresholds == PINNED_SWEEP_N6
    assert sweep.stats["threshold_computed"] == sum(t["evaluations"] for t in PINNED_SWEEP_N6)


def test_locate_transition_input_errors():
    with pytest.raises(InputError, match="differ"):
        locate_transition(1.0, 2.0, "boot", "boot", _three)
    with pytest.raises(InputError, match="lam_a < lam_b"):
        locate_transition(2.0, 1.0, "boot", "vanilla", _three)
    with pytest.raises(InputError, match="tol"):
        locate_transition(1.0, 2.0, "boot", "vanilla", _three, tol=1.0)


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
    with pytest.raises(InputError, match="strictly increasing"):
        sweep_lambda([1.0, 0.5], schedule="vp-cosine", steps=4, progress=False)
    with pytest.raises(InputError, match="steps"):
        sweep_lambda([1.0], schedule="vp-cosine", progress=False)
    with pytest.raises(InputError, match="workers"):
        sweep_lambda([1.0], schedule="vp-cosine", steps=4, workers=0, progress=False)
    with pytest.raises(InputTypeError, match="workers"):
        sweep_lambda([1.0], schedule="vp-cosine", steps=4, workers=1.5, progress=False)
    with pytest.raises(InputError, match="tol"):
        sweep_lambda([1.0], schedule="vp-cosine", steps=4, tol=2.0, progress=False)
    with pytest.raises(InputTypeError, match="schedule"):
        sweep_lambda([1.0], schedule=3, steps=4, progress=False)
    with pytest.raises(InputError, match="weights"):
        sweep_two_directions([1.0], [1.0], schedule="vp-cosine", steps=4, weights=(1.0, -1.0), progress=False)
    with pytest.raises(InputError, match="integers"):
        sweep_lambda_steps([1.0], [4.5], progress=False)


def _count_solves(monkeypatch):
    calls = {"n": 0}
    real = points.solve

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(points, "solve", counting)
    return calls


LAMS5 = [0.3, 0.9, 1.5, 4.0, 10.0]


def test_cache_resume_recomputes_nothing(tmp_path, monkeypatch):
    calls = _count_solves(monkeypatch)
    first = sweep_lambda(LAMS5, schedule="vp-cosine", steps=6, cache_dir=tmp_path, progress=False, workers=1)
    n_first = calls["n"]
    # one solve per grid point and one per bisection step, nothing else
    assert n_first == len(LAMS5) + sum(t["evaluations"] for t in first.thresholds)
    assert first.stats["computed"] == len(LAMS5) and first.stats["cached"] == 0
    assert first.stats["threshold_computed"] == n_first - len(LAMS5)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == n_first
    second = sweep_lambda(LAMS5, schedule="vp-cosine", steps=6, cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == n_first  # nothing solved again, thresholds included
    assert second.stats["cached"] == len(LAMS5) and second.stats["computed"] == 0
    assert second.to_dict() == first.to_dict()
    # a different configuration is a different key
    sweep_lambda(LAMS5[:1], schedule="vp-cosine", steps=6, model=StudentModel(eta_tau=0.7), cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == n_first + 1


def test_cache_key_includes_the_code(tmp_path, monkeypatch):
    calls = _count_solves(monkeypatch)
    sweep_lambda(LAMS5[:2], schedule="vp-cosine", steps=5, cache_dir=tmp_path, locate=False, progress=False, workers=1)
    assert calls["n"] == 2
    spec = points.PointSpec(make_schedule("vp-cosine", 5), (0.3,), None, StudentModel(), "ddim", "teacher", 1,
                            DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET)
    assert points.point_cache(tmp_path).load(spec.config())["lam"] == [0.3]
    # the same configuration computed by other code: the core alone, or another namespace, misses
    assert ResultCache(tmp_path, points.CACHE_NAMESPACE).load(spec.config()) is None
    assert ResultCache(tmp_path, "other", packages=points.CACHE_PACKAGES).load(spec.config()) is None
    # an edit of any source file changes the fingerprint: the sweep solves everything again
    import opmerge.io._provenance as prov

    real = prov._fingerprint_of
    monkeypatch.setattr(prov, "_fingerprint_of", lambda folders: "edited-" + real(folders))
    again = sweep_lambda(LAMS5[:2], schedule="vp-cosine", steps=5, cache_dir=tmp_path, locate=False, progress=False, workers=1)
    assert calls["n"] == 4 and again.stats["cached"] == 0


def test_edited_or_corrupt_cache_entry_is_not_used(tmp_path, monkeypatch):
    calls = _count_solves(monkeypatch)
    first = sweep_lambda([1.0], schedule="vp-cosine", steps=5, cache_dir=tmp_path, progress=False, workers=1)
    (path,) = tmp_path.rglob("*.json")
    entry = json.loads(path.read_text())
    assert entry["namespace"] == "phase-point" and entry["result"]["w2"] == first.w2[0]
    entry["result"]["w2"] = 0.5 * entry["result"]["w2"]  # a hand-edited number, checksum left as it was
    path.write_text(json.dumps(entry))
    second = sweep_lambda([1.0], schedule="vp-cosine", steps=5, cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == 2 and second.stats["cached"] == 0
    assert second.w2[0] == first.w2[0] == solve(_problem(1.0, steps=5)).w2
    assert json.loads(path.read_text())["result"]["w2"] == first.w2[0]  # rewritten with the true value
    path.write_text(path.read_text()[:-20])  # truncated file
    third = sweep_lambda([1.0], schedule="vp-cosine", steps=5, cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == 3 and third.w2[0] == first.w2[0]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_cached_record_reads_back_bit_for_bit(tmp_path):
    spec = points.PointSpec(make_schedule("vp-cosine", 5), (1.0, 0.25), (1.0, 3.0), StudentModel(), "ddim", "teacher", 2, 10**6, 10.0)
    record = points.solve_point(spec)
    record["extra"] = [math.nan, math.inf, -math.inf, 0.1 + 0.2]
    cache = points.point_cache(tmp_path)
    cache.store(spec.config(), record)
    back = points.point_cache(tmp_path).load(spec.config())
    assert back.keys() == record.keys()
    for key in ("w2", "lower_bound", "tol", "seconds"):
        assert back[key].hex() == record[key].hex()
    assert {k: v.hex() for k, v in back["canonical"].items()} == {k: v.hex() for k, v in record["canonical"].items()}
    nan, inf, ninf, third = back["extra"]
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf and third.hex() == (0.1 + 0.2).hex()


def test_parallel_equals_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_MIN_SECONDS", 0.0)  # force the process pool
    lams = np.geomspace(0.2, 20.0, 12)
    serial = sweep_lambda(lams, schedule="vp-cosine", steps=7, workers=1, progress=False)
    parallel = sweep_lambda(lams, schedule="vp-cosine", steps=7, workers=2, progress=False, cache_dir=tmp_path)
    assert parallel.stats["parallel"] and not serial.stats["parallel"]
    assert parallel.to_dict() == serial.to_dict()
    # the workers wrote their points under the parent's keys: a serial rerun reads every point back
    calls = _count_solves(monkeypatch)
    again = sweep_lambda(lams, schedule="vp-cosine", steps=7, workers=1, progress=False, cache_dir=tmp_path)
    assert calls["n"] == 0 and again.stats["cached"] == len(lams) and again.to_dict() == serial.to_dict()
    grid_s = sweep_lambda_eta([0.3, 1.5, 10.0], [0.25, 1.0], schedule="vp-cosine", steps=6, workers=1, progress=False)
    grid_p = sweep_lambda_eta([0.3, 1.5, 10.0], [0.25, 1.0], schedule="vp-cosine", steps=6, workers=2, progress=False)
    assert grid_p.to_dict() == grid_s.to_dict()


def _check_brackets_by_direct_solves(thresholds, **model):
    for t in thresholds:
        assert t["lam_hi"] - t["lam_lo"] <= 1e-3 * t["lam_hi"]
        assert family_of_solution(solve(_problem(t["lam_lo"], **model))) == t["from"]
        assert family_of_solution(solve(_problem(t["lam_hi"], **model))) == t["to"]


def test_grid_sweeps_eta_and_steps():
    grid = sweep_lambda_eta([0.3, 1.5, 10.0], [0.5, 2.0], schedule="vp-cosine", steps=6, workers=1, progress=False)
    assert grid.family[0] == ("boot", "mixed", "vanilla")  # eta_tau = 0.5 row is docs/theory.md §6
    assert grid.family_codes().tolist() == [[FAMILIES.index(f) for f in row] for row in grid.family]
    for r, eta in enumerate(grid.y):
        for c, lam in enumerate(grid.x):
            sol = solve(_problem(lam, eta_tau=float(eta)))
            assert grid.w2[r, c] == sol.w2 and grid.family[r][c] == family_of_solution(sol)
        # every family change of the row is bracketed, and each bracket is confirmed by direct solves
        changes = [(a, b) for a, b in zip(grid.family[r], grid.family[r][1:]) if a != b]
        assert [(t["from"], t["to"]) for t in grid.thresholds[r]] == changes
        _check_brackets_by_direct_solves(grid.thresholds[r], eta_tau=float(eta))
    steps = sweep_lambda_steps([0.3, 10.0], [4, 6], workers=1, progress=False, locate=False)
    assert steps.y.tolist() == [4, 6] and steps.thresholds == ((), ())
    for r, n in enumerate(steps.y):
        for c, lam in enumerate(steps.x):
            assert steps.family[r][c] == family_of_solution(solve(_problem(lam, steps=int(n))))


def test_two_direction_sweep_matches_brute_force():
    grid = sweep_two_directions([0.3, 10.0], [0.3, 10.0], schedule="vp-cosine", steps=5, workers=1, progress=False)
    for r, lam2 in enumerate(grid.y):
        for c, lam1 in enumerate(grid.x):
            problem = Problem(make_schedule("vp-cosine", 5), [lam1, lam2], weights=[1.0, 1.0])
            best = brute_force(problem)[0].w2
            assert grid.w2[r, c] == pytest.approx(best, rel=1e-12, abs=1e-15)
            assert grid.family[r][c] == family_from_values(canonical_w2(problem), best, solve(problem).tol)
    # equal eigenvalues: the joint problem is the one-direction problem
    assert grid.family[0][0] == "boot" and grid.family[1][1] == "vanilla"


def test_direction_families_solves_each_eigenvalue_once(monkeypatch):
    calls = _count_solves(monkeypatch)
    lam = [10.0, 0.3, 1.5, 0.3, 0.0, 10.0]
    families, records = direction_families(lam, schedule="vp-cosine", steps=6, workers=1, progress=False)
    assert calls["n"] == 4  # distinct eigenvalues only
    for x, fam, rec in zip(lam, families, records):
        sol = solve(_problem(x))
        assert fam == rec["family"] == family_of_solution(sol) and rec["w2"] == sol.w2 and rec["lam"] == [x]
    with pytest.raises(InputError, match="lam"):
        direction_families([1.0, -1.0], schedule="vp-cosine", steps=6, progress=False)


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_cli_phase_json(tmp_path, capsys):
    from opmerge.analysis.cli import main

    code = main(["phase", "--steps", "6", "--points", "5", "--lam-min", "0.3", "--lam-max", "10", "--json", "--no-plot",
                 "--no-progress", "--workers", "1", "--out", str(tmp_path)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    lams = np.geomspace(0.3, 10.0, 5)
    assert out["lam"] == lams.tolist()
    for lam, fam, w2 in zip(lams, out["family"], out["w2"]):
        sol = solve(_problem(lam))
        assert w2 == sol.w2 and fam == family_of_solution(sol)
    changes = [(a, b) for a, b in zip(out["family"], out["family"][1:]) if a != b]
    assert changes and [(t["from"], t["to"]) for t in out["thresholds"]] == changes
    _check_brackets_by_direct_solves(out["thresholds"])
    assert out["config"]["schedule"]["steps"] == 6
    written = json.loads((tmp_path / "phase.json").read_text())
    assert written["family"] == out["family"] and written["w2"] == out["w2"]
    assert written["provenance"]["opmerge"] and written["provenance"]["code"] and "date" in written["provenance"]


def test_cli_phase_table_and_usage_errors(tmp_path, capsys):
    from opmerge.analysis.cli import main

    assert main(["phase", "--steps", "6", "--points", "4", "--no-progress", "--workers", "1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    sweep = sweep_lambda(np.geomspace(0.05, 100.0, 4), schedule="vp-cosine", steps=6, progress=False, workers=1)
    assert sweep.summary() in text
    figure = json.loads((tmp_path / "phase_w2.json").read_text())
    assert figure["figure"] == "phase_w2" and figure["provenance"]["opmerge"]
    assert (tmp_path / "phase_w2.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InputError, match="lam-max"):
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
    assert set(payload) == {"figure", "data", "config", "provenance"}
    assert payload["provenance"]["matplotlib"] and payload["provenance"]["code"]
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
    from opmerge import evaluate_plan

    for j in summary["joint"]:
        assert j["exact"]
        # the reported W2 is that of the reported plan on the solved spectrum, and brute force over
        # every plan finds nothing better
        problem = Problem(make_schedule("vp-cosine", 6), summary["spectrum"]["solved_lam"],
                          weights=summary["spectrum"]["solved_weights"], segments=j["segments"])
        assert evaluate_plan(problem, parse_plan(j["plan"])).w2 == pytest.approx(j["w2"], rel=1e-12)
        assert brute_force(problem)[0].w2 == pytest.approx(j["w2"], rel=1e-12)
        assert j["canonical"] == canonical_w2(problem)
    assert summary["spectrum"]["directions"] == 64
    assert sum(summary["directions"]["counts"].values()) == 64
    text = format_summary(summary)
    assert "optimal W2" in text and "thresholds" in text
    for name in ("demo_spectrum.png", "demo_joint_plans.pdf"):
        assert (tmp_path / name).is_file()
    for name in ("demo.json", "demo_phase_diagram.json", "demo_w2_vs_lambda.json"):
        assert json.loads((tmp_path / name).read_text())["provenance"]["opmerge"]


@pytest.mark.parametrize("damage", ["string w2", "missing field", "null"])
def test_cache_entry_of_the_wrong_shape_with_a_valid_checksum_is_recomputed(tmp_path, monkeypatch, capsys, damage):
    calls = _count_solves(monkeypatch)
    first = sweep_lambda([1.0], schedule="vp-cosine", steps=5, cache_dir=tmp_path, progress=False, workers=1)
    (path,) = tmp_path.rglob("*.json")
    entry = json.loads(path.read_text())
    record = dict(entry["result"])
    if damage == "string w2":
        record["w2"] = "0.5"
    elif damage == "missing field":
        del record["plan"]
    else:
        record = None
    # stored through the cache itself: the checksum matches the damaged record
    ResultCache(tmp_path, entry["namespace"], packages=points.CACHE_PACKAGES).store(entry["config"], record)
    assert json.loads(path.read_text())["result"] == record
    capsys.readouterr()
    second = sweep_lambda([1.0], schedule="vp-cosine", steps=5, cache_dir=tmp_path, progress=False, workers=1)
    assert calls["n"] == 2 and second.stats["cached"] == 0 and second.w2[0] == first.w2[0]
    assert "cache entry" in capsys.readouterr().err


def test_point_records_have_the_checked_shape():
    spec = points.PointSpec(make_schedule("vp-cosine", 5), (0.5, 2.0), None, StudentModel(), "ddim", "teacher", 2, 10**6, 10.0)
    record = points.solve_point(spec)
    assert points.check_point_record(record)
    for name in record:
        broken = dict(record)
        broken[name] = None
        assert not points.check_point_record(broken), name
    assert not points.check_point_record({**record, "exact": 1}) and not points.check_point_record({**record, "nodes": True})
