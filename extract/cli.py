"""``ebmc-extract``: raw videos (+ manifest) -> cached, committed feature store; prints summaries and failures.

    ebmc-extract VIDEOS_DIR --out FEATURES_DIR [--manifest FILE] [--dataset NAME]
                 [--modalities text audio vision] [--workers N] [--shard i/N | --commit]
                 [--asr auto|off|always] [--align none|words]
                 [--text.model ...] [--audio.backend ...] [--vision.fps ...] [--asr.model ...]

Exit status: 0 when every utterance was extracted, 1 when some failed (the store is still
committed, failures marked "failed"), 2 when the input or settings are unusable (nothing done),
128 + the signal's number when stopped by SIGTERM/SIGINT (workers stopped; a rerun resumes).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Sequence

from ebmc.store import MODALITIES, ConfigError, EbmcError
from ebmc.store.flags import add_dataclass_flags, dataclass_from_args
from ebmc.store.shard import parse_shard

from .asr import AsrConfig
from .extractors.config import AudioConfig, TextConfig, VisionConfig
from .manifest import load_manifest
from .pipeline import ModalityReport, run
from .workers import Interrupted, stop_on_signals

CONFIGS = {"text": TextConfig, "audio": AudioConfig, "vision": VisionConfig}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebmc-extract", description="Extract text, audio and vision features from videos into a feature store "
        "(cached per utterance: reruns only extract what is missing or changed).",
        epilog="Manifest formats: manifests/README.md. Cluster use: run --shard i/N for i = 0..N-1 "
        "(same --out), then once with --commit.")
    p.add_argument("videos", metavar="VIDEOS_DIR", help="folder of the videos; manifest paths are relative to it")
    p.add_argument("--out", required=True, metavar="FEATURES_DIR", help="features folder; the store goes to FEATURES_DIR/<dataset>")
    p.add_argument("--manifest", metavar="FILE", help="our CSV/Parquet manifest or an MMSA label.csv "
                   "(default: VIDEOS_DIR/label.csv if present, else every video in VIDEOS_DIR, unlabelled)")
    p.add_argument("--dataset", metavar="NAME", help="store name (default: the name of VIDEOS_DIR)")
    p.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES), help="what to extract")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes for audio and vision (text is batched)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--shard", type=parse_shard, metavar="i/N", help="extract only shard i of N into the shared cache; no commit")
    group.add_argument("--commit", action="store_true", help="extract nothing; commit the store from the cache all shards filled")
    p.add_argument("--asr", dest="asr.mode", choices=("auto", "off", "always"), default=argparse.SUPPRESS,
                   help="speech recognition: 'auto' transcribes utterances without a transcript (default), 'off', "
                        "'always' transcribes every one (same as --asr.mode)")
    p.add_argument("--align", choices=("none", "words"), default="none",
                   help="'words' also writes word-aligned feature sets (the store's 'aligned' variant): one row per "
                        "ASR word, audio and vision averaged over its span, text pooled over its tokens")
    for m, cls in CONFIGS.items():
        add_dataclass_flags(p, m, cls)
    add_dataclass_flags(p, "asr", AsrConfig)
    return p


def build_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen modalities' extractor configs with the ``--<modality>.<field>`` flags applied."""
    return {m: dataclass_from_args(args, m, CONFIGS[m]()) for m in MODALITIES if m in args.modalities}


def _summary(r: ModalityReport) -> str:
    absent = f", {r.absent} absent" if r.absent else ""
    where = f" -> {r.modality}/{r.fingerprint}" if r.fingerprint else ""
    return f"{r.modality:6s} {r.total} utterances: {r.cached} cached, {r.new} new, {r.failed} failed{absent}{where}"


def _failure_table(reports: dict[str, ModalityReport]) -> list[str]:
    rows = [(m, file, uid, reason) for m, r in reports.items() for file, uid, reason in r.failures]
    if not rows:
        return []
    head = ("modality", "file", "utterance", "reason")
    widths = [max(len(str(row[k])) for row in [head, *rows]) for k in range(3)]
    fmt = "  ".join(f"{{:{w}s}}" for w in widths) + "  {}"
    return [f"{len(rows)} failed:", fmt.format(*head), *(fmt.format(*row) for row in rows)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ebmc-extract``; returns the exit status (0 ok, 1 some utterances failed, 2 unusable input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail at once, not after a minute of retries
    start = time.perf_counter()
    try:
        configs = build_configs(args)
        if args.workers < 1:
            raise ConfigError(f"--workers {args.workers}: need 1 or more processes")
        manifest = load_manifest(args.videos, args.manifest, args.dataset)
        with stop_on_signals():
            root, reports = run(manifest, args.out, configs, workers=args.workers, shard=args.shard,
                                commit_only=args.commit, asr=dataclass_from_args(args, "asr", AsrConfig()),
                                align=args.align == "words")
    except EbmcError as e:  # bad input or a backend that cannot start; anything else is a bug: traceback
        print(f"ebmc-extract: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"ebmc-extract: {e}; the utterances already extracted are cached: run the same command "
              "again to resume", file=sys.stderr)
        return 128 + e.signum
    for r in reports.values():
        print(_summary(r))
    for line in _failure_table(reports):
        print(line)
    took = f"{time.perf_counter() - start:.1f} s"
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done in {took}; after every shard, run the same command "
              "with --commit instead of --shard")
    else:
        print(f"committed {root} in {took}")
    return 1 if any(r.failures for r in reports.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
