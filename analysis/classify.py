r"""Plan families and tree shapes (docs/theory.md §3, §6).

Two questions are kept apart:

* **What does this plan look like?** :func:`classify_plan` compares a plan, segment by
  segment, with the canonical recipes over *its own* segment boundaries and measures its shape
  (depth, merges, arity, left/right skew).
* **Which family is optimal?** :func:`family_of_solution` compares *W2 values*, not plan
  strings: the reported family is the first canonical plan (``vanilla``, ``boot``, ``cd``,
  ``pd``; uniform segments) whose W2 attains the optimum within the solution's tolerance, and
  ``"mixed"`` when none does. Plans can tie to the last bit (docs/theory.md §6), so this is the
  quantity that sweeps report; it agrees with the solver's own tie-breaking order.

Skew
----
A merge node is *left-nested* when its first (noise-side) child is a merge node and its last
child is a leaf, and *right-nested* when its last child is a merge node and its first is a leaf.
With :math:`L` and :math:`R` their counts and :math:`K` the number of merge nodes that have at
least one merge node among their children,

.. math:: \mathrm{skew} = (L - R) / K \in [-1, 1] \qquad (0 \text{ when } K = 0).

BOOT (``N >= 3``) has skew ``+1``, CD ``-1``, vanilla and a PD over a power of two ``0``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

from opmerge.errors import InputError, InputTypeError
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import CANONICAL_KINDS, MergeNode, Plan, canonical_plan, canonical_tree, tree_bottom, tree_top

__all__ = ["FAMILIES", "PlanShape", "classify_plan", "segment_family", "family_of_solution", "family_from_values", "canonical_w2", "describe_plan"]

#: every family a sweep can report, in tie-breaking order, then "mixed"
FAMILIES = CANONICAL_KINDS + ("mixed",)


@dataclass(frozen=True)
class PlanShape:
    r"""Shape of a merge plan.

    Attributes
    ----------
    family : {"vanilla", "boot", "cd", "pd", "mixed"}
        The canonical recipe that reproduces every segment of the plan over the plan's own segment
        boundaries (first match in the order vanilla, boot, cd, pd), else ``"mixed"``.
    depth : int
        Largest segment depth (0: every segment is a single teacher step).
    n_merges : int
        Number of merge nodes (distillation runs).
    mean_arity : float
        Mean number of children over the merge nodes, :math:`\frac{1}{n}\sum_{\text{nodes}} k`
        (0.0 when there is no merge node).
    skew : float
        :math:`(L - R)/K` in ``[-1, 1]`` (see the module docstring): ``+1`` left-deep (BOOT-like),
        ``-1`` right-deep (CD-like).
    segments : int
        Number of segments ``M`` (student steps).
    steps : int
        Number of teacher steps ``N``.
    segment_families : tuple of str
        The family of each segment on its own (:func:`segment_family`).
    """

    family: str
    depth: int
    n_merges: int
    mean_arity: float
    skew: float
    segments: int
    steps: int
    segment_families: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-friendly dict of the fields."""
        out = asdict(self)
        out["segment_families"] = list(self.segment_families)
        return out


@functools.lru_cache(maxsize=4096)
def _canonical_tree(kind: str, top: int, bottom: int):
    """Cached :func:`~opmerge.plans.canonical_tree` (trees are immutable)."""
    return canonical_tree(kind, top, bottom)


@functools.lru_cache(maxsize=1024)
def _canonical_plan(kind: str, steps: int, segments: int) -> Plan:
    """Cached :func:`~opmerge.plans.canonical_plan` (plans are immutable)."""
    return canonical_plan(kind, steps, segments)


def _check_plan(plan: object) -> Plan:
    if not isinstance(plan, Plan):
        raise InputTypeError(f"plan must be an opmerge Plan, got {type(plan).__name__}")
    return plan


def segment_family(tree) -> str:
    """Family of one segment tree: the first canonical recipe (vanilla, boot, cd, pd) reproducing it.

    A tree over :math:`j \\to i` is of kind ``k`` when ``tree == canonical_tree(k, j, i)``. Single
    leaves and two-leaf nodes are every kind at once and resolve to ``"vanilla"``; a three-leaf PD
    is the BOOT chain and resolves to ``"boot"``.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    str
        One of :data:`FAMILIES`.
    """
    top, bottom = tree_top(tree), tree_bottom(tree)
    for kind in CANONICAL_KINDS:
        if _canonical_tree(kind, top, bottom) == tree:
            return kind
    return "mixed"


def classify_plan(plan: Plan) -> PlanShape:
    r"""Family and shape of a plan.

    The family is the first kind ``k`` in (vanilla, boot, cd, pd) with
    ``segment[s] == canonical_tree(k, B_s, B_{s+1})`` for **every** segment ``s`` (``B`` the plan's
    own boundaries), else ``"mixed"``. Examples: ``((4 3) 2) | 1`` is ``boot``, ``(4 3 2) | 1``
    ``vanilla``, ``(4 (3 2)) | 1`` ``cd``; ``((4 3) 2 1)`` and ``((6 5) 4) | (3 2 1)`` (a BOOT
    segment, then a vanilla one) are ``mixed``. A segment with at most two leaves matches every kind.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    PlanShape
        With ``mean_arity`` :math:`= \sum k_\text{node} / n_\text{merges}` and
        ``skew`` :math:`= (L - R)/K` (module docstring).

    Raises
    ------
    TypeError
        If ``plan`` is not a :class:`~opmerge.plans.Plan`.
    """
    plan = _check_plan(plan)
    family = "mixed"
    for kind in CANONICAL_KINDS:
        if all(_canonical_tree(kind, tree_top(s), tree_bottom(s)) == s for s in plan.segments):
            family = kind
            break
    nodes = plan.merge_nodes()
    n_merges = len(nodes)
    mean_arity = sum(len(node.children) for node in nodes) / n_merges if n_merges else 0.0
    left = right = nested = 0
    for node in nodes:
        first_is_node = isinstance(node.children[0], MergeNode)
        last_is_node = isinstance(node.children[-1], MergeNode)
        if any(isinstance(c, MergeNode) for c in node.children):
            nested += 1
        if first_is_node and not last_is_node:
            left += 1
        elif last_is_node and not first_is_node:
            right += 1
    skew = (left - right) / nested if nested else 0.0
    return PlanShape(
        family=family,
        depth=plan.depth,
        n_merges=n_merges,
        mean_arity=float(mean_arity),
        skew=float(skew),
        segments=plan.n_segments,
        steps=plan.steps,
        segment_families=tuple(segment_family(s) for s in plan.segments),
    )


_SHORT = {"vanilla": "vanilla", "boot": "BOOT", "cd": "CD", "pd": "PD", "mixed": "mixed"}


def describe_plan(plan: Plan) -> str:
    """Short human description, segment by segment: ``"BOOT 16..2 | step 1"``.

    A one-leaf segment is ``step n``; a longer one is its family (:func:`segment_family`) and
    the teacher steps it covers, noise side first.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
    """
    plan = _check_plan(plan)
    parts = []
    for seg in plan.segments:
        top, bottom = tree_top(seg), tree_bottom(seg)
        parts.append(f"step {top}" if top - bottom == 1 else f"{_SHORT[segment_family(seg)]} {top}..{bottom + 1}")
    return " | ".join(parts)


def canonical_w2(problem: Problem) -> dict[str, float]:
    r"""W2 of each canonical plan (uniform segments) for a problem.

    .. math:: W_2(k) = W_2\big(\texttt{canonical\_plan}(k, N, M)\big), \quad k \in \{\text{vanilla}, \text{boot}, \text{cd}, \text{pd}\}

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    dict
        ``{kind: w2}`` in the order of :data:`~opmerge.plans.CANONICAL_KINDS`.
    """
    if not isinstance(problem, Problem):
        raise InputTypeError(f"problem must be an opmerge Problem, got {type(problem).__name__}")
    return {
        kind: float(evaluate_plan(problem, _canonical_plan(kind, problem.steps, problem.segments)).w2)
        for kind in CANONICAL_KINDS
    }


def family_of_solution(solution, canonical: dict[str, float] | None = None) -> str:
    r"""Family of the optimum: the first canonical plan whose W2 attains it within ``solution.tol``.

    Returns the first ``k`` in (vanilla, boot, cd, pd) with
    :math:`W_2(\texttt{canonical\_plan}(k, N, M)) \le W_2^{\mathrm{best}} + \mathrm{tol}`
    (``W2best = solution.w2``, the best plan found; certified optimal when ``solution.exact``),
    else ``"mixed"``. This compares W2 values, never plan strings (docs/theory.md §6), and agrees with
    the solver's tie-breaking order (canonical vanilla, boot, cd, pd first).

    Parameters
    ----------
    solution : opmerge.solvers.Solution
        Needs ``problem``, ``w2`` and ``tol``.
    canonical : dict, optional
        Precomputed :func:`canonical_w2` of ``solution.problem`` (saves four evaluations).

    Returns
    -------
    str
        One of :data:`FAMILIES`.
    """
    for attr in ("problem", "w2", "tol"):
        if not hasattr(solution, attr):
            raise InputTypeError(f"solution must be an opmerge Solution (missing {attr!r}), got {type(solution).__name__}")
    values = canonical_w2(solution.problem) if canonical is None else canonical
    return family_from_values(values, float(solution.w2), float(solution.tol))


def family_from_values(canonical: dict[str, float], best_w2: float, tol: float) -> str:
    r"""First kind in (vanilla, boot, cd, pd) with ``canonical[kind] <= best_w2 + tol``, else ``"mixed"``.

    Parameters
    ----------
    canonical : dict
        ``{kind: w2}`` for the canonical plans.
    best_w2 : float
        The optimum (or best known) :math:`W_2`.
    tol : float
        Absolute tolerance on :math:`W_2`, ``>= 0``.

    Returns
    -------
    str
    """
    if not tol >= 0:
        raise InputError(f"tol must be >= 0, got {tol!r}")
    for kind in CANONICAL_KINDS:
        if kind in canonical and canonical[kind] <= best_w2 + tol:
            return kind
    return "mixed"
