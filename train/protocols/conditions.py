"""Train the models of ``per_condition_models``: one run per missing-modality condition, in ``<run>/conditions/<subset>/``."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from ebmc.store import Store, open_store

from ..config import DataConfig, RunConfig, from_dict
from ..data import load_data
from ..runs import CONFIG, execute
from .missing import condition_name, condition_run_dir, conditions

log = logging.getLogger(__name__)


def train_conditions(store: str | Path | Store, run_dirs: Sequence[str | Path], device: str | torch.device,
                     progress: bool = True) -> list[dict]:
    """For each run in ``run_dirs``, train one model per non-empty proper subset of the run's
    modalities: the run's config with ``data.modalities`` set to the subset, into
    ``condition_run_dir(run, subset)``. Like any run, a finished condition is skipped and an
    unfinished one resumes (``runs.execute``). Each subset's features are loaded once.

    Returns one row per condition run: run, condition, dir, skipped, metrics.
    """
    opened = store if isinstance(store, Store) else open_store(store)
    jobs: dict[DataConfig, list[tuple[Path, RunConfig]]] = {}
    for run in map(Path, run_dirs):
        record = json.loads((run / CONFIG).read_text())
        cfg = from_dict(record["config"])
        # the run's modalities are the ones it read features of (data.modalities may be "all": ())
        for subset in conditions(list(record["store"]["fingerprints"])):
            data_cfg = dataclasses.replace(cfg.data, modalities=subset)
            jobs.setdefault(data_cfg, []).append((run, dataclasses.replace(cfg, data=data_cfg)))
    rows = []
    for data_cfg, runs in jobs.items():  # one subset's features in memory at a time
        data = load_data(opened, data_cfg, device)
        for run, cfg in runs:
            subset = data_cfg.modalities
            log.info("%s: training the model of condition %s", run, condition_name(subset))
            folder, metrics, skipped = execute(data, cfg, folder=condition_run_dir(run, subset), progress=progress)
            rows.append({"run": run, "condition": condition_name(subset), "dir": folder, "skipped": skipped,
                         "metrics": metrics})
    return rows
