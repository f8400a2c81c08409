"""Running the extractors over many utterances: in-process batches and worker processes, each result cached on arrival.

Each job is written to the cache by whoever computed it (the main process or a worker) the moment
it is done, so a ``kill -9`` loses at most the jobs in flight. Workers are started with ``spawn``
(safe with torch, MediaPipe and FFmpeg threads) and call each extractor's ``setup()`` once; audio
and vision share one pool, so the processes start once and both modalities' jobs keep them busy
while the main process runs the batched text model.

Workers never outlive the run: each one watches its parent and exits when it is gone (``kill -9``
of the main process), ignores Ctrl-C (the main process handles it), and the main process
terminates them when it stops early (an exception, SIGTERM/SIGINT via ``stop_on_signals``).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from ebmc.store.errors import EbmcError

from . import cache
from .extractors import make_extractor
from .extractors.base import Extractor
from .types import ExtractionError, Result, Segment

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
            log.warning("a batch of %d failed (%s: %s); extracting its utterances one by one to find the culprit",
                        len(jobs), type(e).__name__, e)
            return [o for j in jobs for o in _extract_batch(extractor, folder, [j])]
        results = [_unexpected(jobs[0], e)]
    if len(results) != len(jobs):  # a broken extractor, not bad input: stop rather than misplace rows
        raise RuntimeError(f"{type(extractor).__name__}.extract_batch returned {len(results)} results for {len(jobs)} segments")
    return [_store(folder, j, r) for j, r in zip(jobs, results)]


class SetupError(EbmcError, RuntimeError):
    """The extractor could not start (model missing, backend not installed): the run, not an utterance, fails."""


def _setup(modality: str, config: Any) -> Extractor:
    try:
        extractor = make_extractor(modality, config)
        extractor.setup()
    except Exception as e:  # noqa: BLE001 - any cause stops the run with its message
        reason = e.reason if isinstance(e, ExtractionError) else f"{type(e).__name__}: {e}"
        raise SetupError(f"the {modality} extractor could not start: {reason}") from e
    return extractor


@dataclasses.dataclass(frozen=True)
class JobGroup:
    """One modality's work: its extractor config, cache folder and jobs.

    ``in_main`` groups run in the main process, ``batch_size`` jobs per ``extract_batch`` call
    (text batches its forward passes); the others go to the worker processes.
    """

    config: Any
    folder: Path
    jobs: list[Job]
    batch_size: int = 1
    in_main: bool = False


_worker: dict[str, Any] = {}


class Interrupted(Exception):
    """The run was asked to stop (SIGTERM or SIGINT); what finished is cached, a rerun resumes."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``Interrupted`` in the main process for the block, so the
    workers are stopped and the command exits cleanly instead of dying mid-write."""
    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _exit_with_parent(parent: int) -> None:
    """Exit this worker as soon as ``parent`` is gone: a ``kill -9`` of the main process gives it no
    chance to stop its workers, and orphans would go on extracting and holding memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(configs: dict[str, Any], folders: dict[str, Path], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process stops us
    _exit_with_parent(parent)
    _worker["folders"] = folders
    try:
        _worker["extractors"] = {m: _setup(m, c) for m, c in configs.items()}
    except SetupError as e:  # raised again by each job, so the main process sees the message
        _worker["error"] = e


def _work(modality: str, job: Job) -> Outcome:
    if "error" in _worker:
        raise _worker["error"]
    return _extract_batch(_worker["extractors"][modality], _worker["folders"][modality], [job])[0]


def run_jobs(groups: dict[str, JobGroup], *, workers: int = 1) -> Iterator[tuple[str, Outcome]]:
    """Extract every group's jobs and cache each result; yield (modality, Outcome) as jobs complete.

    With ``workers`` > 1 the groups not ``in_main`` share one pool of that many processes (each
    sets up their extractors once), while the main process works through the ``in_main`` groups;
    with 1 worker everything runs in the main process, group after group. Outcomes come in
    completion order; callers place them by ``key``.
    """
    groups = {m: g for m, g in groups.items() if g.jobs}
    for g in groups.values():
        g.folder.mkdir(parents=True, exist_ok=True)
    pooled = {m: g for m, g in groups.items() if workers > 1 and not g.in_main}
    pool = futures = None
    if pooled:
        pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=({m: g.config for m, g in pooled.items()}, {m: g.folder for m, g in pooled.items()}, os.getpid()))
        futures = {pool.submit(_work, m, j): (m, j) for m, g in pooled.items() for j in g.jobs}
    try:
        for m, g in groups.items():
            if m in pooled:
                continue
            extractor = _setup(m, g.config)
            for i in range(0, len(g.jobs), g.batch_size):
                for outcome in _extract_batch(extractor, g.folder, g.jobs[i:i + g.batch_size]):
                    yield m, outcome
        for fut in cf.as_completed(futures or {}):
            m, job = futures[fut]
            try:
                yield m, fut.result()
            except cf.process.BrokenProcessPool:
                # A worker died (segfault in a native library, out of memory, killed). The jobs
                # still in flight cannot be told apart from the culprit: all fail, rerun retries them.
                yield m, _store(pooled[m].folder, job, RunFailure(
                    f"{job.segment.where()}: a worker process died while this utterance was pending "
                    "(crash in a native library or out of memory); rerun to retry, or use --workers 1 to find the file"))
    except BaseException:  # stopped early (signal, error, abandoned): the jobs in flight are not waited for
        if pool is not None:
            for process in list((pool._processes or {}).values()):
                process.terminate()
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
