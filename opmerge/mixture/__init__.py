r"""The Gaussian-mixture regime (docs/mixture.md): nonlinear exact teachers, students of one step's
capacity, the approximation error of merging composite steps, and plans that account for it.
"""

from ._data import PRESETS, GaussianMixture, load_mixture, mixture_from_dict, mixture_preset
from ._family import FAMILIES, LeastSquaresFit, features, least_squares, train_parameters
from ._points import Expectation, marginal_points
from ._simulate import MixtureProblem, NodeFit, PlanSimulation, gaussian_w2, simulate_plan, w2_1d, w2_samples
from ._teacher import FlowResult, MixtureTeacher

__all__ = [
    "GaussianMixture", "PRESETS", "mixture_preset", "load_mixture", "mixture_from_dict",
    "MixtureTeacher", "FlowResult",
    "FAMILIES", "features", "least_squares", "train_parameters", "LeastSquaresFit",
    "Expectation", "marginal_points",
    "MixtureProblem", "NodeFit", "PlanSimulation", "simulate_plan", "w2_1d", "w2_samples", "gaussian_w2",
]
from ._planner import MixturePlan, PlannerTables, optimal_mixture_plan, plan_cost, planner_tables

__all__ += ["PlannerTables", "planner_tables", "plan_cost", "MixturePlan", "optimal_mixture_plan"]
