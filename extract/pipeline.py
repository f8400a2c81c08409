"""The extraction pipeline: manifest -> per-utterance cache (resumable, sharded, parallel) -> committed feature store.

``run`` extracts every requested modality into the cache (only what is missing or failed
before), then commits: each modality's cached results are assembled in manifest order into one
feature set (``ebmc.store.write_feature_set``) and the dataset is committed (``commit_store``).
A sharded run (``shard=(i, n)``) extracts its block of the manifest only; a later
``commit_only`` run assembles the store once every shard is done.

With speech recognition on (``asr``), utterances without a transcript are transcribed first
(cached like any modality, see ``ebmc.extract.asr``); their text features are computed from the
ASR transcript and carry its word times as timestamps. With ``align`` the commit also writes the
word-aligned feature sets (``ebmc.extract.align``) as the store's ``aligned`` variant.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ebmc.store import ModalityData, StoreError, commit_store, write_feature_set
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import fingerprint
from ebmc.store.lock import store_lock
from ebmc.store.shard import shard_rows

from . import cache
from .align import ALIGNED, aligned_data
from .asr import AsrConfig, AsrJobs, asr_producer, describe, shares_decode, transcript_of
from .extractors import make_extractor
from .types import ExtractionError, Result, Segment
from .manifest import Item, Manifest
from .workers import JobGroup, Job, run_jobs

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


# What speech recognition gave one utterance: words (a Result, status "absent" when it heard no
# speech), why it failed, or None when it has not run yet.
Spoken = Result | ExtractionError | None


def needs_asr(item: Item, asr: AsrConfig | None) -> bool:
    """Whether the utterance's transcript comes from speech recognition."""
    return asr is not None and (asr.mode == "always" or (item.transcript is None and item.transcript_file is None))


def segment_of(item: Item, modality: str, spoken: Spoken = None, asr: bool = False) -> Segment | Result:
    """The extractor's input for one utterance: the transcript for text, the media span otherwise.

    Each modality gets only what it reads, so its input key hashes nothing else (a changed
    transcript re-extracts text only). The text of an utterance that speech recognition
    transcribes (``asr``) is its ``spoken`` words; when it heard none, the text is the absent
    Result itself. Raises ExtractionError for an unreadable or missing transcript.
    """
    if modality != "text":
        return Segment(item.utterance_id, item.path, item.start, item.end, None)
    if not asr:
        return Segment(item.utterance_id, None, None, None, _transcript(item))
    if isinstance(spoken, ExtractionError):
        raise ExtractionError(f"{item.utterance_id}: no transcript, speech recognition failed: {spoken.reason}")
    if spoken is None:
        raise ExtractionError(f"{item.utterance_id}: not transcribed yet (speech recognition was interrupted); "
                              "rerun ebmc-extract")
    if spoken.status != "ok":
        return spoken
    return Segment(item.utterance_id, None, None, None, transcript_of(spoken))


def _file_of(item: Item, modality: str) -> str:
    if modality == "text" and item.transcript_file is not None:
        return str(item.transcript_file)
    return item.video


def _keys(manifest: Manifest, rows: Sequence[int], modality: str, extractor, hasher: cache.MediaHasher,
          spoken: dict[int, Spoken] | None = None) -> dict[int, tuple[Segment, str] | ExtractionError | Result]:
    """Each row's (segment, input key), or its ExtractionError, or the absent Result of a text that
    speech recognition found no speech for (rows in ``spoken`` take their text from ASR)."""
    out: dict[int, tuple[Segment, str] | ExtractionError | Result] = {}
    spoken = spoken or {}
    for i in rows:
        try:
            seg = segment_of(manifest.items[i], modality, spoken.get(i), asr=i in spoken)
            out[i] = seg if isinstance(seg, Result) else (seg, cache.input_key(seg, extractor.input_paths(seg), hasher))
        except ExtractionError as e:
            out[i] = e
    return out


@dataclasses.dataclass
class _Plan:
    report: ModalityReport
    group: JobGroup
    rows_of: dict[str, list[int]]  # input key -> manifest rows; equal inputs are extracted once


def _plan(manifest: Manifest, store_root: Path, modality: str, config: Any, rows: Sequence[int],
          hasher: cache.MediaHasher, workers: int, spoken: dict[int, Spoken] | None = None) -> _Plan:
    extractor = make_extractor(modality, config)
    folder = cache.cache_folder(store_root, modality, extractor.producer())
    report = ModalityReport(modality, total=len(rows))
    rows_of: dict[str, list[int]] = {}
    jobs = []
    for i, entry in _keys(manifest, rows, modality, extractor, hasher, spoken).items():
        item = manifest.items[i]
        if isinstance(entry, Result):  # no speech heard: nothing to extract
            report.cached += 1
            report.absent += 1
            continue
        # reading the entry (not just finding it) sets an unreadable one aside, so it is extracted again
        cached = entry if isinstance(entry, ExtractionError) else cache.read_entry(folder, entry[1], retry_run_failures=True)
        if isinstance(cached, ExtractionError):
            report.failures.append((_file_of(item, modality), item.utterance_id, cached.reason))
        elif cached is not None:
            report.cached += 1
        else:
            if entry[1] not in rows_of:
                jobs.append(Job(entry[1], entry[0]))
            rows_of.setdefault(entry[1], []).append(i)
    log.info("%s: %d utterances, %d cached, %d to extract (%s)", modality, len(rows), report.cached,
             sum(map(len, rows_of.values())), folder)
    text = modality == "text"  # the text model runs batched in the main process
    return _Plan(report, JobGroup(config, folder, jobs, config.batch_size if text else 1, in_main=text or workers <= 1), rows_of)


def _asr_rows(manifest: Manifest, rows: Sequence[int], asr: AsrConfig | None) -> list[int]:
    return [i for i in rows if needs_asr(manifest.items[i], asr)]


def _asr_plan(manifest: Manifest, store_root: Path, asr: AsrConfig, rows: list[int], hasher: cache.MediaHasher,
              workers: int, audio: _Plan | None, audio_config: Any) -> tuple[_Plan, dict[str, list[int]]]:
    """The ASR jobs; those whose audio features are missing too compute them from the same decode
    (taken out of ``audio``'s jobs). Returns the plan and the audio rows it took, by key."""
    plan = _plan(manifest, store_root, "asr", AsrJobs(asr), rows, hasher, workers)
    taken: dict[str, list[int]] = {}
    if audio is not None and shares_decode(audio_config):
        # ASR and audio read the same media span, so their input keys are equal
        taken = {j.key: audio.rows_of.pop(j.key) for j in plan.group.jobs if j.key in audio.rows_of}
        audio.group.jobs[:] = [j for j in audio.group.jobs if j.key not in taken]
        config = AsrJobs(asr, audio_config, audio.group.folder,
                         {j.segment.utterance_id: j.key for j in plan.group.jobs if j.key in taken})
        plan.group = dataclasses.replace(plan.group, config=config)
    return plan, taken


def _spoken(manifest: Manifest, store_root: Path, asr: AsrConfig | None, rows: Sequence[int],
            hasher: cache.MediaHasher) -> dict[int, Spoken]:
    """What speech recognition cached for each of ``rows`` that takes its transcript from it."""
    asr_rows = _asr_rows(manifest, rows, asr)
    if not asr_rows:
        return {}
    extractor = make_extractor("asr", AsrJobs(asr))
    folder = cache.cache_folder(store_root, "asr", extractor.producer())
    keys = _keys(manifest, asr_rows, "asr", extractor, hasher)
    return {i: e if isinstance(e, ExtractionError) else cache.read_entry(folder, e[1]) for i, e in keys.items()}


def _run_plans(manifest: Manifest, plans: dict[str, _Plan], workers: int) -> None:
    """Run the plans' jobs, counting each outcome into its plan's report; one progress bar per modality."""
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


def extract(manifest: Manifest, store_root: Path, configs: dict[str, Any], *, workers: int = 1,
            shard: tuple[int, int] | None = None, hasher: cache.MediaHasher,
            asr: AsrConfig | None = None) -> dict[str, ModalityReport]:
    """Extract the missing utterances of ``shard`` (and those a crash failed) into the cache.

    Audio, vision and speech recognition go to ``workers`` processes while text runs batched in
    the main process; when some transcripts come from speech recognition, text waits for it.
    Returns one report per modality, and one for "asr" when it ran.
    """
    if shard is None:  # a sharded run may share the cache with writers on other machines
        for m in [*configs, "asr"]:
            cache.remove_stale_temps(store_root, m)
    rows = shard_rows(len(manifest.items), shard)
    media = {m: _plan(manifest, store_root, m, cfg, rows, hasher, workers) for m, cfg in configs.items() if m != "text"}
    taken: dict[str, list[int]] = {}
    if asr_rows := _asr_rows(manifest, rows, asr):
        media["asr"], taken = _asr_plan(manifest, store_root, asr, asr_rows, hasher, workers,
                                        media.get("audio"), configs.get("audio"))
    text = None
    if "text" in configs and not asr_rows:  # no transcript to wait for: text overlaps the workers
        text = _plan(manifest, store_root, "text", configs["text"], rows, hasher, workers)
        media = {"text": text, **media}
    hasher.save()
    if "text" in configs and workers > 1:
        log.info("text is extracted in the main process, batched (--text.batch_size); --workers applies to audio and vision")
    _run_plans(manifest, media, workers)
    if taken:  # audio computed by the ASR jobs from their decode
        audio = media["audio"]
        for key, rows_done in taken.items():
            entry = cache.read_entry(audio.group.folder, key)
            for i in rows_done:
                if isinstance(entry, Result):
                    audio.report.new += 1
                    audio.report.absent += entry.status == "absent"
                else:
                    item = manifest.items[i]
                    reason = entry.reason if entry is not None else "the ASR job that also extracts audio failed; rerun"
                    audio.report.failures.append((item.video, item.utterance_id, reason))
        log.info("audio of %d utterances computed by the ASR jobs from the same decode", sum(map(len, taken.values())))
    if "text" in configs and text is None:  # after speech recognition, which gives the transcripts
        spoken = _spoken(manifest, store_root, asr, rows, hasher)
        text = _plan(manifest, store_root, "text", configs["text"], rows, hasher, workers, spoken)
        _run_plans(manifest, {"text": text}, workers)
        media = {"text": text, **media}
    return {m: p.report for m, p in media.items()}


def _timed(text: Result, words: Result) -> Result:
    """``text`` with the ASR word times as timestamps: each token (or pooled word) gets its word's span."""
    times = words.timestamps
    if "word_ids" in text.extras:
        ids = text.extras["word_ids"]
        ok = (ids >= 0) & (ids < len(times))
        stamps = np.full((len(ids), 2), np.nan)
        stamps[ok] = times[ids[ok]]
    else:
        stamps = times[:len(text.values)]
    return dataclasses.replace(text, timestamps=stamps)


def _assemble(manifest: Manifest, store_root: Path, modality: str, config: Any, hasher: cache.MediaHasher,
              problems: list[str], spoken: dict[int, Spoken], asr_source: str | None
              ) -> tuple[ModalityData, ModalityReport]:
    """All utterances' cached results of one modality, in manifest order, as ModalityData.

    Text rows transcribed by ASR (``spoken``) get its word times; ``asr_source`` (the hash of
    the ASR producer and inputs) then enters the text producer."""
    extractor = make_extractor(modality, config)
    folder = cache.cache_folder(store_root, modality, extractor.producer())
    report = ModalityReport(modality, total=len(manifest.items))
    results: list[Result | None] = []
    status: list[str] = []
    missing: list[int] = []
    # Each row's input key (or failure) and status determine the feature set's content: its "source" hash.
    # (A result is a function of key and producer; only a retried failure changes status alone.)
    inputs = []
    spoken = spoken if modality == "text" else {}
    for i, entry in _keys(manifest, range(len(manifest.items)), modality, extractor, hasher, spoken).items():
        item = manifest.items[i]
        inputs.append(entry.reason if isinstance(entry, ExtractionError) else "no speech" if isinstance(entry, Result)
                      else entry[1])
        if isinstance(entry, tuple):
            entry = cache.read_entry(folder, entry[1])
        if entry is None:
            missing.append(i)
        if isinstance(entry, ExtractionError):
            report.failures.append((_file_of(item, modality), item.utterance_id, entry.reason))
        ok = isinstance(entry, Result) and entry.status == "ok"
        if ok and isinstance(spoken.get(i), Result):
            entry = _timed(entry, spoken[i])
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
    if spoken and asr_source is not None:
        producer["asr"] = asr_source
    data = ModalityData(producer=producer, info=extractor.info(), sequences=[None if r is None else r.values for r in results],
                        extras=extras, status=status)
    return data, report


def _with_transcripts(manifest: Manifest, spoken: dict[int, Spoken], asr: AsrConfig | None) -> pd.DataFrame:
    """The utterance table with each transcript's source: ``transcript_source`` given / asr / no speech /
    asr failed, ``asr_model`` the model (name and content hash) where ASR ran, ``transcript`` the text
    the features were computed from (``given_transcript`` keeps a given one that ``--asr always`` replaced)."""
    table = manifest.table
    if not spoken:
        return table
    table = table.copy()
    if asr.mode == "always" and "transcript" in table.columns:
        table["given_transcript"] = table["transcript"]
    source = np.full(len(table), "given", dtype=object)
    model = np.full(len(table), "", dtype=object)
    model[sorted(spoken)] = f"{asr.model} {describe(asr)['model_content']}"
    text = np.array(table["transcript"], dtype=object) if "transcript" in table.columns else np.full(len(table), None, object)
    for i, entry in spoken.items():
        ok = isinstance(entry, Result) and entry.status == "ok"
        source[i] = "asr" if ok else "no speech" if isinstance(entry, Result) else "asr failed"
        text[i] = transcript_of(entry) if ok else None
    table["transcript"], table["transcript_source"], table["asr_model"] = text, source, model
    return table


def commit(manifest: Manifest, store_root: Path, configs: dict[str, Any], hasher: cache.MediaHasher,
           asr: AsrConfig | None = None, align: bool = False) -> dict[str, ModalityReport]:
    """Assemble every modality from the cache in manifest order and commit the store.

    Failed utterances are stored with status "failed", absent ones with "absent". With ``align``
    the word-aligned sets are committed as the ``aligned`` variant. Raises StoreError (before
    writing anything) when some utterance was never extracted or transcribed.
    """
    problems: list[str] = []
    spoken = _spoken(manifest, store_root, asr, range(len(manifest.items)), hasher)
    missing = [i for i, e in spoken.items() if e is None]
    if missing:
        problems.append(f"asr: {len(missing)} of {len(spoken)} utterances are not transcribed yet, e.g. rows {missing[:5]} "
                        f"{[manifest.items[i].utterance_id for i in missing[:5]]}; run the shards that hold them "
                        "(--shard i/N) or ebmc-extract without --commit")
    asr_source = None
    if spoken:
        extractor = make_extractor("asr", AsrJobs(asr))
        keys = _keys(manifest, sorted(spoken), "asr", extractor, hasher)
        asr_source = fingerprint([asr_producer(asr), [e.reason if isinstance(e, ExtractionError) else e[1]
                                                      for e in keys.values()]])
    assembled = {m: _assemble(manifest, store_root, m, cfg, hasher, problems, spoken, asr_source)
                 for m, cfg in configs.items()}
    raise_if(problems, f"cannot commit {store_root}: the cache is incomplete")
    ids = manifest.table["utterance_id"].tolist()
    reports = {}
    feature_sets = {}
    for m, (data, report) in assembled.items():
        feature_sets[m] = report.fingerprint = write_feature_set(store_root, m, ids, data)
        reports[m] = report
    variants = None
    if align:
        words = [w if isinstance(w := spoken.get(i), Result) and w.status == "ok" else None for i in range(len(ids))]
        variants = {ALIGNED: {m: write_feature_set(store_root, m, ids, aligned_data(m, data, words, asr_source))
                              for m, (data, _) in assembled.items()}}
    source = {**manifest.source, "tool": "ebmc-extract"}
    if spoken:
        source["asr"] = describe(asr)
    commit_store(store_root, dataset=manifest.dataset, task=manifest.task, utterances=_with_transcripts(manifest, spoken, asr),
                 feature_sets=feature_sets, label_columns=manifest.label_columns or ("label",),
                 classes=manifest.classes, source=source, variants=variants)
    for m in [*configs, "asr"]:
        cache.remove_stale_temps(store_root, m)
    return reports


def run(manifest: Manifest, out: str | Path, configs: dict[str, Any], *, workers: int = 1,
        shard: tuple[int, int] | None = None, commit_only: bool = False, asr: AsrConfig | None = None,
        align: bool = False) -> tuple[Path, dict[str, ModalityReport]]:
    """Extract ``configs``' modalities ({"text": TextConfig(), ...}) and commit ``out/<dataset>``.

    ``asr`` (None or mode "off": no speech recognition) transcribes the utterances without a
    transcript (all of them with mode "always") when text or ``align`` needs it; ``align`` also
    commits the word-aligned feature sets. Returns the store folder and a report per modality
    (and "asr"); with ``shard`` only the cache is filled (no commit), with ``commit_only`` nothing
    is extracted. Utterance failures are in the reports; StoreError is raised for problems of the whole run.
    """
    if asr is not None and (asr.mode == "off" or not ("text" in configs or align)):
        asr = None
    if align and asr is None:
        raise StoreError("--align words needs word times from speech recognition: leave --asr on (auto or always)")
    if "text" in configs and not manifest.has_transcripts and asr is None:
        raise StoreError(f"{manifest.root / manifest.source.get('file', '')}: text requested but no utterance has a transcript; give a "
                         "transcript or transcript_file column (or .txt files beside the videos), turn speech "
                         "recognition on (--asr auto), or drop text from --modalities")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise StoreError(f"--shard {shard[0]}/{shard[1]}: need 0 <= i < N (shards count from 0)")
    root = Path(out) / manifest.dataset
    root.mkdir(parents=True, exist_ok=True)
    # shards may run side by side (each fills its part of the cache); a whole run owns the store
    with contextlib.nullcontext() if shard is not None else store_lock(root):
        hasher = cache.MediaHasher(root, tag="main" if shard is None else f"shard{shard[0]}of{shard[1]}")
        reports: dict[str, ModalityReport] = {}
        if not commit_only:
            reports = extract(manifest, root, configs, workers=workers, shard=shard, hasher=hasher, asr=asr)
        if shard is None:
            for m, committed in commit(manifest, root, configs, hasher, asr, align).items():
                if m in reports:  # the commit knows every failure, including those of earlier runs or shards
                    reports[m].failures, reports[m].absent = committed.failures, committed.absent
                    reports[m].fingerprint = committed.fingerprint
                else:
                    reports[m] = committed
        hasher.save()
    return root, reports
