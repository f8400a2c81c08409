"""The ``ebmc-train`` command: every (ablation, seed) run on one feature store, then the summary tables."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
import tomllib
from pathlib import Path

from ebmc.store import open_store
from ebmc.store.errors import ConfigError, EbmcError, raise_if
from ebmc.store.flags import add_dataclass_flags, dataclass_from_args, overrides_from_args
from ebmc.store.shard import parse_shard
from ebmc.train.ablations import ABLATIONS, PRESETS, SWEEP_WEIGHTS, expand_names
from ebmc.train.config import (
    SECTIONS,
    RunConfig,
    build_section,
    from_dict,
    section_values,
)
from ebmc.train.protocols.config import PROTOCOLS, ProtocolConfig, resolve_names

DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)
# Top-level keys a --config TOML file may hold besides the [data] [model] [loss] [train] [protocol] sections.
TOML_KEYS = ("out", "seeds", "ablations")


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
                        help=f"named config overrides, any of: {' '.join(ABLATIONS)}; <weight>=<value> with "
                        f"weight one of {' '.join(SWEEP_WEIGHTS)} (sets loss.<weight>); presets: {' '.join(PRESETS)} "
                        "(default: full)")
    parser.add_argument("--protocols", nargs="*", default=None,
                        help=f"after training, evaluate each run under these robustness protocols: 'all' or any of "
                        f"{' '.join(PROTOCOLS)} (no names: --protocol.names)")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file with [data] [model] [loss] [train] [protocol] sections and optional out, "
                        "seeds, ablations")
    parser.add_argument("--jobs", type=_positive, default=1, metavar="N",
                        help="train N runs of the grid at once, in N processes sharing the CPU threads (or the GPU); "
                        "each run still writes its own resumable folder (default: 1)")
    parser.add_argument("--grid-shard", type=functools.partial(parse_shard, flag="--grid-shard"), default=None,
                        metavar="i/N", help="run only block i of N of the (ablation, seed) grid, e.g. one SLURM "
                        "array task each (i = 0..N-1, same --out); the summary covers every finished run in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.add_argument("--verify", action="store_true",
                        help="before training, check every store file's full content against its checksum "
                        "(sizes, structure and index checksums are always checked)")
    for prefix, cls in SECTIONS.items():
        add_dataclass_flags(parser, prefix, cls)
    add_dataclass_flags(parser, "protocol", ProtocolConfig)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1")
    return value


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: not valid TOML ({e})") from None


def resolve_config(args: argparse.Namespace) -> tuple[RunConfig, dict]:
    """The RunConfig (defaults < TOML < flags) and the TOML's top-level run options (its
    [protocol] section under "protocol")."""
    raw = _read_toml(args.config) if args.config else {}
    options = {k: raw.pop(k) for k in (*TOML_KEYS, "protocol") if k in raw}
    base = from_dict(raw)
    problems, sections = [], {}
    for prefix in SECTIONS:
        try:
            if prefix == "model":  # the preset, from the file or a flag, sits under every other setting
                given, _ = section_values(prefix, SECTIONS[prefix], dict(raw.get(prefix, {})))
                sections[prefix] = build_section(prefix, {**given, **overrides_from_args(args, prefix)})
            else:
                sections[prefix] = dataclass_from_args(args, prefix, getattr(base, prefix))
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return dataclasses.replace(base, **sections), options


def protocol_config(args: argparse.Namespace, toml_section: dict) -> ProtocolConfig:
    """The ProtocolConfig: defaults < the TOML's [protocol] section < ``--protocol.*`` flags."""
    values, unknown = section_values("protocol", ProtocolConfig, toml_section)
    raise_if(unknown, "invalid run config", ConfigError)
    return dataclass_from_args(args, "protocol", ProtocolConfig(**values))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ebmc-train``; returns the exit status (2 for bad input, 1 when a run diverged)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    problems: list[str] = []

    def checked(make, fallback):
        """``make()``, or ``fallback`` with its error kept, so every problem is reported at once."""
        try:
            return make()
        except EbmcError as e:
            problems.append(str(e))
            return fallback

    cfg, options = checked(lambda: resolve_config(args), (None, {}))
    seeds = list(args.seeds or options.get("seeds") or DEFAULT_SEEDS)
    ablations = checked(lambda: expand_names(list(args.ablations or options.get("ablations") or ["full"])), [])
    out = Path(args.out or options.get("out") or "runs")
    pcfg = checked(lambda: protocol_config(args, options.get("protocol", {})), None)
    protocols = None
    if args.protocols is not None and pcfg is not None:
        protocols = checked(lambda: resolve_names(args.protocols or pcfg.names), None)
    given = sorted(k for k in vars(args) if k.startswith("protocol."))
    if args.protocols is None and given:
        problems.append(f"--{' --'.join(given)}: protocol settings apply only with --protocols (e.g. --protocols all)")
    if problems:
        print("ebmc-train: error: " + "\n".join(problems), file=sys.stderr)
        return 2
    # heavy imports (torch) only once the command line is known to be good
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ebmc.train.data import resolve_device
    from ebmc.train.grid import run_grid
    from ebmc.train.report.summary import write_summary
    progress = not args.no_progress
    try:
        resolve_device(cfg.train.device)
    except RuntimeError as e:  # no CUDA here, or a name torch does not know
        print(f"ebmc-train: error: {e}", file=sys.stderr)
        return 2
    try:
        if args.verify:
            open_store(args.store, verify=True)
        with logging_redirect_tqdm():
            rows = run_grid(args.store, cfg, out, seeds, ablations, progress=progress, jobs=args.jobs,
                            shard=args.grid_shard)
            failed = [r for r in rows if r.get("failed")]
            rows = [r for r in rows if not r.get("failed")]
            conditions = [] if protocols is None or not rows else _run_protocols(
                args.store, rows, protocols, pcfg, cfg.train.device, progress)
    except EbmcError as e:  # bad input; anything else is a bug and keeps its traceback
        print(f"ebmc-train: error: {e}", file=sys.stderr)
        return 2
    for r in failed:
        print(f"ebmc-train: run {r['dir']} failed (marked in its failed.json): {r['failed']}", file=sys.stderr)
    if not rows:
        return 1
    _, markdown = write_summary(out)
    done = sum(not r["skipped"] for r in rows)
    print(f"\n{done} run(s) trained, {len(rows) - done} already finished (skipped); results in {out}/")
    if conditions:
        done = sum(not r["skipped"] for r in conditions)
        print(f"{done} per-condition model(s) trained, {len(conditions) - done} already finished (skipped)")
    print()
    print(markdown)
    return 1 if failed else 0


def _run_protocols(store: Path, rows: list[dict], names: tuple[str, ...], pcfg: ProtocolConfig, device: str,
                   progress: bool) -> list[dict]:
    """``--protocols``: train the per-condition models when asked, then evaluate every run of this
    command; returns the per-condition rows (empty unless per_condition_models)."""
    from ebmc.train.data import resolve_device
    from ebmc.train.protocols.conditions import train_conditions
    from ebmc.train.protocols.run import run_protocols
    device = resolve_device(device)
    conditions = []
    if pcfg.per_condition_models and "missing" in names:
        conditions = train_conditions(store, [r["dir"] for r in rows], device, pcfg.per_condition_mode, progress)
    for row in rows:
        run_protocols(row["dir"], names, pcfg, device=device)
    return conditions


if __name__ == "__main__":
    sys.exit(main())
