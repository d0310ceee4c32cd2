"""Shared command line and settings of the paper figure scripts (run as ``python paper_figures/fig_x.py``).

The scripts import the installed package (``pip install -e .``): ``opmerge.analysis`` lives in the
``analysis/`` folder of the checkout and is importable only through the installation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO_ROOT / "paper_figures" / "out"

#: the reference configuration of the paper (docs/theory.md §6)
SCHEDULE = "vp-cosine"
STEPS = 16
ETA_TAU = 0.5


def checked_out(parser: argparse.ArgumentParser, value) -> Path:
    """``--out`` checked before any work (:func:`opmerge.cli_options.check_out_folder`); a bad one is one error line, exit 2."""
    from opmerge.cli_options import check_out_folder
    from opmerge.errors import InputError

    try:
        return check_out_folder(value)
    except InputError as exc:
        parser.error(str(exc))
        raise  # parser.error exits


def parse_args(description: str, argv=None) -> argparse.Namespace:
    """``--quick`` (small grids, seconds), ``--out DIR``, ``--workers``, ``--no-cache``, ``--progress``.

    Bad options end with one ``opmerge: error:`` line and exit status 2 (:class:`opmerge.cli_options.ArgumentParser`).
    """
    from opmerge.cli_options import MAX_WORKERS, ArgumentParser, bounded_int

    parser = ArgumentParser(prog=Path(sys.argv[0]).name or "fig", description=description)
    parser.add_argument("--quick", action="store_true", help="small grids (for tests and previews)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None, help="worker processes (default: all cores)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the point cache OUT/cache")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    args.out = checked_out(parser, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache = None if args.no_cache else args.out / "cache"
    return args


def report(paths: dict) -> None:
    """Print the written files, one per line."""
    for path in paths.values():
        print(path)
