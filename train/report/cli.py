"""``ebmc-report RUNS_DIR [RUNS_DIR ...] [--out DIR]``: rebuild every table and figure from result files."""
from __future__ import annotations

import argparse
import logging
import sys

from ebmc.store import EbmcError

from .build import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ebmc-report", description="Build report.md and PNG figures from the result files of ebmc-train runs "
                                        "(no training). Several RUNS_DIRs give one comparison report.")
    parser.add_argument("runs_dirs", nargs="+", metavar="RUNS_DIR", help="folder(s) made by ebmc-train --out")
    parser.add_argument("--out", default=None, help="where report.md and the figures go "
                                                    "(default: the RUNS_DIR; required with several)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if len(args.runs_dirs) > 1 and args.out is None:
        parser.error("several RUNS_DIRs are compared into one report: give --out DIR")
    try:
        path = build_report(args.runs_dirs, args.out)
    except EbmcError as e:
        print(f"ebmc-report: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
