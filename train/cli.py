"""The ``ebmc-train`` command: every (ablation, seed) run on one feature store, then the summary tables."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import sys
import tomllib
from pathlib import Path

from ebmc.store import StoreError
from ebmc.store.flags import add_dataclass_flags, dataclass_from_args
from ebmc.train.ablations import ABLATIONS, check_names
from ebmc.train.config import SECTIONS, RunConfig, from_dict

DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)
# Top-level keys a --config TOML file may hold besides the [data] [model] [loss] [train] sections.
TOML_KEYS = ("out", "seeds", "ablations")


def _protocols_available() -> bool:
    """The robustness protocols live in an optional subpackage (ebmc.train.protocols)."""
    try:
        return importlib.util.find_spec("ebmc.train.protocols.run") is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ebmc-train", description="Train EBMC on a feature store for each seed and ablation; results "
        "go to OUT/<dataset>/<ablation>/seed-<seed>/, summaries to OUT/summary.csv and OUT/summary.md. "
        "Settings: defaults < --config TOML < flags.")
    parser.add_argument("store", type=Path, help="feature store folder (made by ebmc-import or ebmc-extract)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"one run per seed (default: {' '.join(map(str, DEFAULT_SEEDS))})")
    parser.add_argument("--ablations", nargs="+", default=None,
                        help=f"named config overrides, any of: {' '.join(ABLATIONS)} (default: full)")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file with [data] [model] [loss] [train] sections and optional out, seeds, ablations")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    for prefix, cls in SECTIONS.items():
        add_dataclass_flags(parser, prefix, cls)
    if _protocols_available():
        from ebmc.train.protocols.config import ProtocolConfig
        parser.add_argument("--protocols", nargs="*", default=None,
                            help="after training, evaluate each run under these robustness protocols ('all' or names)")
        add_dataclass_flags(parser, "protocol", ProtocolConfig)
    return parser


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path}: not valid TOML ({e})") from None


def resolve_config(args: argparse.Namespace) -> tuple[RunConfig, dict]:
    """The RunConfig (defaults < TOML < flags) and the TOML's top-level run options."""
    raw = _read_toml(args.config) if args.config else {}
    options = {k: raw.pop(k) for k in TOML_KEYS if k in raw}
    raw.pop("protocol", None)
    base = from_dict(raw)
    problems, sections = [], {}
    for prefix in SECTIONS:
        try:
            sections[prefix] = dataclass_from_args(args, prefix, getattr(base, prefix))
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ValueError("\n".join(problems))
    return dataclasses.replace(base, **sections), options


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ebmc-train``; returns the exit status (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    try:
        cfg, options = resolve_config(args)
        seeds = list(args.seeds or options.get("seeds") or DEFAULT_SEEDS)
        ablations = list(args.ablations or options.get("ablations") or ["full"])
        check_names(ablations)
        out = Path(args.out or options.get("out") or "runs")
    except ValueError as e:
        print(f"ebmc-train: error: {e}", file=sys.stderr)
        return 2
    # heavy imports (torch) only once the command line is known to be good
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ebmc.train.data import resolve_device
    from ebmc.train.runs import run_grid
    from ebmc.train.summary import write_summary
    try:
        with logging_redirect_tqdm():
            rows = run_grid(args.store, cfg, out, seeds, ablations, progress=not args.no_progress)
        if getattr(args, "protocols", None) is not None:
            _run_protocols(args, rows, resolve_device(cfg.train.device))
    except (StoreError, ValueError) as e:
        print(f"ebmc-train: error: {e}", file=sys.stderr)
        return 2
    _, markdown = write_summary(out)
    done = sum(not r["skipped"] for r in rows)
    print(f"\n{done} run(s) trained, {len(rows) - done} already finished (skipped); results in {out}/\n")
    print(markdown)
    return 0


def _run_protocols(args: argparse.Namespace, rows: list[dict], device) -> None:
    """``--protocols [NAMES]``: evaluate every run of this command (names default to --protocol.names)."""
    from ebmc.train.protocols.config import ProtocolConfig
    from ebmc.train.protocols.run import run_protocols
    pcfg = dataclass_from_args(args, "protocol", ProtocolConfig())
    for row in rows:
        run_protocols(row["dir"], args.protocols or pcfg.names, pcfg, device=device)


if __name__ == "__main__":
    sys.exit(main())
