"""Running one extractor over many utterances: in-process batches or worker processes, each result cached on arrival.

Each job is written to the cache by whoever computed it (the main process or a worker) the moment
it is done, so a ``kill -9`` loses at most the jobs in flight. Workers are started with ``spawn``
(safe with torch, MediaPipe and FFmpeg threads) and call ``extractor.setup()`` once each.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import multiprocessing
import traceback
from pathlib import Path
from typing import Any, Iterator

from . import cache
from .extractors.base import ExtractionError, Extractor, Result, Segment, make_extractor

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Job:
    """One distinct input to extract; ``key`` names its cache entry."""

    key: str
    segment: Segment


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of a job: status "ok", "absent" or "failed" (with ``reason``)."""

    key: str
    status: str
    reason: str | None = None


class RunFailure(ExtractionError):
    """A failure caused by the run (crashed worker, unexpected exception), not by the input: retried next run."""


def _store(folder: Path, job: Job, result: Result | ExtractionError) -> Outcome:
    if isinstance(result, ExtractionError):
        cache.write_failure(folder, job.key, result.reason, retry=isinstance(result, RunFailure))
        return Outcome(job.key, "failed", result.reason)
    cache.write_result(folder, job.key, result)
    return Outcome(job.key, result.status)


def _unexpected(job: Job, error: BaseException) -> RunFailure:
    # A bug or an unforeseen library error on one input must not end a long run, nor vanish:
    # it becomes this utterance's failure, with the traceback in the log.
    log.error("unexpected error extracting %s:\n%s", job.segment.where(), traceback.format_exc())
    return RunFailure(f"{job.segment.where()}: unexpected {type(error).__name__}: {error} "
                           "(a bug in the extractor or the media library; please report it with this file)")


def _extract_batch(extractor: Extractor, folder: Path, jobs: list[Job]) -> list[Outcome]:
    try:
        results = extractor.extract_batch([j.segment for j in jobs])
    except Exception as e:  # noqa: BLE001 - see _unexpected
        if len(jobs) > 1:  # find the one input that breaks the batch; the others still count
            return [o for j in jobs for o in _extract_batch(extractor, folder, [j])]
        results = [_unexpected(jobs[0], e)]
    return [_store(folder, j, r) for j, r in zip(jobs, results)]


class SetupError(RuntimeError):
    """The extractor could not start (model missing, backend not installed): the run, not an utterance, fails."""


def _setup(modality: str, config: Any) -> Extractor:
    try:
        extractor = make_extractor(modality, config)
        extractor.setup()
    except Exception as e:  # noqa: BLE001 - any cause stops the run with its message
        reason = e.reason if isinstance(e, ExtractionError) else f"{type(e).__name__}: {e}"
        raise SetupError(f"the {modality} extractor could not start: {reason}") from e
    return extractor


_worker: dict[str, Any] = {}


def _init_worker(modality: str, config: Any, folder: Path) -> None:
    _worker["folder"] = folder
    try:
        _worker["extractor"] = _setup(modality, config)
    except SetupError as e:  # raised again by each job, so the main process sees the message
        _worker["error"] = e


def _work(job: Job) -> Outcome:
    if "error" in _worker:
        raise _worker["error"]
    return _extract_batch(_worker["extractor"], _worker["folder"], [job])[0]


def run_jobs(modality: str, config: Any, folder: Path, jobs: list[Job], *, workers: int = 1,
             batch_size: int = 1) -> Iterator[Outcome]:
    """Extract ``jobs`` and cache each result; yield one Outcome per job as it completes.

    ``workers`` > 1 runs that many processes, each extracting one job at a time; otherwise the
    main process extracts ``batch_size`` jobs per ``extract_batch`` call (text batches its forward
    passes). Order of the outcomes is completion order; callers place them by ``key``.
    """
    if not jobs:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        extractor = _setup(modality, config)
        for i in range(0, len(jobs), batch_size):
            yield from _extract_batch(extractor, folder, jobs[i:i + batch_size])
        return
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(modality, config, folder)) as pool:
        futures = {pool.submit(_work, j): j for j in jobs}
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                yield fut.result()
            except SetupError:
                pool.shutdown(cancel_futures=True)
                raise
            except cf.process.BrokenProcessPool:
                # A worker died (segfault in a native library, out of memory, killed). The jobs
                # still in flight cannot be told apart from the culprit: all fail, rerun retries them.
                yield _store(folder, job, RunFailure(
                    f"{job.segment.where()}: a worker process died while this utterance was pending "
                    "(crash in a native library or out of memory); rerun to retry, or use --workers 1 to find the file"))
