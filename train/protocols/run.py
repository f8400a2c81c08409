"""Run the robustness protocols on a trained run and write one result file per protocol: ``<run>/protocols/<name>.json``."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from ebmc.store import StoreError, atomic, semantic_dict

from ..loop import evaluate
from ..runs import load_run
from .config import ProtocolConfig, resolve_names
from .contribution import fused_embedding, modality_contribution
from .frames import frame_drop, text_reencoder
from .missing import condition_name, condition_run_dir, conditions, keep_only, random_missing

log = logging.getLogger(__name__)

RESULTS_DIR = "protocols"
RESULT_VERSION = 1


def mean_over(conditions_: list[dict]) -> dict[str, float]:
    """Mean of each metric over the conditions (rates) that report it."""
    keys = [k for k in conditions_[0]["metrics"]] if conditions_ else []
    return {k: sum(c["metrics"][k] for c in conditions_) / len(conditions_)
            for k in keys if all(c["metrics"].get(k) is not None for c in conditions_)}


def _curve(label: str, rates: Sequence[float], metrics_at) -> dict:
    rows = [{"name": f"{r:g}", "rate": r, "metrics": metrics_at(r)}
            for r in tqdm(rates, desc=label, leave=False)]
    return {"conditions": rows, "mean": mean_over(rows)}


def _missing(run_dir: Path, model, data, split: str, cfg: ProtocolConfig, metrics_under, batch_size: int) -> dict:
    subsets = conditions(data.modalities)
    if not cfg.per_condition_models:
        rows = [{"name": condition_name(s), "modalities": list(s), "metrics": metrics_under(keep_only(s))}
                for s in subsets]
        return {"conditions": rows, "mean": mean_over(rows), "per_condition_models": False}
    mode = cfg.per_condition_mode
    dirs = {s: condition_run_dir(run_dir, s, mode) for s in subsets}
    lost = [f"{d}: no trained run for condition {condition_name(s)} ({mode} mode); train the condition models "
            f"with ebmc-train ... --protocols missing --protocol.per_condition_models true "
            f"--protocol.per_condition_mode {mode}"
            for s, d in dirs.items() if not (d / "metrics.json").exists()]
    if lost:
        raise StoreError(f"per_condition_models needs one run per missing-modality condition under {run_dir}", lost)
    rows = []
    for s, d in dirs.items():
        cond_model, _, cond_data = load_run(d, _device_of(model))
        # stage2 models hold every modality: the condition masks the others, as in their stage II
        rows.append({"name": condition_name(s), "modalities": list(s), "run": str(d.relative_to(run_dir)),
                     "metrics": evaluate(cond_model, cond_data, split, keep_only(s), batch_size=batch_size)})
    return {"conditions": rows, "mean": mean_over(rows), "per_condition_models": True, "per_condition_mode": mode}


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def run_protocols(run_dir: str | Path, names: str | Sequence[str] = "all", cfg: ProtocolConfig = ProtocolConfig(),
                  device: str | torch.device = "cpu") -> dict[str, Path]:
    """Evaluate the trained run in ``run_dir`` under each protocol of ``names`` and write
    ``<run_dir>/protocols/<name>.json``; returns {name: path}.

    Every file holds ``protocol``, ``split``, ``task``, ``run`` (dataset, ablation, seed),
    ``settings`` (the ProtocolConfig's semantic fields) and the protocol's results:
    ``metrics`` (full); ``conditions`` [{name, metrics, ...}] and their ``mean`` (missing,
    frame_drop, missing_rate); the contribution or embedding record otherwise.
    """
    run_dir = Path(run_dir)
    names = resolve_names(names)
    model, run_cfg, data = load_run(run_dir, device)
    split = cfg.split
    batch_size = run_cfg.train.eval_batch_size
    metrics_under = lambda t: evaluate(model, data, split, transform=t, batch_size=batch_size)  # noqa: E731
    reencode = None
    if "frame_drop" in names and cfg.text_drop_mode == "unk" and "text" in data.modalities:
        info = dict(data.store.features("text").info)
        if cfg.text_model:
            info["model_path"] = cfg.text_model
        reencode = text_reencoder(info, cfg.text_model_device)
    header = {"version": RESULT_VERSION, "split": split, "task": data.task.kind,
              "run": {"dataset": data.store.dataset, "ablation": run_cfg.ablation, "seed": run_cfg.train.seed},
              "settings": semantic_dict(cfg)}
    written = {}
    for name in names:
        log.info("%s: protocol %s", run_dir, name)
        if name == "full":
            body = {"metrics": metrics_under(None)}
        elif name == "missing":
            body = _missing(run_dir, model, data, split, cfg, metrics_under, batch_size)
        elif name == "frame_drop":
            body = _curve("frame drop", cfg.rates, lambda r: metrics_under(
                frame_drop(r, cfg.mask_seed, cfg.text_drop_mode, reencode)))
            body["text_drop_mode"] = cfg.text_drop_mode
        elif name == "missing_rate":
            body = _curve("modality missing", cfg.rates, lambda r: metrics_under(random_missing(r, cfg.mask_seed)))
        elif name == "contribution":
            body = modality_contribution(model, data, split, batch_size, metrics_under)
        else:
            body = fused_embedding(model, data, split, batch_size, cfg.embedding_points, cfg.mask_seed)
        path = run_dir / RESULTS_DIR / f"{name}.json"
        atomic.write_json(path, {"protocol": name, **header, **body})
        written[name] = path
    return written

