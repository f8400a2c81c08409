"""Run directories: one per (dataset, ablation, seed), resumable, skipped when finished, loadable.

Layout of ``<out>/<dataset>/<ablation>/seed-<seed>/``::

    config.json   resolved RunConfig, its fingerprint, the store and the feature-set fingerprints read
    env.json      versions, git commit, device
    history.csv   one row per epoch and stage (train loss terms, validation metrics, seconds)
    resume.pt     state after the last completed epoch (removed when the run finishes)
    model.pt      weights of the selected checkpoint (``torch.load(..., weights_only=True)``)
    metrics.json  valid and test metrics at the selected checkpoint; written last: the commit point
    failed.json   why the run stopped (a diverged loss: stage, epoch, reason); removed when it runs again
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import platform
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import torch

from ebmc.store import Store, StoreError, atomic, open_store
from ebmc.store.fingerprint import fingerprint
from ebmc.train.config import RunConfig, from_dict, metric_variant, resolve, to_dict
from ebmc.train.data import Data, load_data
from ebmc.train.loop import Diverged, TrainState, make_model, train
from ebmc.train.model import EBMC

log = logging.getLogger(__name__)

CONFIG, ENV, HISTORY, RESUME, MODEL, METRICS, FAILED = ("config.json", "env.json", "history.csv", "resume.pt",
                                                         "model.pt", "metrics.json", "failed.json")


def run_dir(out: str | Path, dataset: str, ablation: str, seed: int) -> Path:
    return Path(out) / dataset / ablation / f"seed-{seed}"


def is_finished(folder: str | Path) -> bool:
    return (Path(folder) / METRICS).exists()


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run folder's config.json, typed: the only place its keys are read."""

    folder: Path
    dataset: str
    task: str
    ablation: str
    seed: int
    store_path: str
    fingerprints: dict[str, str]
    config: dict  # the RunConfig as written by ``to_dict``; ``run_config()`` parses it
    fingerprint: str

    def run_config(self) -> RunConfig:
        return from_dict(self.config)


def read_record(folder: str | Path) -> RunRecord:
    """The typed config.json of the run in ``folder``."""
    folder = Path(folder)
    record = json.loads((folder / CONFIG).read_text())
    store, config = record["store"], record["config"]
    return RunRecord(folder, store["dataset"], store["task"], config["ablation"], config["train"]["seed"],
                     store["path"], store["fingerprints"], config, record["fingerprint"])


def iter_runs(out: str | Path) -> Iterator[RunRecord]:
    """Every finished run ``<out>/<dataset>/<ablation>/seed-<seed>/`` (metrics.json written), in path order."""
    for metrics_file in sorted(Path(out).glob(f"*/*/seed-*/{METRICS}")):
        yield read_record(metrics_file.parent)


def config_record(cfg: RunConfig, data: Data) -> dict:
    """What config.json holds; ``fingerprint`` covers the semantic config and the features read.
    ``parameters`` is the model's trainable parameter count on this store's feature dimensions."""
    store = {"path": str(Path(data.store.root).resolve()), "dataset": data.store.dataset,
             "task": data.task.kind, "fingerprints": data.fingerprints}
    parameters = sum(p.numel() for p in make_model(cfg, data).parameters())
    return {"config": to_dict(cfg), "store": store, "parameters": parameters,
            "fingerprint": fingerprint({"config": cfg, "features": data.fingerprints})}


def environment(device: torch.device) -> dict:
    """Versions, git commit and device of this process, for env.json."""
    import numpy
    from importlib import metadata
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True,
                                    timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    try:
        ebmc_version = metadata.version("ebmc")
    except metadata.PackageNotFoundError:
        ebmc_version = None
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "pandas": pd.__version__, "ebmc": ebmc_version, "git_commit": commit, "git_dirty": dirty,
            "platform": platform.platform(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "cuda": torch.version.cuda, "torch_threads": torch.get_num_threads()}


def _save_torch(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic.write_bytes(path, buf.getvalue())


def _write_history(folder: Path, rows: list[dict]) -> None:
    atomic.write_bytes(folder / HISTORY, pd.DataFrame(rows).to_csv(index=False).encode())


def read_history(folder: str | Path) -> pd.DataFrame:
    """A run's history.csv; floats read back exactly as written (pandas' default parser does not
    round-trip every float, so a value could differ from the one in metrics.json)."""
    return pd.read_csv(Path(folder) / HISTORY, float_precision="round_trip")


def _check_same(folder: Path, record: dict) -> None:
    """An existing run folder must hold the same config and features; never mix two runs in one."""
    old = read_record(folder)
    if old.fingerprint != record["fingerprint"]:
        changed = [f"{section}.{k}: {v!r} -> {record['config'][section].get(k)!r}"
                   for section, fields in old.config.items() if isinstance(fields, dict)
                   for k, v in fields.items() if record["config"][section].get(k) != v]
        if old.fingerprints != record["store"]["fingerprints"]:
            changed.append(f"feature sets {old.fingerprints} -> {record['store']['fingerprints']}")
        raise StoreError(f"{folder} holds a run with another config or other features; use another --out "
                         "or delete that folder to train anew", changed or ["(the run-only settings agree)"])


def use_family(data: Data, cfg: RunConfig) -> None:
    """Score ``data`` with the metric variant of the run's family (runs resolved before issue 9 say "auto":
    the store's name decides, as ``load_data`` already did)."""
    if cfg.train.family != "auto":
        data.metric_protocol = metric_variant(cfg.train.family)


def execute(data: Data, cfg: RunConfig, out: str | Path | None = None, progress: bool = True,
            on_epoch: Callable[[TrainState], None] | None = None,
            folder: str | Path | None = None) -> tuple[Path, dict, bool]:
    """Train one run into its folder: ``run_dir(out, ...)``, or ``folder`` when given (the
    per-condition models of a run); returns (folder, metrics, skipped).

    A finished folder with the same config is skipped; an unfinished one resumes from resume.pt.
    ``on_epoch`` is called after each saved epoch (tests use it to simulate a kill).
    """
    cfg = resolve(cfg, data.store.dataset)
    use_family(data, cfg)
    if (out is None) == (folder is None):
        raise ValueError("execute needs exactly one of out (a results folder) and folder (the run's own folder)")
    folder = Path(folder) if folder is not None else run_dir(out, data.store.dataset, cfg.ablation, cfg.train.seed)
    record = config_record(cfg, data)
    log.info("%s: EBMC with %s parameters (model preset %s; dims %s)", folder, f"{record['parameters']:,}",
             cfg.model.preset, " ".join(f"{m} {d}" for m, d in data.dims.items()))
    if (folder / CONFIG).exists():
        _check_same(folder, record)
        if is_finished(folder):
            log.info("%s: finished already, skipped", folder)
            return folder, json.loads((folder / METRICS).read_text()), True
    atomic.remove_stale_temps(folder)
    (folder / FAILED).unlink(missing_ok=True)
    atomic.write_json(folder / CONFIG, record)
    atomic.write_json(folder / ENV, environment(data.device))
    state = None
    if (folder / RESUME).exists():
        state = TrainState.from_dict(torch.load(folder / RESUME, map_location=data.device, weights_only=True))
        log.info("%s: resuming at stage %d after epoch %d", folder, state.stage, state.epoch)

    def save(state: TrainState) -> None:
        _save_torch(folder / RESUME, state.to_dict())
        _write_history(folder, state.history)
        if on_epoch is not None:
            on_epoch(state)

    try:
        result = train(cfg, data, state=state, on_epoch=save, progress=progress)
    except Diverged as e:
        atomic.write_json(folder / FAILED, {"reason": str(e), "stage": e.stage, "epoch": e.epoch})
        raise
    _write_history(folder, result.state.history)
    _save_torch(folder / MODEL, result.model.state_dict())
    atomic.write_json(folder / METRICS, result.metrics)
    (folder / RESUME).unlink(missing_ok=True)
    return folder, result.metrics, False


def load_run(folder: str | Path, device: str | torch.device = "cpu",
             store: str | Path | Store | None = None) -> tuple[EBMC, RunConfig, Data]:
    """A finished run's model (eval mode, selected checkpoint), its RunConfig and its data.

    The store is the one recorded in config.json unless ``store`` is given; its feature sets must be
    the ones the run was trained on.
    """
    folder = Path(folder)
    if not is_finished(folder):
        raise StoreError(f"{folder} is not a finished run (no {METRICS}); rerun the same ebmc-train command "
                         "to finish or resume it")
    record = read_record(folder)
    cfg = record.run_config()
    opened = store if isinstance(store, Store) else open_store(store or record.store_path)
    device = torch.device(device)
    data = load_data(opened, cfg.data, device)
    if data.fingerprints != record.fingerprints:
        raise StoreError(f"{opened.root} does not hold the features run {folder} was trained on",
                         [f"{m}: run used {record.fingerprints.get(m)}, store has {fp}"
                          for m, fp in data.fingerprints.items() if record.fingerprints.get(m) != fp])
    use_family(data, cfg)
    model = make_model(cfg, data)
    model.load_state_dict(torch.load(folder / MODEL, map_location=device, weights_only=True))
    return model.eval(), cfg, data
