r"""The torch bridge: real students on Gaussian data, read back into the linear-regime model.

Modules (each imports torch; the core ``opmerge`` never does):

* :mod:`experiments.gaussian` — Gaussian data with a given spectrum, diagonal or rotated;
* :mod:`experiments.teacher` — the one Gaussian teacher (data mean optional): exact denoiser and
  the DDIM / Heun samplers in torch;
* :mod:`experiments.training` — the one training loop (plain gradient steps, Adam, EMA);
* :mod:`experiments.students`, :mod:`experiments.executor` — student families and the plan
  executor (one distillation run per merge node, bottom-up, warm start); the image case is
  :mod:`experiments.images.distill`;
* :mod:`experiments.trajectory` — SCoT and TraFlow trajectory students;
* :mod:`experiments.readout` — effective gains, residuals and W2 (docs/theory.md §7), for both cases;
* :mod:`experiments.studies` (one module per study), :mod:`experiments.cli` — the validation
  studies and ``opmerge validate``.

Quick use::

    from opmerge.experiments import run_study
    result = run_study("exactness", quick=True, out="results/validate/exactness")
    print(result["summary"])

Choices are documented in ``docs/bridge.md``.
"""

from __future__ import annotations

__all__ = ["run_study", "StudyConfig", "STUDIES"]


def __getattr__(name: str):
    # lazy: ``import experiments`` stays cheap; the studies (and torch) load on first use
    if name in __all__:
        from . import studies

        return getattr(studies, name)
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")
