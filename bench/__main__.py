"""``python -m bench [--only NAME ...] [--list]``: run the benchmarks, write their results files
and rewrite bench/results/SUMMARY.md."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
import traceback
from pathlib import Path

from .common import BenchError, log, mark_start, setup
from .summary import write_summary

# In this order: the import leaves the 7 NYC layers in the bench database for the others;
# the piece-size sweep puts the parts back at the project's setting when it is done.
ORDERED = [
    "boundary_import_nyc",
    "subdivide_piece_size",
    "lookup_latency",
    "nyc_points_agreement",
    "duplicates_chicago",
    "nearby_query",
]


def _discovered() -> list[str]:
    """Other bench/*.py modules that declare ``NAME = "<module name>"`` and a ``run()``: they
    run after the ordered ones, alphabetically. (Read as text: nothing is imported to list.)"""
    found = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_") or path.stem in ORDERED:
            continue
        text = path.read_text()
        if re.search(rf'^NAME = "{path.stem}"$', text, re.M) and re.search(
            r"^def run\(", text, re.M
        ):
            found.append(path.stem)
    return found


BENCHMARKS = ORDERED + _discovered()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    chosen = [b for b in BENCHMARKS if not args.only or b in args.only]
    failed = []
    started = time.perf_counter()
    try:
        setup()
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    for name in chosen:
        log(f"=== {name}")
        t0 = time.perf_counter()
        mark_start()
        try:
            importlib.import_module(f"bench.{name}").run()
        except BenchError as exc:
            log(f"{name} failed: {exc}")
            failed.append(name)
        except Exception:  # noqa: BLE001 - report and go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        log(f"=== {name} took {time.perf_counter() - t0:.1f} s")
    write_summary()
    log(
        f"done in {time.perf_counter() - started:.1f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
