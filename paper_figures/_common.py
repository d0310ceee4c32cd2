"""Shared command line and settings of the paper figure scripts (run as ``python paper_figures/fig_x.py``).

The scripts import the installed package (``pip install -e .``): ``opmerge.analysis`` lives in the
``analysis/`` folder of the checkout and is importable only through the installation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "paper_figures" / "out"

#: the reference configuration of the paper (docs/theory.md §6)
SCHEDULE = "vp-cosine"
STEPS = 16
ETA_TAU = 0.5


def parse_args(description: str, argv=None) -> argparse.Namespace:
    """``--quick`` (small grids, seconds), ``--out DIR``, ``--workers``, ``--no-cache``, ``--progress``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small grids (for tests and previews)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the point cache OUT/cache")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache = None if args.no_cache else args.out / "cache"
    return args


def report(paths: dict) -> None:
    """Print the written files, one per line."""
    for path in paths.values():
        print(path)
