"""The text notation of plans: tokenizer, grammar and parse errors (private; needs no tree type)."""

from __future__ import annotations

import re

from typing import Any, Callable

from .._validate import ECHO_LIMIT, echo
from ..errors import InputError, InputTypeError

__all__ = ["PlanParseError"]


# ---------------------------------------------------------------------------------------------
# text notation
# ---------------------------------------------------------------------------------------------


class PlanParseError(InputError):
    """A malformed plan text: an :class:`~opmerge.errors.InputError` (a ``ValueError``) that knows where the problem is.

    Attributes
    ----------
    problem : str
        The message without the echo of the text.
    position : int
        0-based character position of the problem in ``text`` (``len(text)`` for "end of text").
    text : str
        The text being parsed.

    Notes
    -----
    ``str(err)`` is ``problem`` followed by the text and a caret line under ``position``. A text
    longer than about 80 characters is echoed as a window around ``position`` with ``...`` for
    the parts cut, so a long plan is never copied whole into the message.
    """

    def __init__(self, problem: str, position: int, text: str) -> None:
        self.problem = problem
        self.position = position
        self.text = text
        shown, caret = _excerpt(text, position)
        line = "".join(" " if c.isspace() else c for c in shown)
        super().__init__(f"{problem}\n  {line}\n  {' ' * caret}^")


def _excerpt(text: str, position: int, limit: int = ECHO_LIMIT) -> tuple[str, int]:
    """The part of ``text`` shown in a message (at most ``limit`` characters around ``position``) and the caret's column in it."""
    if len(text) <= limit:
        return text, position
    start = min(max(position - limit // 2, 0), max(len(text) - limit, 0))
    end = min(start + limit, len(text))
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + text[start:end] + tail, len(head) + position - start


_DIGITS = re.compile(r"[0-9]+")
#: longest leaf accepted (Python refuses to convert numbers of more than 4300 digits)
_MAX_LEAF_DIGITS = 18
_SIGNED = re.compile(r"[+-][0-9]+")


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split into ``(kind, value, position)``; kind is ``"("``, ``")"``, ``"|"`` or ``"int"``."""
    tokens: list[tuple[str, int, int]] = []
    pos, n = 0, len(text)
    while pos < n:
        c = text[pos]
        if c.isspace():
            pos += 1
        elif c in "()|":
            tokens.append((c, 0, pos))
            pos += 1
        else:
            end = pos
            while end < n and not text[end].isspace() and text[end] not in "()|":
                end += 1
            word = text[pos:end]
            if _DIGITS.fullmatch(word):
                if len(word.lstrip("0")) > _MAX_LEAF_DIGITS:
                    raise PlanParseError(
                        f"leaf {echo(word)!r} at position {pos} has more than {_MAX_LEAF_DIGITS} digits: no plan has that many teacher steps",
                        pos,
                        text,
                    )
                value = int(word)
                if value < 1:
                    raise PlanParseError(
                        f"leaf {value} at position {pos}: leaves (teacher steps) must be >= 1", pos, text
                    )
                tokens.append(("int", value, pos))
            elif _SIGNED.fullmatch(word):
                raise PlanParseError(
                    f"leaf {echo(word)!r} at position {pos}: leaves (teacher steps) must be positive integers "
                    "written as plain digits",
                    pos,
                    text,
                )
            else:
                raise PlanParseError(
                    f"non-integer token {echo(word)!r} at position {pos}: expected a leaf (positive integer), "
                    "'(', ')' or '|'",
                    pos,
                    text,
                )
            pos = end
    return tokens


def _check_balance(tokens: list[tuple[str, int, int]], text: str) -> None:
    open_positions: list[int] = []
    for kind, _, pos in tokens:
        if kind == "(":
            open_positions.append(pos)
        elif kind == ")":
            if not open_positions:
                raise PlanParseError(
                    f"unbalanced parenthesis at position {pos}: ')' has no matching '('", pos, text
                )
            open_positions.pop()
        elif kind == "|" and open_positions:
            raise PlanParseError(
                f"'|' inside parentheses at position {pos}: segments are separated only at the top level",
                pos,
                text,
            )
    if open_positions:
        pos = open_positions[-1]
        raise PlanParseError(f"unbalanced parenthesis at position {pos}: '(' is never closed", pos, text)


def _parse_segments(text: str, make_node: Callable[[tuple], Any]) -> tuple[list, list[int]]:
    """Parse ``tree ("|" tree)*``; leaves must run down by one. Returns trees and their start positions.

    ``make_node(children)`` builds a merge node from its (checked: >= 2, contiguous) children, so
    that this module needs no tree type (the tree and plan modules import it, not the reverse).
    """
    if not isinstance(text, str):
        raise InputTypeError(f"text must be a str, got {type(text).__name__}")
    tokens = _tokenize(text)
    if not tokens:
        raise PlanParseError("empty plan text: expected a tree such as '(4 3 2 1)'", 0, text)
    _check_balance(tokens, text)

    segments: list = []
    starts: list[int] = []
    frames: list[tuple[int, list]] = []  # open nodes: (position of '(', children so far)
    need_tree = True  # at top level: a tree is expected next (at start and after '|')
    bar_pos = -1  # position of the last top-level '|'
    prev_leaf: int | None = None

    def place(tree: Any, pos: int) -> None:
        nonlocal need_tree
        if frames:
            frames[-1][1].append(tree)
        else:
            segments.append(tree)
            starts.append(pos)
            need_tree = False

    for kind, value, pos in tokens:
        if kind in ("(", "int") and not frames and not need_tree:
            found = "'('" if kind == "(" else f"leaf {value}"
            raise PlanParseError(
                f"expected ' | ' between segments at position {pos}, found {found}", pos, text
            )
        if kind == "(":
            frames.append((pos, []))
        elif kind == "int":
            if prev_leaf is not None and value != prev_leaf - 1:
                if prev_leaf == 1:
                    problem = f"found leaf {value} after leaf 1 at position {pos}, but leaf 1 must be the last"
                else:
                    problem = f"expected leaf {prev_leaf - 1} after leaf {prev_leaf}, found {value} at position {pos}"
                raise PlanParseError(f"{problem} (leaves must run N, N-1, ..., 1)", pos, text)
            prev_leaf = value
            place(value, pos)
        elif kind == ")":
            start, children = frames.pop()
            if not children:
                raise PlanParseError(f"empty merge node '()' at position {start}", start, text)
            if len(children) == 1:
                raise PlanParseError(
                    f"merge node with a single child at position {start} (a merge node needs >= 2 children)",
                    start,
                    text,
                )
            place(make_node(tuple(children)), start)
        else:  # "|" at top level (guaranteed by _check_balance)
            if need_tree:
                where = "at the start" if not segments else "after '|'"
                raise PlanParseError(
                    f"expected a tree before '|' at position {pos}, found '|' {where}", pos, text
                )
            need_tree = True
            bar_pos = pos
    if need_tree:
        raise PlanParseError(
            f"expected a tree after the '|' at position {bar_pos}, found end of text at position {len(text)}",
            len(text),
            text,
        )
    return segments, starts
