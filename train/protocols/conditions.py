"""Train the models of ``per_condition_models``: one run per missing-modality condition, in ``<run>/conditions/<mode>/<subset>/``."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import torch

from ebmc.store import Store, open_store

from ..config import DataConfig, RunConfig
from ..data import load_data
from ..runs import execute, read_record
from .missing import condition_name, condition_run_dir, conditions

log = logging.getLogger(__name__)


def condition_config(cfg: RunConfig, subset: tuple[str, ...], mode: str) -> RunConfig:
    """The config of ``cfg``'s model for condition ``subset``: mode "stage2" (the authors' protocol)
    trains stage I on every modality and masks the others in stage II (``train.stage2_modalities``);
    mode "whole" trains both stages on the subset's features only (``data.modalities``)."""
    if mode == "stage2":
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stage2_modalities=subset))
    if mode == "whole":
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, modalities=subset))
    raise ValueError(f"per-condition mode must be 'stage2' or 'whole', got {mode!r}")


def train_conditions(store: str | Path | Store, run_dirs: Sequence[str | Path], device: str | torch.device,
                     mode: str = "stage2", progress: bool = True) -> list[dict]:
    """For each run in ``run_dirs``, train one model per non-empty proper subset of the run's
    modalities, configured by ``condition_config(run config, subset, mode)``, into
    ``condition_run_dir(run, subset, mode)``. Like any run, a finished condition is skipped and an
    unfinished one resumes (``runs.execute``). Each feature selection is loaded once.

    Returns one row per condition run: run, condition, mode, dir, skipped, metrics.
    """
    opened = store if isinstance(store, Store) else open_store(store)
    jobs: dict[DataConfig, list[tuple[Path, tuple[str, ...], RunConfig]]] = {}
    for run in map(Path, run_dirs):
        record = read_record(run)
        cfg = record.run_config()
        # the run's modalities are the ones it read features of (data.modalities may be "all": ())
        for subset in conditions(list(record.fingerprints)):
            sub_cfg = condition_config(cfg, subset, mode)
            jobs.setdefault(sub_cfg.data, []).append((run, subset, sub_cfg))
    rows = []
    for data_cfg, runs in jobs.items():  # one feature selection in memory at a time
        data = load_data(opened, data_cfg, device)
        for run, subset, cfg in runs:
            log.info("%s: training the model of condition %s (%s mode)", run, condition_name(subset), mode)
            folder, metrics, skipped = execute(data, cfg, folder=condition_run_dir(run, subset, mode),
                                               progress=progress)
            rows.append({"run": run, "condition": condition_name(subset), "mode": mode, "dir": folder,
                         "skipped": skipped, "metrics": metrics})
    return rows
