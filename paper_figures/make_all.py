"""Regenerate every paper figure: ``python paper_figures/make_all.py [--quick] [--out DIR]``.

Runs each ``fig_*.py`` in turn (in this process, sharing the point cache ``OUT/cache``) and writes
``<name>.pdf``, ``<name>.png`` and ``<name>.json`` into ``paper_figures/out/`` (or ``--out``).
A failing figure is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

import _common

FIGURES = ["fig_phase_diagram", "fig_w2_vs_lambda", "fig_optimal_trees", "fig_digits_spectrum", "fig_fidelity_cost"]


def main(argv=None) -> int:
    from opmerge.cli_options import MAX_WORKERS, ArgumentParser, bounded_int

    parser = ArgumentParser(prog="make_all.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None)
    parser.add_argument("--only", nargs="*", choices=FIGURES, help="run only these figures")
    args = parser.parse_args(argv)
    args.out = str(_common.checked_out(parser, args.out))
    failed = []
    for name in args.only or FIGURES:
        forwarded = ["--out", args.out] + (["--quick"] if args.quick else []) + (["--workers", str(args.workers)] if args.workers else [])
        start = time.perf_counter()
        try:
            importlib.import_module(name).main(forwarded)
        except Exception:  # report and go on with the other figures
            traceback.print_exc()
            failed.append(name)
            print(f"{name}: FAILED", file=sys.stderr)
            continue
        print(f"{name}: {time.perf_counter() - start:.1f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
