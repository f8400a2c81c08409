"""The grid of (ablation, seed) runs on one store: every run in its own resumable folder."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ebmc.store import Store
from ebmc.train.ablations import apply_ablation, expand_names
from ebmc.train.config import RunConfig
from ebmc.train.data import load_data, resolve_device
from ebmc.train.runs import execute


def run_grid(store: str | Path | Store, cfg: RunConfig, out: str | Path, seeds: list[int], ablations: list[str],
             progress: bool = True) -> list[dict]:
    """Every (ablation, seed) run on one store, loading the features once; one row per run.

    ``ablations`` are override names (ebmc.train.ablations); presets such as ``sensitivity`` expand.
    """
    names = expand_names(ablations)
    data = load_data(store, cfg.data, resolve_device(cfg.train.device))
    rows = []
    for name in names:
        for seed in seeds:
            run_cfg = apply_ablation(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed)), name)
            folder, metrics, skipped = execute(data, run_cfg, out, progress=progress)
            rows.append({"ablation": name, "seed": seed, "dir": folder, "skipped": skipped, "metrics": metrics})
    return rows
