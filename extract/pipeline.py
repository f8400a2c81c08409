"""The extraction pipeline: manifest -> per-utterance cache (resumable, sharded, parallel) -> committed feature store.

``run`` extracts every requested modality into the cache (only what is missing or failed
before), then commits: each modality's cached results are assembled in manifest order into one
feature set (``ebmc.store.write_feature_set``) and the dataset is committed (``commit_store``).
A sharded run (``shard=(i, n)``) extracts its block of the manifest only; a later
``commit_only`` run assembles the store once every shard is done.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ebmc.store import ModalityData, StoreError, commit_store, write_feature_set
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import fingerprint
from ebmc.store.shard import shard_rows

from . import cache
from .extractors.base import ExtractionError, Result, Segment, make_extractor
from .manifest import Item, Manifest
from .workers import Group, Job, run_jobs

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModalityReport:
    """One modality's run: utterances found cached, newly extracted, absent and failed."""

    modality: str
    total: int = 0
    cached: int = 0
    new: int = 0
    absent: int = 0
    failures: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (file, utterance, reason)
    fingerprint: str | None = None  # of the committed feature set

    @property
    def failed(self) -> int:
        return len(self.failures)


def _transcript(item: Item) -> str:
    if item.transcript is not None:
        return item.transcript
    if item.transcript_file is None:
        raise ExtractionError(f"{item.utterance_id}: no transcript (no text in the manifest and no .txt "
                              f"beside {item.video}); add one, or leave text out of --modalities")
    try:
        return item.transcript_file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ExtractionError(f"{item.utterance_id}: transcript file {item.transcript_file} not found; "
                              "check the manifest's transcript_file") from None
    except UnicodeDecodeError as e:
        raise ExtractionError(f"{item.utterance_id}: transcript file {item.transcript_file} is not UTF-8 text "
                              f"(byte {e.start}); re-save it as UTF-8") from None


def segment_of(item: Item, modality: str) -> Segment:
    """The extractor's input for one utterance: the transcript for text, the media span otherwise.

    Each modality gets only what it reads, so its input key hashes nothing else (a changed
    transcript re-extracts text only). Raises ExtractionError for an unreadable transcript.
    """
    if modality == "text":
        return Segment(item.utterance_id, None, None, None, _transcript(item))
    return Segment(item.utterance_id, item.path, item.start, item.end, None)


def _file_of(item: Item, modality: str) -> str:
    if modality == "text" and item.transcript_file is not None:
        return str(item.transcript_file)
    return item.video


def _keys(manifest: Manifest, rows: range, modality: str, extractor, hasher: cache.MediaHasher
          ) -> dict[int, tuple[Segment, str] | ExtractionError]:
    out: dict[int, tuple[Segment, str] | ExtractionError] = {}
    for i in rows:
        try:
            seg = segment_of(manifest.items[i], modality)
            out[i] = (seg, cache.input_key(seg, extractor.input_paths(seg), hasher))
        except ExtractionError as e:
            out[i] = e
    return out


@dataclasses.dataclass
class _Plan:
    report: ModalityReport
    group: Group
    rows_of: dict[str, list[int]]  # input key -> manifest rows; equal inputs are extracted once


def _plan(manifest: Manifest, store_root: Path, modality: str, config: Any, rows: range,
          hasher: cache.MediaHasher, workers: int) -> _Plan:
    extractor = make_extractor(modality, config)
    folder = cache.cache_folder(store_root, modality, extractor.producer())
    report = ModalityReport(modality, total=len(rows))
    rows_of: dict[str, list[int]] = {}
    jobs = []
    for i, entry in _keys(manifest, rows, modality, extractor, hasher).items():
        item = manifest.items[i]
        if isinstance(entry, ExtractionError):
            report.failures.append((_file_of(item, modality), item.utterance_id, entry.reason))
        elif cache.has_result(folder, entry[1]):
            report.cached += 1
        elif (reason := cache.final_failure(folder, entry[1])) is not None:
            report.failures.append((_file_of(item, modality), item.utterance_id, reason))
        else:
            if entry[1] not in rows_of:
                jobs.append(Job(entry[1], entry[0]))
            rows_of.setdefault(entry[1], []).append(i)
    log.info("%s: %d utterances, %d cached, %d to extract (%s)", modality, len(rows), report.cached,
             sum(map(len, rows_of.values())), folder)
    text = modality == "text"  # the text model runs batched in the main process
    return _Plan(report, Group(config, folder, jobs, config.batch_size if text else 1, in_main=text or workers <= 1), rows_of)


def extract(manifest: Manifest, store_root: Path, configs: dict[str, Any], *, workers: int = 1,
            shard: tuple[int, int] | None = None, hasher: cache.MediaHasher) -> dict[str, ModalityReport]:
    """Extract the missing utterances of ``shard`` (and those a crash failed) into the cache.

    Audio and vision go to ``workers`` processes while text runs batched in the main process.
    Returns one report per modality.
    """
    if shard is None:  # a sharded run may share the cache with writers on other machines
        for m in configs:
            cache.remove_stale_temps(store_root, m)
    rows = shard_rows(len(manifest.items), shard)
    plans = {m: _plan(manifest, store_root, m, cfg, rows, hasher, workers) for m, cfg in configs.items()}
    hasher.save()
    if "text" in configs and workers > 1:
        log.info("text is extracted in the main process, batched (--text.batch_size); --workers applies to audio and vision")
    bars = {m: tqdm(total=sum(map(len, p.rows_of.values())), desc=f"{m:6s}", unit="utt", position=k, disable=None)
            for k, (m, p) in enumerate(plans.items())}
    try:
        for m, outcome in run_jobs({m: p.group for m, p in plans.items()}, workers=workers):
            report, rows_done = plans[m].report, plans[m].rows_of[outcome.key]
            for i in rows_done:
                if outcome.status == "failed":
                    item = manifest.items[i]
                    report.failures.append((_file_of(item, m), item.utterance_id, outcome.reason))
                else:
                    report.new += 1
                    report.absent += outcome.status == "absent"
            bars[m].update(len(rows_done))
    finally:
        for bar in bars.values():
            bar.close()
    return {m: p.report for m, p in plans.items()}


def _assemble(manifest: Manifest, store_root: Path, modality: str, config: Any, hasher: cache.MediaHasher,
              problems: list[str]) -> tuple[ModalityData, ModalityReport]:
    """All utterances' cached results of one modality, in manifest order, as ModalityData."""
    extractor = make_extractor(modality, config)
    folder = cache.cache_folder(store_root, modality, extractor.producer())
    report = ModalityReport(modality, total=len(manifest.items))
    results: list[Result | None] = []
    status: list[str] = []
    missing: list[int] = []
    # Each row's input key (or failure) and status determine the feature set's content: its "source" hash.
    # (A result is a function of key and producer; only a retried failure changes status alone.)
    inputs = []
    for i, entry in _keys(manifest, range(len(manifest.items)), modality, extractor, hasher).items():
        item = manifest.items[i]
        inputs.append(entry.reason if isinstance(entry, ExtractionError) else entry[1])
        if not isinstance(entry, ExtractionError):
            entry = cache.read_entry(folder, entry[1])
        if entry is None:
            missing.append(i)
        if isinstance(entry, ExtractionError):
            report.failures.append((_file_of(item, modality), item.utterance_id, entry.reason))
        ok = isinstance(entry, Result) and entry.status == "ok"
        results.append(entry if ok else None)
        status.append("ok" if ok else "failed" if entry is None or isinstance(entry, ExtractionError) else "absent")
    report.cached = status.count("ok") + status.count("absent")
    report.absent = status.count("absent")
    if missing:
        ids = [manifest.items[i].utterance_id for i in missing[:5]]
        problems.append(f"{modality}: {len(missing)} of {len(manifest.items)} utterances are not extracted yet, "
                        f"e.g. rows {missing[:5]} {ids}; run the shards that hold them (--shard i/N) or ebmc-extract without --commit")
    extras: dict[str, list] = {"timestamps": [r.timestamps if r is not None else None for r in results]}
    if any(r is not None and r.frame_mask is not None for r in results):
        extras["frame_mask"] = [None if r is None else r.frame_mask if r.frame_mask is not None
                                else np.ones(len(r.values), bool) for r in results]
    for name in sorted({n for r in results if r is not None for n in r.extras}):
        extras[name] = [None if r is None else r.extras.get(name) for r in results]
    producer = {**extractor.producer(), "source": fingerprint([inputs, status])}
    data = ModalityData(producer=producer, info=extractor.info(), sequences=[None if r is None else r.values for r in results],
                        extras=extras, status=status)
    return data, report


def commit(manifest: Manifest, store_root: Path, configs: dict[str, Any], hasher: cache.MediaHasher
           ) -> dict[str, ModalityReport]:
    """Assemble every modality from the cache in manifest order and commit the store.

    Failed utterances are stored with status "failed", absent ones with "absent". Raises
    StoreError (before writing anything) when some utterance was never extracted.
    """
    problems: list[str] = []
    assembled = {m: _assemble(manifest, store_root, m, cfg, hasher, problems) for m, cfg in configs.items()}
    raise_if(problems, f"cannot commit {store_root}: the cache is incomplete")
    ids = manifest.table["utterance_id"].tolist()
    reports = {}
    fps = {}
    for m, (data, report) in assembled.items():
        fps[m] = report.fingerprint = write_feature_set(store_root, m, ids, data)
        reports[m] = report
    commit_store(store_root, dataset=manifest.dataset, task=manifest.task, utterances=manifest.table,
                 feature_sets=fps, label_columns=manifest.label_columns or ("label",),
                 classes=manifest.classes, source={**manifest.source, "tool": "ebmc-extract"})
    for m in configs:
        cache.remove_stale_temps(store_root, m)
    return reports


def run(manifest: Manifest, out: str | Path, configs: dict[str, Any], *, workers: int = 1,
        shard: tuple[int, int] | None = None, commit_only: bool = False) -> tuple[Path, dict[str, ModalityReport]]:
    """Extract ``configs``' modalities ({"text": TextConfig(), ...}) and commit ``out/<dataset>``.

    Returns the store folder and a report per modality; with ``shard`` only the cache is filled
    (no commit), with ``commit_only`` nothing is extracted. Utterance failures are in the reports;
    StoreError is raised for problems of the whole run.
    """
    if "text" in configs and not manifest.has_transcripts:
        raise StoreError(f"{manifest.root / manifest.source.get('file', '')}: text requested but no utterance has a transcript; give a "
                         "transcript or transcript_file column (or .txt files beside the videos), or drop text from --modalities")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise StoreError(f"--shard {shard[0]}/{shard[1]}: need 0 <= i < N (shards count from 0)")
    root = Path(out) / manifest.dataset
    root.mkdir(parents=True, exist_ok=True)
    hasher = cache.MediaHasher(root, tag="main" if shard is None else f"shard{shard[0]}of{shard[1]}")
    reports: dict[str, ModalityReport] = {}
    if not commit_only:
        reports = extract(manifest, root, configs, workers=workers, shard=shard, hasher=hasher)
    if shard is None:
        for m, committed in commit(manifest, root, configs, hasher).items():
            if m in reports:  # the commit knows every failure, including those of earlier runs or shards
                reports[m].failures, reports[m].absent = committed.failures, committed.absent
                reports[m].fingerprint = committed.fingerprint
            else:
                reports[m] = committed
    hasher.save()
    return root, reports
