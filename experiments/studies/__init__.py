r"""Validation studies: real torch students against the model's predictions (``opmerge validate``).

=============  ==============================================================================
study          question
=============  ==============================================================================
``exactness``  Do linear students trained by exact-loss gradient descent reproduce the model's
               ``training='gd'`` closed form for every canonical plan and the optimal one
               (diagonal and full linear; rotated covariance with full linear)?
``sgd``        Is the same true in expectation for SGD on samples (coverage of the prediction
               by the 99% interval of the mean gain over independent runs)?
``ranking``    Do MLP students (Adam, fixed budget) rank vanilla/BOOT/CD/PD/optimal as the model
               does across a :math:`\lambda` grid, and where is the measured BOOT-vs-vanilla crossover?
``scot``       What do SCoT and TraFlow students learn per eigen-direction, and which merge plan's
               prediction do they sit closest to?
``mixture``    Do MLP students on Gaussian-mixture data rank merge plans as the core's mixture
               simulation and planner cost predict (short and long budgets; docs/bridge_mixture.md)?
=============  ==============================================================================

One module per study (:mod:`.exactness`, :mod:`.sgd`, :mod:`.ranking`, :mod:`.scot`), each with its
frozen configuration (a :class:`StudyConfig`), ``run`` and ``figure``; :mod:`._common` holds what they
share. :func:`run_study` ``(name, config) -> dict`` writes ``<out>/<study>.json`` (configuration,
predicted and measured values, summary, provenance) and the figure ``<out>/<study>-figure.{pdf,png,json}``;
finished units are cached in ``<out>/units/`` (:class:`opmerge.io.ResultCache`), so a rerun skips them.
``quick=True`` selects a small size for tests (seconds on a CPU). The choices behind each study are
documented in ``docs/bridge.md``.
"""

from __future__ import annotations

import time
from dataclasses import fields

import torch

from opmerge.errors import InputError, InputTypeError

from . import exactness, mixture, ranking, scot, sgd
from ._common import DEFAULT_OUT, DEFAULT_PLANS, StudyConfig, finish, resolve_plans, unit_cache
from .exactness import EXACTNESS_BOUND, ExactnessConfig
from .mixture import MixtureConfig
from .ranking import RankingConfig
from .scot import ScotConfig
from .sgd import SGD_COVERAGE_BOUND, SgdConfig

__all__ = ["STUDIES", "CONFIGS", "StudyConfig", "ExactnessConfig", "SgdConfig", "RankingConfig", "ScotConfig", "MixtureConfig", "run_study",
           "study_config", "default_config", "resolve_plans", "DEFAULT_OUT", "DEFAULT_PLANS", "EXACTNESS_BOUND", "SGD_COVERAGE_BOUND"]

#: study name -> (configuration class, module with ``run`` and ``figure``)
_STUDIES = {"exactness": (ExactnessConfig, exactness), "sgd": (SgdConfig, sgd), "ranking": (RankingConfig, ranking), "scot": (ScotConfig, scot),
            "mixture": (MixtureConfig, mixture)}
STUDIES = tuple(_STUDIES)
#: study name -> its configuration class
CONFIGS = {name: cls for name, (cls, _) in _STUDIES.items()}


def _check_name(name: str) -> None:
    if name not in _STUDIES:
        raise InputError(f"study must be one of {', '.join(STUDIES)}, got {name!r}")


def study_config(name: str, values: dict | None = None, **overrides) -> StudyConfig:
    """The configuration of study ``name`` from a dict of fields (``None`` values are dropped).

    Raises
    ------
    InputError
        For an unknown study, or a field (not ``None``) that the study does not have.
    """
    _check_name(name)
    cls = CONFIGS[name]
    merged = {**(values or {}), **overrides}
    merged.pop("study", None)
    known = {f.name for f in fields(cls)}
    unknown = sorted(key for key, value in merged.items() if key not in known and value is not None)
    if unknown:
        raise InputError(f"the {name} study has no option {', '.join(unknown)} (its options: {', '.join(sorted(known))})")
    return cls(**{key: value for key, value in merged.items() if key in known})


def default_config(study: str, quick: bool = False) -> dict:
    """The defaults of ``study`` (full size, or ``quick``); see ``docs/bridge.md`` for the reasons."""
    _check_name(study)
    return CONFIGS[study].defaults(quick)


def run_study(name: str, config: StudyConfig | dict | None = None, **overrides) -> dict:
    """Run one validation study and return its result (also written to ``<out>/<name>.json``).

    Parameters
    ----------
    name : {"exactness", "sgd", "ranking", "scot", "mixture"}
    config : StudyConfig or dict, optional
        The study's configuration, or a dict of its fields; ``None`` fields take the defaults.
    **overrides
        More fields (override ``config``).

    Returns
    -------
    dict
        ``config`` (resolved), ``summary``, the per-plan / per-direction predicted and measured
        values, ``figure`` (paths), ``unit_cache`` (cached / computed counts), ``elapsed_s``,
        ``result_file`` and ``provenance``.
    """
    _check_name(name)
    if config is None:
        values: dict = {}
    elif isinstance(config, StudyConfig):
        if config.study != name:
            raise InputError(f"config is a {type(config).__name__} (study {config.study!r}), not one of study {name!r}")
        values = {f.name: getattr(config, f.name) for f in fields(config)}
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise InputTypeError(f"config must be a StudyConfig, a dict or None, got {type(config).__name__}")
    cfg = study_config(name, values, **overrides).resolved()
    started = time.perf_counter()
    cache = unit_cache(cfg)
    module = _STUDIES[name][1]
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        body = module.run(cfg, cache)
    finally:
        torch.set_num_threads(old_threads)
    return finish(cfg, body, module.figure, started, cache)
