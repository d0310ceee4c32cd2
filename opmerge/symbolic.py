r"""Symbolic derivations (sympy) that check the numeric formulas of docs/theory.md §2 and §4.

Every function returns a :class:`Derivation`: a named chain of intermediate expressions ending in
a closed form. The functions *derive* the closed forms from first principles (the posterior-mean
denoiser, EDM's Heun scheme, the probability-flow ODE, gradient flow / gradient descent on the
student's loss) and verify each claimed identity symbolically; a failed identity raises
:class:`RuntimeError` at derivation time. The numeric code in :mod:`opmerge.teacher` and
:mod:`opmerge.model` is tested against these results.

This module needs only sympy. It is imported lazily (by the CLI's ``derive`` command and by the
tests), never by the numeric core modules.

The one-step symbols are shared by all step derivations (see :func:`step_symbols`):
``alpha_prev`` (:math:`\alpha' = \alpha_{n-1}`), ``alpha`` (:math:`\alpha_n`), ``sigma_prev``
(:math:`\sigma'`), ``sigma`` (:math:`\sigma_n`) and ``lam`` (:math:`\lambda`), all positive.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

import sympy

from ._validate import flag
from .errors import InputTypeError

__all__ = [
    "Derivation",
    "step_symbols",
    "ddim_step_expression",
    "heun_predictor_expression",
    "heun_step_expression",
    "exact_flow_expression",
    "student_flow_expression",
    "student_gd_expression",
    "warm_init_identity",
    "derive_all",
    "render_latex",
    "lambdify_ddim",
    "lambdify_heun",
]

# --------------------------------------------------------------------------------------------
# Symbols
# --------------------------------------------------------------------------------------------
ALPHA_PREV = sympy.Symbol("alpha_prev", positive=True)
ALPHA = sympy.Symbol("alpha", positive=True)
SIGMA_PREV = sympy.Symbol("sigma_prev", positive=True)
SIGMA = sympy.Symbol("sigma", positive=True)
LAM = sympy.Symbol("lam", positive=True)
Z = sympy.Symbol("z", positive=True)
Y = sympy.Symbol("y", positive=True)
S_CUR = sympy.Symbol("s", positive=True)
S_NEXT = sympy.Symbol("s_prev", positive=True)
T = sympy.Symbol("t", real=True)
T0 = sympy.Symbol("t_0", real=True)
C = sympy.Symbol("c", real=True)
TAU = sympy.Symbol("tau", nonnegative=True)
ETA = sympy.Symbol("eta", positive=True)
Q = sympy.Symbol("q", positive=True)
P = sympy.Symbol("P", real=True)
A0 = sympy.Symbol("a_0", real=True)
A_SYM = sympy.Symbol("a", real=True)
K = sympy.Symbol("K", integer=True, nonnegative=True)
C1 = sympy.Symbol("c_1", real=True)
P_REST = sympy.Symbol("P_rest", real=True)
R = sympy.Symbol("r", real=True)
W = sympy.Symbol("w", real=True)

#: How the symbols print in LaTeX.
_LATEX_NAMES: dict[sympy.Symbol, str] = {
    ALPHA_PREV: r"\alpha'",
    ALPHA: r"\alpha",
    SIGMA_PREV: r"\sigma'",
    SIGMA: r"\sigma",
    LAM: r"\lambda",
    S_NEXT: r"s'",
    P_REST: r"P'",
    A0: r"a_0",
    C1: r"c_1",
}


def step_symbols() -> tuple[sympy.Symbol, sympy.Symbol, sympy.Symbol, sympy.Symbol, sympy.Symbol]:
    r"""The symbols of one teacher step, in the argument order of the lambdified helpers.

    Returns
    -------
    tuple of sympy.Symbol
        ``(alpha_prev, alpha, sigma_prev, sigma, lam)``, i.e.
        :math:`(\alpha_{n-1}, \alpha_n, \sigma_{n-1}, \sigma_n, \lambda)`, all positive.
    """
    return (ALPHA_PREV, ALPHA, SIGMA_PREV, SIGMA, LAM)


# --------------------------------------------------------------------------------------------
# The Derivation record
# --------------------------------------------------------------------------------------------
def _latex_text(label: str) -> str:
    """Escape a plain-text label for ``\\text{...}``."""
    special = {
        "\\": r"\textbackslash{}",
        "_": r"\_",
        "&": r"\&",
        "%": r"\%",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "^": r"\textasciicircum{}",
        "~": r"\textasciitilde{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "|": r"\textbar{}",
    }
    return "".join(special.get(char, char) for char in label)


@dataclass(frozen=True)
class Derivation:
    r"""A symbolic derivation: intermediate steps and a closed-form result.

    Parameters
    ----------
    name : str
        Short name (e.g. ``"DDIM step"``).
    statement : str
        What is derived or verified, in words.
    steps : tuple of (str, sympy.Expr)
        Labelled intermediate expressions, in order.
    result : sympy.Expr
        The closed form (or, for a pure identity, the verified identity's right-hand side).
    """

    name: str
    statement: str
    steps: tuple[tuple[str, sympy.Expr], ...]
    result: sympy.Expr

    def latex(self) -> str:
        r"""A LaTeX block: a paragraph title, the statement, and an ``align*`` of ``label: expr`` lines.

        Returns
        -------
        str
        """
        lines = [rf"\paragraph{{{_latex_text(self.name)}}} {_latex_text(self.statement)}", r"\begin{align*}"]
        rows = [(label, expr) for label, expr in self.steps] + [("result", self.result)]
        body = [
            rf"  \text{{{_latex_text(label)}}} &: {sympy.latex(expr, symbol_names=_LATEX_NAMES)}"
            for label, expr in rows
        ]
        lines.append(" \\\\\n".join(body))
        lines.append(r"\end{align*}")
        return "\n".join(lines)


def _require_zero(expr: sympy.Expr, what: str) -> None:
    """Raise ``RuntimeError`` unless ``expr`` simplifies to 0."""
    if sympy.simplify(expr) != 0:
        raise RuntimeError(f"symbolic check failed: {what} (residual {expr})")


# --------------------------------------------------------------------------------------------
# docs/theory.md §2: teacher operators
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def ddim_step_expression() -> Derivation:
    r"""Derive the DDIM step operator from the posterior-mean denoiser.

    With :math:`\hat x_0 = \alpha\lambda/(\alpha^2\lambda+\sigma^2)\,z` and the DDIM update
    :math:`z' = \alpha'\hat x_0 + \sigma'(z - \alpha\hat x_0)/\sigma`, the step is the scalar

    .. math:: A = \frac{\alpha'\alpha\lambda + \sigma'\sigma}{\alpha^2\lambda + \sigma^2}
                = \frac{\langle v', v\rangle}{\|v\|^2}, \qquad v = (\alpha\sqrt\lambda, \sigma).

    Returns
    -------
    Derivation
        ``result`` is :math:`A` in the step symbols (see :func:`step_symbols`).
    """
    x0_hat = ALPHA * LAM / (ALPHA**2 * LAM + SIGMA**2) * Z
    eps_hat = (Z - ALPHA * x0_hat) / SIGMA
    z_next = ALPHA_PREV * x0_hat + SIGMA_PREV * eps_hat
    ratio = sympy.factor(sympy.cancel(z_next / Z))
    closed = (ALPHA_PREV * ALPHA * LAM + SIGMA_PREV * SIGMA) / (ALPHA**2 * LAM + SIGMA**2)
    v_prev = sympy.Matrix([ALPHA_PREV * sympy.sqrt(LAM), SIGMA_PREV])
    v_cur = sympy.Matrix([ALPHA * sympy.sqrt(LAM), SIGMA])
    projection = v_prev.dot(v_cur) / v_cur.dot(v_cur)
    _require_zero(ratio - closed, "DDIM step != (alpha' alpha lam + sigma' sigma)/(alpha^2 lam + sigma^2)")
    _require_zero(ratio - projection, "DDIM step != <v', v>/|v|^2")
    return Derivation(
        name="DDIM step",
        statement="the posterior-mean denoiser in the DDIM update gives A, the projection of v' on v over the squared norm of v",
        steps=(
            ("denoiser x0_hat", x0_hat),
            ("noise estimate eps_hat", sympy.simplify(eps_hat)),
            ("DDIM update z'", z_next),
            ("A = z'/z", ratio),
            ("projection form (v' . v) / (v . v)", projection),
        ),
        result=closed,
    )


def _edm_pieces():
    """Denoiser and slope in EDM variables (symbols y, s)."""

    def denoiser(y, s):
        return LAM / (LAM + s**2) * y

    def slope(y, s):
        return (y - denoiser(y, s)) / s

    return denoiser, slope


def _to_step_symbols(expr: sympy.Expr) -> sympy.Expr:
    """Substitute s = sigma/alpha, s' = sigma'/alpha' and put over a common denominator."""
    return sympy.factor(sympy.cancel(expr.subs({S_CUR: SIGMA / ALPHA, S_NEXT: SIGMA_PREV / ALPHA_PREV})))


@functools.lru_cache(maxsize=None)
def heun_predictor_expression() -> Derivation:
    r"""The Euler predictor of EDM's Heun step, mapped back to :math:`z` (equals DDIM's :math:`A`).

    In :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`: :math:`y_e = y + (s'-s)\,d(y,s)` with
    :math:`d = (y - D)/s`, :math:`D = \lambda/(\lambda+s^2)\,y`; then
    :math:`H_e = \tfrac{\alpha'}{\alpha}\, y_e/y`.

    Returns
    -------
    Derivation
        ``result`` is :math:`H_e` in the step symbols; it is verified to equal DDIM's :math:`A`.
    """
    denoiser, slope = _edm_pieces()
    y_euler = Y + (S_NEXT - S_CUR) * slope(Y, S_CUR)
    factor_s = sympy.factor(sympy.cancel(y_euler / Y))
    h_e = _to_step_symbols(ALPHA_PREV / ALPHA * factor_s)
    _require_zero(h_e - ddim_step_expression().result, "Heun predictor != DDIM step")
    return Derivation(
        name="Heun predictor (Euler)",
        statement="the Euler predictor of Heun's method in EDM variables equals the DDIM step",
        steps=(
            ("denoiser D(y, s)", denoiser(Y, S_CUR)),
            ("slope d(y, s)", sympy.simplify(slope(Y, S_CUR))),
            ("Euler predictor y_e", y_euler),
            ("y_e / y", factor_s),
            ("H_e = (alpha'/alpha) y_e / y", h_e),
        ),
        result=h_e,
    )


def heun_step_expression(final_step: bool = False) -> Derivation:
    r"""Derive EDM's Heun step operator in the linear regime.

    In :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`, with :math:`D(y,s) = \lambda/(\lambda+s^2)\,y`
    and :math:`d(y,s) = (y - D)/s`:

    .. math:: y_e = y + (s'-s)\,d(y,s), \qquad
              y' = y + \tfrac{s'-s}{2}\big(d(y,s) + d(y_e,s')\big), \qquad
              H = \frac{\alpha'}{\alpha}\,\frac{y'}{y}.

    Parameters
    ----------
    final_step : bool
        ``True``: the step into :math:`s' = 0` (:math:`\sigma' = 0`), a plain Euler step as in EDM,
        :math:`H = \tfrac{\alpha'}{\alpha}\tfrac{\lambda}{\lambda+s^2}`.

    Returns
    -------
    Derivation
        ``result`` is :math:`H` in the step symbols (without ``sigma_prev`` when ``final_step``).
        The general result is checked against the closed form used by :func:`opmerge.teacher.heun_step`:
        :math:`H = \tfrac{\alpha'}{\alpha}\big(1 + \tfrac{s'-s}{2}(\tfrac{s}{\lambda+s^2} + e\tfrac{s'}{\lambda+s'^2})\big)`,
        :math:`e = (\lambda + s s')/(\lambda+s^2)`.

    Raises
    ------
    InputTypeError
        When ``final_step`` is not a bool.
    """
    return _heun_step_expression(flag(final_step, "final_step"))


@functools.lru_cache(maxsize=None)
def _heun_step_expression(final_step: bool) -> Derivation:
    """:func:`heun_step_expression` for a checked ``final_step`` (cached)."""
    denoiser, slope = _edm_pieces()
    if final_step:
        y_euler = Y + (0 - S_CUR) * slope(Y, S_CUR)
        ratio = sympy.factor(sympy.cancel(y_euler / Y))
        h = sympy.factor(sympy.cancel((ALPHA_PREV / ALPHA * ratio).subs(S_CUR, SIGMA / ALPHA)))
        _require_zero(h - ALPHA_PREV / ALPHA * LAM / (LAM + (SIGMA / ALPHA) ** 2), "final Euler step")
        _require_zero(h - ddim_step_expression().result.subs(SIGMA_PREV, 0), "final Euler step != DDIM into sigma' = 0")
        return Derivation(
            name="Heun final step (Euler into s' = 0)",
            statement="the last step into s' = 0 is a plain Euler step, as in EDM",
            steps=(
                ("denoiser D(y, s)", denoiser(Y, S_CUR)),
                ("Euler to s' = 0", y_euler),
                ("y' / y", ratio),
            ),
            result=h,
        )
    d_cur = slope(Y, S_CUR)
    y_euler = Y + (S_NEXT - S_CUR) * d_cur
    d_next = slope(y_euler, S_NEXT)
    y_new = Y + (S_NEXT - S_CUR) / 2 * (d_cur + d_next)
    y_new_display = Y + (S_NEXT - S_CUR) / 2 * (sympy.simplify(d_cur) + sympy.factor(sympy.cancel(d_next)))
    ratio = sympy.factor(sympy.cancel(y_new / Y))
    h = _to_step_symbols(ALPHA_PREV / ALPHA * ratio)
    e = (LAM + S_CUR * S_NEXT) / (LAM + S_CUR**2)
    closed_s = 1 + (S_NEXT - S_CUR) / 2 * (S_CUR / (LAM + S_CUR**2) + e * S_NEXT / (LAM + S_NEXT**2))
    closed = (ALPHA_PREV / ALPHA * closed_s).subs({S_CUR: SIGMA / ALPHA, S_NEXT: SIGMA_PREV / ALPHA_PREV})
    _require_zero(h - closed, "Heun step != documented closed form")
    return Derivation(
        name="Heun step",
        statement="EDM's Heun step (Euler predictor, trapezoid corrector) in y = z/alpha, s = sigma/alpha",
        steps=(
            ("denoiser D(y, s)", denoiser(Y, S_CUR)),
            ("slope d(y, s)", sympy.simplify(d_cur)),
            ("Euler predictor y_e", sympy.factor(y_euler)),
            ("slope at predictor d(y_e, s')", sympy.factor(sympy.cancel(d_next))),
            ("trapezoid corrector y'", y_new_display),
            ("y' / y", ratio),
            ("H = (alpha'/alpha) y' / y", h),
        ),
        result=h,
    )


@functools.lru_cache(maxsize=None)
def exact_flow_expression() -> Derivation:
    r"""Verify that :math:`z(t) = \|v(t)\|/\|v(t_0)\|\, z(t_0)` solves the probability-flow ODE.

    For a generic schedule :math:`(\alpha(t), \sigma(t))` and the Gaussian score
    :math:`\nabla\log p_t(z) = -z/(\alpha^2\lambda+\sigma^2)`, the PF-ODE drift is
    :math:`f(z,t) = \tfrac{\dot\alpha}{\alpha} z - (\sigma\dot\sigma - \sigma^2\tfrac{\dot\alpha}{\alpha})\,\nabla\log p_t(z)`.
    Since :math:`f` is linear in :math:`z`, it suffices that
    :math:`\tfrac{d}{dt}\sqrt{\alpha^2\lambda+\sigma^2} = f(\sqrt{\alpha^2\lambda+\sigma^2}, t)`,
    which is checked symbolically.

    Returns
    -------
    Derivation
        ``result`` is :math:`E(t_0 \to t) = \|v(t)\| / \|v(t_0)\|`.
    """
    alpha = sympy.Function("alpha")
    sigma = sympy.Function("sigma")
    a, s = alpha(T), sigma(T)
    a_dot, s_dot = sympy.diff(a, T), sympy.diff(s, T)
    norm = sympy.sqrt(a**2 * LAM + s**2)

    def score(z):
        return -z / (a**2 * LAM + s**2)

    def drift(z):
        return a_dot / a * z - (s * s_dot - s**2 * a_dot / a) * score(z)

    candidate = C * norm
    lhs = sympy.diff(candidate, T)
    rhs = drift(candidate)
    residual = sympy.simplify(lhs - rhs)
    if residual != 0:
        raise RuntimeError(f"symbolic check failed: |v(t)| does not solve the PF-ODE (residual {residual})")
    result = norm / norm.subs(T, T0)
    return Derivation(
        name="Exact probability flow",
        statement="z(t) = c |v(t)| solves dz/dt = f(z, t) for the Gaussian score, so E = |v_i|/|v_j|",
        steps=(
            ("score", score(Z)),
            ("PF-ODE drift f(z, t)", drift(Z)),
            ("candidate z(t)", candidate),
            ("dz/dt", sympy.simplify(lhs)),
            ("f(z(t), t)", sympy.simplify(rhs)),
            ("dz/dt - f(z(t), t)", residual),
        ),
        result=result,
    )


# --------------------------------------------------------------------------------------------
# docs/theory.md §4: the student model
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def student_flow_expression() -> Derivation:
    r"""Solve the student's gradient flow :math:`\dot a = -\eta\,\partial_a[q(a-P)^2]`, :math:`a(0) = a_0`.

    Returns
    -------
    Derivation
        ``result`` is :math:`a(\tau) = P + (a_0 - P)e^{-2\eta q\tau}` (from ``sympy.dsolve``).
    """
    a_fn = sympy.Function("a")
    loss = Q * (A_SYM - P) ** 2
    grad = sympy.diff(loss, A_SYM)
    ode = sympy.Eq(a_fn(TAU).diff(TAU), -ETA * grad.subs(A_SYM, a_fn(TAU)))
    solution = sympy.dsolve(ode, a_fn(TAU), ics={a_fn(0): A0}).rhs
    closed = P + (A0 - P) * sympy.exp(-2 * ETA * Q * TAU)
    _require_zero(solution - closed, "gradient flow solution")
    return Derivation(
        name="Student gradient flow",
        statement="gradient flow on the loss q (a - P)^2 from a_0",
        steps=(
            ("loss", loss),
            ("gradient", grad),
            ("ODE right-hand side", ode.rhs),
            ("dsolve", solution),
        ),
        result=closed,
    )


@functools.lru_cache(maxsize=None)
def student_gd_expression() -> Derivation:
    r"""Solve :math:`K` gradient steps :math:`a_{k+1} = a_k - 2\eta q(a_k - P)` from :math:`a_0`.

    Returns
    -------
    Derivation
        ``result`` is :math:`a_K = P + (a_0 - P)(1 - 2\eta q)^K` (from ``sympy.rsolve``).
    """
    a_fn = sympy.Function("a")
    k = sympy.Symbol("k", integer=True, nonnegative=True)
    recurrence = a_fn(k + 1) - a_fn(k) + ETA * 2 * Q * (a_fn(k) - P)
    solution = sympy.rsolve(recurrence, a_fn(k), {a_fn(0): A0})
    if solution is None:  # pragma: no cover - sympy solves this linear recurrence
        raise RuntimeError("sympy.rsolve could not solve the gradient-descent recurrence")
    solution = solution.subs(k, K)
    closed = P + (A0 - P) * (1 - 2 * ETA * Q) ** K
    _require_zero(solution - closed, "gradient descent solution")
    # induction check of the closed form: a_{K+1} - a_K + 2 eta q (a_K - P) = 0
    _require_zero(closed.subs(K, K + 1) - closed + 2 * ETA * Q * (closed - P), "gd closed form fails the recurrence")
    return Derivation(
        name="Student gradient descent",
        statement="K steps of size eta on the exact loss q (a - P)^2 from a_0",
        steps=(
            ("recurrence (= 0)", recurrence),
            ("rsolve", solution),
        ),
        result=closed,
    )


@functools.lru_cache(maxsize=None)
def warm_init_identity() -> Derivation:
    r"""Warm init :math:`a_0 = c_1`, :math:`P = c_1 P'`, :math:`r = 1 - w`: :math:`a = c_1(wP' + 1 - w)`.

    Returns
    -------
    Derivation
        ``result`` is :math:`c_1 (w P' + 1 - w)`.
    """
    general = P + (A0 - P) * R
    warm = general.subs({A0: C1, P: C1 * P_REST, R: 1 - W})
    closed = C1 * (W * P_REST + 1 - W)
    if sympy.expand(warm - closed) != 0:
        raise RuntimeError("symbolic check failed: warm-init identity")
    return Derivation(
        name="Warm-init node value",
        statement="with a_0 = c_1, P = c_1 P' and r = 1 - w the node value is c_1 (w P' + 1 - w)",
        steps=(
            ("node value a", general),
            ("substitute a_0 = c_1, P = c_1 P', r = 1 - w", warm),
            ("expanded", sympy.expand(warm)),
        ),
        result=closed,
    )


def derive_all() -> list[Derivation]:
    """All derivations, docs/theory.md §2 first, then §4.

    Returns
    -------
    list of Derivation
        DDIM step, Heun predictor, Heun step, Heun final step, exact flow, student gradient flow,
        student gradient descent, warm-init identity.
    """
    return [
        ddim_step_expression(),
        heun_predictor_expression(),
        heun_step_expression(False),
        heun_step_expression(True),
        exact_flow_expression(),
        student_flow_expression(),
        student_gd_expression(),
        warm_init_identity(),
    ]


def render_latex(derivations: Iterable[Derivation] | None = None) -> str:
    """Join derivations into one LaTeX text (what ``opmerge derive`` prints).

    Parameters
    ----------
    derivations : iterable of Derivation, optional
        Defaults to :func:`derive_all`.

    Returns
    -------
    str

    Raises
    ------
    InputTypeError
        When ``derivations`` is not an iterable of :class:`Derivation`.
    """
    if derivations is None:
        derivations = derive_all()
    elif isinstance(derivations, (str, bytes)) or not isinstance(derivations, Iterable):
        raise InputTypeError(f"derivations must be an iterable of Derivation, got {type(derivations).__name__}")
    derivations = list(derivations)
    for k, item in enumerate(derivations):
        if not isinstance(item, Derivation):
            raise InputTypeError(f"derivations[{k}] must be a Derivation, got {type(item).__name__}")
    return "\n\n".join(d.latex() for d in derivations) + "\n"


# --------------------------------------------------------------------------------------------
# Numeric helpers for tests
# --------------------------------------------------------------------------------------------
def lambdify_ddim() -> Callable:
    """Numpy function ``(alpha_prev, alpha, sigma_prev, sigma, lam) -> A`` from :func:`ddim_step_expression`."""
    return sympy.lambdify(step_symbols(), ddim_step_expression().result, "numpy")


def lambdify_heun(final_step: bool = False) -> Callable:
    """Numpy function ``(alpha_prev, alpha, sigma_prev, sigma, lam) -> H`` from :func:`heun_step_expression`.

    Parameters
    ----------
    final_step : bool
        Use the plain Euler step into :math:`\\sigma' = 0` (``sigma_prev`` is then ignored).

    Raises
    ------
    InputTypeError
        When ``final_step`` is not a bool.
    """
    return sympy.lambdify(step_symbols(), _heun_step_expression(flag(final_step, "final_step")).result, "numpy")
