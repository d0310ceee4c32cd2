"""Tests for opmerge.plans (docs/theory.md §3): notation, canonical plans, enumeration, counting."""

from __future__ import annotations

import json
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge.plans import (
    CANONICAL_KINDS,
    MergeNode,
    Plan,
    PlanParseError,
    canonical_plan,
    canonical_tree,
    count_plans,
    count_trees,
    draw_plan,
    enumerate_plans,
    enumerate_trees,
    format_plan,
    iter_merge_nodes,
    parse_plan,
    parse_tree,
    plan_from_nested,
    segment_boundaries,
    tree_bottom,
    tree_depth,
    tree_from_nested,
    tree_leaves,
    tree_merges,
    tree_to_nested,
    tree_top,
)

try:  # tests/ is not a package: pytest puts it on sys.path ("prepend" import mode)
    from strategies import plans, trees
except ModuleNotFoundError:  # tests/ became a package
    from tests.strategies import plans, trees

LITTLE_SCHROEDER = {1: 1, 2: 1, 3: 3, 4: 11, 5: 45, 6: 197, 7: 903, 8: 4279}

N4_CANONICAL = {
    "vanilla": "(4 3 2 1)",
    "boot": "(((4 3) 2) 1)",
    "cd": "(4 (3 (2 1)))",
    "pd": "((4 3) (2 1))",
}

fast = settings(max_examples=150, deadline=None)


# ------------------------------------------------------------------------------------------
# trees
# ------------------------------------------------------------------------------------------


def test_merge_node_properties():
    node = MergeNode((MergeNode((6, 5)), 4, MergeNode((3, MergeNode((2, 1))))))
    assert (node.top, node.bottom) == (6, 0)
    assert node.leaves == (6, 5, 4, 3, 2, 1)
    assert node.n_merges == 4
    assert node.depth == 3
    assert str(node) == "((6 5) 4 (3 (2 1)))"
    assert MergeNode.from_text("((6 5) 4 (3 (2 1)))") == node
    assert eval(repr(node), {"MergeNode": MergeNode}) == node


def test_merge_node_not_at_zero():
    node = MergeNode((MergeNode((9, 8)), 7))
    assert (node.top, node.bottom, node.leaves) == (9, 6, (9, 8, 7))


def test_leaf_helpers():
    assert (tree_top(5), tree_bottom(5), tree_merges(5), tree_depth(5), tree_leaves(5)) == (5, 4, 0, 0, (5,))
    node = parse_tree("((5 4) 3)")
    assert (tree_top(node), tree_bottom(node), tree_merges(node), tree_depth(node)) == (5, 2, 2, 2)
    assert tree_leaves(node) == (5, 4, 3)
    assert list(iter_merge_nodes(5)) == []


@pytest.mark.parametrize(
    "children, exc, match",
    [
        ((4,), ValueError, ">= 2 children"),
        ((), ValueError, ">= 2 children"),
        ((4, 2), ValueError, "contiguous"),
        ((3, 4), ValueError, "contiguous"),
        ((1, 0), ValueError, ">= 1"),
        ((2, "1"), TypeError, "int leaf or a MergeNode"),
        ((2, True), TypeError, "int leaf or a MergeNode"),
        ((2, 1.0), TypeError, "int leaf or a MergeNode"),
    ],
)
def test_merge_node_validation(children, exc, match):
    with pytest.raises(exc, match=match):
        MergeNode(children)


def test_merge_node_accepts_lists_and_stores_tuples():
    node = MergeNode([3, MergeNode([2, 1])])
    assert isinstance(node.children, tuple)
    assert node == MergeNode((3, MergeNode((2, 1))))
    with pytest.raises(TypeError, match="children"):
        MergeNode(5)


def test_equality_and_hash():
    a, b = parse_tree("((4 3) (2 1))"), parse_tree("((4 3)(2 1))")
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != parse_tree("(4 3 (2 1))")
    assert a != parse_tree("((4 3 2) 1)")
    assert len({a, b, parse_tree("(4 3 2 1)")}) == 2
    with pytest.raises(AttributeError):
        a.children = (1, 2)  # frozen


def test_iter_merge_nodes_post_order():
    tree = parse_tree("(((7 6) (5 4)) ((3 2) 1))")
    nodes = list(iter_merge_nodes(tree))
    assert [str(n) for n in nodes] == [
        "(7 6)",
        "(5 4)",
        "((7 6) (5 4))",
        "(3 2)",
        "((3 2) 1)",
        "(((7 6) (5 4)) ((3 2) 1))",
    ]


@fast
@given(trees())
def test_iter_merge_nodes_children_before_parents(tree):
    nodes = list(iter_merge_nodes(tree))
    assert len(nodes) == tree_merges(tree)
    position = {id(n): k for k, n in enumerate(nodes)}
    for k, node in enumerate(nodes):
        for child in node.children:
            if isinstance(child, MergeNode):
                assert position[id(child)] < k
        # siblings: noise-side child first
        kids = [position[id(c)] for c in node.children if isinstance(c, MergeNode)]
        assert kids == sorted(kids)
    if nodes:
        assert nodes[-1] is tree


# ------------------------------------------------------------------------------------------
# plans and text notation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(4 3 2 1)",
        "(((4 3) 2) 1)",
        "(4 (3 (2 1)))",
        "((4 3) (2 1))",
        "(4 3) | (2 1)",
        "(3 2) | 1",
        "1",
        "4 | 3 | 2 | 1",
        "((5 4 3) (2 1))",
    ],
)
def test_text_round_trip(text):
    plan = parse_plan(text)
    assert format_plan(plan) == text == str(plan)
    assert Plan.from_text(text) == plan
    assert plan_from_nested(json.loads(json.dumps(plan.to_nested()))) == plan


def test_plan_properties():
    plan = parse_plan("((6 5) 4) | 3 | (2 1)")
    assert plan.steps == 6
    assert plan.n_segments == 3
    assert plan.n_merges == 3
    assert plan.depth == 2
    assert plan.boundaries == (6, 3, 2, 0)
    assert [str(n) for n in plan.merge_nodes()] == ["(6 5)", "((6 5) 4)", "(2 1)"]
    assert plan.to_nested() == [[[6, 5], 4], 3, [2, 1]]
    assert eval(repr(plan), {"Plan": Plan}) == plan


def test_parser_is_whitespace_tolerant():
    for text in ["  ( (4  3)\t(2 1 ) )  ", "((4 3)(2 1))", "((4\n3) (2 1))"]:
        assert str(parse_plan(text)) == "((4 3) (2 1))"
    assert str(parse_plan("(4 3)|(2 1)")) == "(4 3) | (2 1)"
    assert str(parse_plan("  (3 2)   |   1 ")) == "(3 2) | 1"
    assert str(parse_plan("(4 3 2 1)", steps=4)) == "(4 3 2 1)"


@pytest.mark.parametrize(
    "text, steps, match",
    [
        ("(4 3", None, r"unbalanced parenthesis at position 0"),
        ("4 3)", None, r"unbalanced parenthesis at position 3"),
        ("((4 3) 2 1", None, r"unbalanced parenthesis at position 0"),
        ("(4)", None, r"merge node with a single child at position 0"),
        ("((4 3) (2) 1)", None, r"merge node with a single child at position 7"),
        ("()", None, r"empty merge node .* at position 0"),
        ("(4 2 3 1)", None, r"expected leaf 3 after leaf 4, found 2 .*leaves must run N, N-1, \.\.\., 1"),
        ("(4 3) (2 1)", None, r"expected ' \| ' between segments at position 6"),
        ("(2 1) 1", None, r"expected ' \| ' between segments at position 6"),
        ("", None, r"empty plan text"),
        ("   ", None, r"empty plan text"),
        ("abc", None, r"non-integer token 'abc' at position 0"),
        ("(4 3.5 2 1)", None, r"non-integer token '3.5' at position 3"),
        ("(4 3 2 1) | ", None, r"expected a tree after the '\|' at position 10, found end of text"),
        ("| (2 1)", None, r"expected a tree before '\|' at position 0"),
        ("(2 1) | | 1", None, r"expected a tree before '\|' at position 8"),
        ("(4 3 | 2 1)", None, r"'\|' inside parentheses at position 5"),
        ("(3 2 1)", 4, r"plan is for N=3 steps but steps=4"),
        ("(5 4 3 2 1)", 4, r"plan is for N=5 steps but steps=4"),
        ("(2 1 0)", None, r"leaf 0 at position 5"),
        ("(2 -1)", None, r"leaf '-1' at position 3"),
        ("(3 2)", None, r"the last leaf must be 1"),
        ("(2 1) | 1", None, r"found leaf 1 after leaf 1 at position 8"),
    ],
)
def test_malformed_text(text, steps, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_plan(text, steps=steps)
    err = info.value
    assert isinstance(err, PlanParseError)
    # the message echoes the text and puts a caret under the reported position
    lines = str(err).splitlines()
    assert lines[-1] == "  " + " " * err.position + "^"
    assert 0 <= err.position <= len(text)


def test_parse_type_errors():
    with pytest.raises(TypeError, match="text must be a str"):
        parse_plan(42)
    with pytest.raises(TypeError, match="steps must be an int"):
        parse_plan("(2 1)", steps="2")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        parse_plan("(2 1)", steps=0)


def test_parse_tree():
    assert parse_tree("7") == 7
    assert str(parse_tree("((9 8) 7)")) == "((9 8) 7)"
    with pytest.raises(ValueError, match="single tree"):
        parse_tree("(3 2) | 1")
    with pytest.raises(ValueError, match="not a merge node"):
        MergeNode.from_text("3")


@pytest.mark.parametrize(
    "segments, exc, match",
    [
        ((), ValueError, ">= 1 segment"),
        ((MergeNode((4, 3)), 1), ValueError, "contiguous"),
        ((MergeNode((3, 2)),), ValueError, "end at grid index 0"),
        (("1",), TypeError, "segments\\[0\\]"),
        ((0,), ValueError, ">= 1"),
    ],
)
def test_plan_validation(segments, exc, match):
    with pytest.raises(exc, match=match):
        Plan(segments)


def test_nested_validation():
    assert tree_to_nested(3) == 3
    assert tree_from_nested([[3, 2], 1]) == parse_tree("((3 2) 1)")
    assert plan_from_nested(((2, 1),)) == parse_plan("(2 1)")
    with pytest.raises(TypeError):
        plan_from_nested(1)
    with pytest.raises(TypeError):
        tree_from_nested([2, "1"])
    with pytest.raises(ValueError, match=">= 2 children"):
        plan_from_nested([[[2, 1]]])
    with pytest.raises(ValueError):
        plan_from_nested([[3, 1]])


# ------------------------------------------------------------------------------------------
# canonical plans
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CANONICAL_KINDS)
def test_canonical_n4(kind):
    assert str(canonical_plan(kind, 4)) == N4_CANONICAL[kind]
    assert canonical_plan(kind, 4) == parse_plan(N4_CANONICAL[kind], steps=4)


@pytest.mark.parametrize(
    "steps, text",
    [
        (1, "1"),
        (2, "(2 1)"),
        (3, "((3 2) 1)"),
        (5, "(((5 4) (3 2)) 1)"),
        (6, "(((6 5) (4 3)) (2 1))"),
        (7, "(((7 6) (5 4)) ((3 2) 1))"),
        (8, "(((8 7) (6 5)) ((4 3) (2 1)))"),
    ],
)
def test_canonical_pd(steps, text):
    assert str(canonical_plan("pd", steps)) == text


def test_canonical_shapes():
    n = 9
    boot = canonical_tree("boot", n, 0)
    cd = canonical_tree("cd", n, 0)
    assert boot.depth == cd.depth == n - 1 and boot.n_merges == cd.n_merges == n - 1
    assert all(node.top == n for node in iter_merge_nodes(boot))  # input time = segment start
    assert all(node.bottom == 0 for node in iter_merge_nodes(cd))  # all end at the data side
    vanilla = canonical_tree("vanilla", n, 0)
    assert vanilla.n_merges == 1 and vanilla.children == tuple(range(n, 0, -1))
    assert str(canonical_tree("cd", 9, 5)) == "(9 (8 (7 6)))"
    assert str(canonical_tree("boot", 9, 5)) == "(((9 8) 7) 6)"
    for kind in CANONICAL_KINDS:
        assert canonical_tree(kind, 6, 5) == 6
        assert canonical_plan(kind, 1) == parse_plan("1")
        assert canonical_plan(kind, 5, 5) == parse_plan("5 | 4 | 3 | 2 | 1")
        # binary kinds: N - 1 merges per segment of length N
        if kind != "vanilla":
            assert tree_merges(canonical_tree(kind, 11, 0)) == 10


@pytest.mark.parametrize(
    "steps, segments, bounds",
    [
        (16, 4, (16, 12, 8, 4, 0)),
        (7, 2, (7, 3, 0)),
        (4, 1, (4, 0)),
        (4, 4, (4, 3, 2, 1, 0)),
        (10, 3, (10, 6, 3, 0)),
        (5, 3, (5, 3, 1, 0)),
    ],
)
def test_segment_boundaries(steps, segments, bounds):
    assert segment_boundaries(steps, segments) == bounds
    for kind in CANONICAL_KINDS:
        plan = canonical_plan(kind, steps, segments)
        assert plan.boundaries == bounds
        assert plan.n_segments == segments


def test_canonical_multi_segment():
    assert str(canonical_plan("vanilla", 4, 2)) == "(4 3) | (2 1)"
    assert str(canonical_plan("pd", 7, 2)) == "((7 6) (5 4)) | ((3 2) 1)"
    assert str(canonical_plan("boot", 7, 2)) == "(((7 6) 5) 4) | ((3 2) 1)"
    assert str(canonical_plan("cd", 7, 3)) == "(7 (6 5)) | (4 3) | (2 1)"
    assert str(canonical_plan("vanilla", 16, 4)) == "(16 15 14 13) | (12 11 10 9) | (8 7 6 5) | (4 3 2 1)"
    assert str(canonical_plan("boot", 5, 3)) == "(5 4) | (3 2) | 1"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: canonical_plan("pd", 4, 5), ValueError, r"segments must satisfy 1 <= segments <= steps = 4"),
        (lambda: canonical_plan("pd", 4, 0), ValueError, r"segments"),
        (lambda: canonical_plan("pd", 0), ValueError, r"steps must be >= 1"),
        (lambda: canonical_plan("pd", 4.0), TypeError, r"steps must be an int"),
        (lambda: canonical_plan("pd", 4, 2.0), TypeError, r"segments must be an int"),
        (lambda: canonical_plan("ddim", 4), ValueError, r"kind must be one of"),
        (lambda: canonical_plan(3, 4), TypeError, r"kind must be a str"),
        (lambda: canonical_tree("pd", 3, 3), ValueError, r"bottom must be < top"),
        (lambda: canonical_tree("pd", 3, -1), ValueError, r"bottom must be >= 0"),
        (lambda: segment_boundaries(3, 4), ValueError, r"segments"),
        (lambda: count_plans(3, 4), ValueError, r"segments"),
        (lambda: list(enumerate_plans(3, 0)), ValueError, r"segments"),
    ],
)
def test_argument_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------
# enumeration and counting
# ------------------------------------------------------------------------------------------


def _count_plans_dp(steps: int, segments: int) -> int:
    """Independent oracle: trees by the sequence DP, plans by the composition DP."""
    s = [0] * (steps + 1)  # s[n]: trees over n steps
    f = [1] + [0] * steps  # f[n]: sequences of >= 1 trees over n steps (f[0] = 1: empty)
    for n in range(1, steps + 1):
        s[n] = 1 if n == 1 else sum(s[k] * f[n - k] for k in range(1, n))
        f[n] = sum(s[k] * f[n - k] for k in range(1, n + 1))
    p = [1] + [0] * steps  # p[n]: sequences of exactly m trees over n steps
    for _ in range(segments):
        p = [sum(s[k] * p[n - k] for k in range(1, n + 1)) for n in range(steps + 1)]
    return p[steps]


def test_little_schroeder():
    for n, value in LITTLE_SCHROEDER.items():
        assert count_plans(n) == count_trees(n) == value
        assert count_plans(n, 1) == value


def test_count_matches_dp():
    for n in range(1, 31):
        for m in range(1, n + 1):
            assert count_plans(n, m) == _count_plans_dp(n, m), (n, m)


def test_count_large_exact():
    value = count_plans(300, 7)
    assert isinstance(value, int) and value == _count_plans_dp(300, 7)
    # M = N - 1: exactly one two-step segment (a single merge of its 2 leaves) among N - 1 positions
    assert count_plans(1000, 999) == 999
    # M = N - 2: a 3-step segment (3 trees) or two 2-step segments
    assert count_plans(50, 48) == 3 * 48 + comb(48, 2)


@pytest.mark.parametrize("steps", range(1, 9))
def test_enumerate_plans_matches_count(steps):
    for segments in range(1, steps + 1):
        if steps == 8 and segments not in (1, 2, 7, 8):
            continue  # keep the suite fast; the DP/closed-form agreement covers the rest
        found = list(enumerate_plans(steps, segments))
        assert len(found) == count_plans(steps, segments)
        assert len(set(found)) == len(found)
        texts = {str(p) for p in found}
        assert len(texts) == len(found)
        for plan in found:
            assert plan.steps == steps and plan.n_segments == segments
            if steps <= 6:
                assert parse_plan(str(plan), steps=steps) == plan
    if steps <= 8:
        assert sum(1 for _ in enumerate_plans(steps)) == LITTLE_SCHROEDER[steps]


def test_enumerate_plans_round_trip_n8():
    for plan in enumerate_plans(8):
        assert parse_plan(str(plan), steps=8) == plan


def test_enumerate_contains_canonical():
    for n in (4, 6):
        for m in (1, 2):
            found = set(enumerate_plans(n, m))
            for kind in CANONICAL_KINDS:
                assert canonical_plan(kind, n, m) in found


def test_enumerate_trees_offset():
    found = list(enumerate_trees(7, 3))
    assert len(found) == count_trees(4) == 11
    assert all((tree_top(t), tree_bottom(t)) == (7, 3) for t in found)
    assert [str(t) for t in enumerate_trees(3, 0)] == ["(3 2 1)", "(3 (2 1))", "((3 2) 1)"]
    assert list(enumerate_trees(5, 4)) == [5]


# ------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------


def test_draw_plan_example():
    drawing = draw_plan(parse_plan("((4 3) 2) | 1"))
    assert drawing == "\n".join(
        [
            "plan ((4 3) 2) | 1  (N=4, M=2, merges=2)",
            "segment 1/2: z_4 -> z_1",
            "  [4->1]",
            "  +-- [4->2]",
            "  |   +-- 4",
            "  |   `-- 3",
            "  `-- 2",
            "segment 2/2: z_1 -> z_0",
            "  1",
        ]
    )
    assert draw_plan(parse_tree("(3 2)")) == "[3->1]\n+-- 3\n`-- 2"


@fast
@given(plans(max_steps=12))
def test_draw_plan_mentions_every_leaf(plan):
    drawing = draw_plan(plan)
    lines = drawing.splitlines()
    assert len(lines) >= 3
    # one line per leaf and per node, plus a header and a line per segment
    assert len(lines) == 1 + plan.n_segments + plan.steps + plan.n_merges
    leaf_lines = {line.split()[-1] for line in lines[1:] if not line.rstrip().endswith("]") and "segment" not in line}
    assert leaf_lines == {str(n) for n in range(1, plan.steps + 1)}


# ------------------------------------------------------------------------------------------
# property tests
# ------------------------------------------------------------------------------------------


@fast
@given(plans(max_steps=12))
def test_random_plan_round_trips(plan):
    text = format_plan(plan)
    assert parse_plan(text) == plan
    assert parse_plan(text, steps=plan.steps) == plan
    nested = plan.to_nested()
    assert plan_from_nested(json.loads(json.dumps(nested))) == plan
    assert Plan.from_nested(nested) == plan
    assert hash(parse_plan(text)) == hash(plan)
    # whitespace-mangled text parses to the same plan
    assert parse_plan("  " + text.replace(" ", "   ").replace("(", "( ") + " ") == plan


@fast
@given(plans(max_steps=12))
def test_random_plan_consistency(plan):
    n, m = plan.steps, plan.n_segments
    assert 1 <= m <= n
    leaves = [leaf for seg in plan.segments for leaf in tree_leaves(seg)]
    assert leaves == list(range(n, 0, -1))
    nodes = plan.merge_nodes()
    assert len(nodes) == plan.n_merges == sum(tree_merges(s) for s in plan.segments)
    assert plan.boundaries[0] == n and plan.boundaries[-1] == 0
    assert all(a > b for a, b in zip(plan.boundaries, plan.boundaries[1:]))
    for node in nodes:
        assert node.leaves == tuple(range(node.top, node.bottom, -1))
        assert node.n_merges == 1 + sum(tree_merges(c) for c in node.children)
        assert node.depth == 1 + max(tree_depth(c) for c in node.children)
        assert tree_top(node.children[0]) == node.top
        assert tree_bottom(node.children[-1]) == node.bottom
    # a tree over L leaves has at most L - 1 merge nodes (binary trees reach it)
    for seg in plan.segments:
        assert tree_merges(seg) <= len(tree_leaves(seg)) - 1


@fast
@given(trees(max_leaves=10), st.sampled_from(CANONICAL_KINDS))
def test_random_tree_round_trips(tree, kind):
    assert parse_tree(format_plan(tree)) == tree
    assert tree_from_nested(tree_to_nested(tree)) == tree
    top, bottom = tree_top(tree), tree_bottom(tree)
    canon = canonical_tree(kind, top, bottom)
    assert tree_leaves(canon) == tree_leaves(tree)


def test_deep_trees_do_not_recurse():
    n = 1500  # > the default recursion limit
    for kind in ("boot", "cd"):
        plan = canonical_plan(kind, n)
        text = str(plan)
        again = parse_plan(text, steps=n)
        assert again == plan and hash(again) == hash(plan)
        assert plan_from_nested(plan.to_nested()) == plan
        assert len(plan.merge_nodes()) == n - 1
        assert len(draw_plan(plan).splitlines()) == 2 + n + n - 1
