"""The grid of (ablation, seed) runs on one store: split across machines, run N at once, each in its own resumable folder.

``--grid-shard i/N`` keeps a contiguous block of the grid (like ``ebmc-extract --shard``), so N
machines sharing one results folder (SLURM array jobs) together run every run exactly once.
``jobs > 1`` trains that many runs concurrently in worker processes (spawned, each loading the
features once, with the CPU threads split between them; on CUDA they share the GPU). Each run
writes its own folder as with one process, so a killed grid resumes with any ``jobs``.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
from pathlib import Path

import torch

from ebmc.store import ConfigError, Store, open_store
from ebmc.store.schema import missing_train_classes
from ebmc.store.shard import shard_rows
from ebmc.train.ablations import apply_ablation, expand_names
from ebmc.train.config import RunConfig
from ebmc.train.data import Data, load_data, resolve_device
from ebmc.train.loop import Diverged
from ebmc.train.runs import execute, run_dir

log = logging.getLogger(__name__)


def grid_runs(seeds: list[int], ablations: list[str], shard: tuple[int, int] | None = None) -> list[tuple[str, int]]:
    """The (ablation, seed) pairs of a grid, ablation-major; with ``shard`` (i, N) only block i of N.

    ``ablations`` are override names (ebmc.train.ablations); presets such as ``sensitivity`` expand.
    """
    runs = [(name, seed) for name in expand_names(ablations) for seed in seeds]
    return [runs[i] for i in shard_rows(len(runs), shard)]


def _run_one(data: Data, cfg: RunConfig, out: str | Path, ablation: str, seed: int, progress: bool) -> dict:
    run_cfg = apply_ablation(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed)), ablation)
    try:
        folder, metrics, skipped = execute(data, run_cfg, out, progress=progress)
    except Diverged as e:  # marked failed in its folder (failed.json); the grid goes on
        return {"ablation": ablation, "seed": seed, "dir": run_dir(out, data.store.dataset, run_cfg.ablation, seed),
                "skipped": False, "metrics": None, "failed": str(e)}
    return {"ablation": ablation, "seed": seed, "dir": folder, "skipped": skipped, "metrics": metrics}


def run_grid(store: str | Path | Store, cfg: RunConfig, out: str | Path, seeds: list[int], ablations: list[str],
             progress: bool = True, jobs: int = 1, shard: tuple[int, int] | None = None) -> list[dict]:
    """Every (ablation, seed) run of the grid (or of its ``shard``); one row per run, in grid order.

    ``jobs`` runs train at once (worker processes); with 1 they run here, loading the features once.
    A run that diverges is marked failed (its row's ``failed`` says why) and the others go on; any
    other error does not stop the others either, and after all have ended the first one is raised
    again (each one is logged as it happens).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be >= 1")
    runs = grid_runs(seeds, ablations, shard)
    store = store if isinstance(store, Store) else open_store(store)
    for warning in missing_train_classes(store.utterances, store.task, store.label_columns, store.classes,
                                         str(store.root)):
        log.warning(warning)
    bar = _bar(progress, len(runs))
    rows: dict[int, dict] = {}
    failures: list[BaseException] = []

    def finished(k: int, row: dict | None, error: BaseException | None) -> None:
        ablation, seed = runs[k]
        if error is not None:
            failures.append(error)
            log.error("run %d/%d (%s, seed %d) failed: %s", len(rows) + len(failures), len(runs), ablation, seed, error)
        elif row.get("failed"):
            rows[k] = row
            log.error("run %d/%d (%s, seed %d) failed: %s: %s", len(rows) + len(failures), len(runs), ablation, seed,
                      row["dir"], row["failed"])
        else:
            rows[k] = row
            test = row["metrics"].get("test", {})
            scores = "  ".join(f"test {k} {v:.4f}" for k, v in test.items() if k in ("mae", "acc2", "f1_weighted"))
            log.info("run %d/%d (%s, seed %d) %s: %s  %s", len(rows) + len(failures), len(runs), ablation, seed,
                     "already finished" if row["skipped"] else "done", row["dir"], scores)
        if bar is not None:
            bar.update(1)

    try:
        if jobs == 1 or len(runs) <= 1:
            data = load_data(store, cfg.data, resolve_device(cfg.train.device)) if runs else None
            for k, (ablation, seed) in enumerate(runs):
                try:
                    row = _run_one(data, cfg, out, ablation, seed, progress)
                except Exception as e:  # the other runs go on; raised again below
                    finished(k, None, e)
                else:
                    finished(k, row, None)
        else:
            _run_parallel(store, cfg, out, runs, jobs, finished)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise failures[0]
    return [rows[k] for k in range(len(runs))]


def _run_parallel(store: str | Path | Store, cfg: RunConfig, out: str | Path, runs: list[tuple[str, int]],
                  jobs: int, finished) -> None:
    """Train ``runs`` in ``jobs`` spawned processes; ``finished(k, row, error)`` as each ends."""
    root = str(store.root if isinstance(store, Store) else store)
    threads = max(1, torch.get_num_threads() // jobs)
    # spawn, not fork: a forked process inherits torch's thread pools and CUDA state half-initialised
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                                initargs=(root, cfg, threads)) as pool:
        futures = {pool.submit(_worker_run, cfg, str(out), ablation, seed): k
                   for k, (ablation, seed) in enumerate(runs)}
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            finished(futures[future], None if error else future.result(), error)


_WORKER_DATA: Data | None = None  # the features, loaded once per worker process


def _init_worker(root: str, cfg: RunConfig, threads: int) -> None:
    global _WORKER_DATA
    torch.set_num_threads(threads)
    _WORKER_DATA = load_data(root, cfg.data, resolve_device(cfg.train.device))


def _worker_run(cfg: RunConfig, out: str, ablation: str, seed: int) -> dict:
    return _run_one(_WORKER_DATA, cfg, out, ablation, seed, progress=False)


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="run", desc="grid", position=1, leave=False)
