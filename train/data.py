"""Feature store -> padded tensors resident on the training device, checked, batched by index slicing."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ebmc.store import Store, open_store
from ebmc.store.errors import raise_if
from ebmc.store.schema import MODALITIES, SPLITS
from ebmc.train.batch import MIN_STD, Batch, TaskSpec
from ebmc.train.config import DataConfig, dataset_family, metric_variant

log = logging.getLogger(__name__)

# Share of the free accelerator memory the resident dataset may take; the rest is for the model.
RESIDENT_SHARE = 0.5


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA device when present, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--train.device = {name}: no CUDA device is visible; use --train.device cpu or auto")
    return device


def task_spec(store: Store) -> TaskSpec:
    """The TaskSpec a store's labels define."""
    if store.task == "regression":
        return TaskSpec("regression")
    if store.task == "classification":
        return TaskSpec("classification", n_classes=len(store.classes), class_names=tuple(store.classes))
    names = tuple(c.removeprefix("label_") for c in store.label_columns)
    return TaskSpec("multilabel", label_names=names)


def _label_problems(store: Store, cfg: DataConfig, labels: np.ndarray, ids: np.ndarray) -> list[str]:
    """Labels outside the task's range, naming the rows and utterance ids."""
    if store.task == "regression":
        bad = ~np.isfinite(labels) | (labels < cfg.label_min) | (labels > cfg.label_max)
        rule = f"must be finite and in [{cfg.label_min}, {cfg.label_max}] (set --data.label_min/--data.label_max for another scale)"
    elif store.task == "classification":
        bad = (labels < 0) | (labels >= len(store.classes))
        rule = f"must be a class index 0..{len(store.classes) - 1}"
    else:
        bad = ~np.isin(labels, (0, 1)).all(axis=1)
        rule = "one-vs-rest labels must be 0 or 1"
    if not bad.any():
        return []
    rows = np.flatnonzero(bad)
    return [f"{store.root}: {len(rows)} labels outside the task's range, rows {rows[:10].tolist()} "
            f"(e.g. {ids[rows[0]]!r} = {labels[rows[0]]}); labels {rule}"]


class Data:
    """A store's splits as device tensors, padded once per modality to the longest (capped) length.

    ``x[m]``: (N, T_m, d_m) float32, zero where invalid; ``mask[m]``: (N, T_m) bool; ``present[m]``:
    (N,) bool; ``y``: (N,) float | (N,) long | (N, K) long; all on ``storage`` (the training device
    when the dataset fits in memory there, else CPU with one transfer per batch).
    """

    def __init__(self, store: Store, cfg: DataConfig, device: torch.device):
        self.store = store
        self.cfg = cfg
        self.device = device
        self.task = task_spec(store)
        # CH-SIMS labels live in [-1, 1] with their own bins (MMSA); every other regression set uses
        # MOSI's. A run's --train.family replaces this guess from the name (runs.use_family).
        self.metric_protocol = metric_variant(dataset_family(store.dataset))
        # canonical order (text, audio, vision) whatever order the flag gave
        self.modalities: tuple[str, ...] = tuple(m for m in MODALITIES if m in cfg.modalities) or store.modalities
        self.dims: dict[str, int] = {m: store.features(m).dim for m in self.modalities}
        self.fingerprints: dict[str, str] = {m: store.features(m).fingerprint for m in self.modalities}
        self.split_rows: dict[str, np.ndarray] = {s: store.split_indices(s) for s in SPLITS}
        x, mask, present, lengths = {}, {}, {}, {}
        for m in self.modalities:
            fs = store.features(m)
            values, valid = fs.padded(None, max_len=min(cfg.max_len(m) or fs.max_length, fs.max_length))
            values[~valid] = 0.0
            x[m], mask[m] = torch.from_numpy(values), torch.from_numpy(valid)
            # a sample whose every frame is masked out (e.g. no face found) carries no information
            present[m] = torch.from_numpy(fs.present & valid.any(axis=1))
            lengths[m] = valid.shape[1] - np.argmax(valid[:, ::-1], axis=1) * valid.any(axis=1)
            lengths[m][~valid.any(axis=1)] = 0
        self.lengths: dict[str, np.ndarray] = lengths  # per sample: last valid step + 1, on the host
        self.token_ids: Tensor | None = None
        if "text" in self.modalities and store.features("text").has("token_ids"):
            ids, _ = store.features("text").padded(None, max_len=x["text"].shape[1], name="token_ids", dtype=np.int64)
            self.token_ids = torch.from_numpy(ids)
        y = store.labels()
        self.y = torch.from_numpy(y.astype(np.float32) if self.task.kind == "regression" else y.astype(np.int64))
        nbytes = sum(t.nbytes for t in [*x.values(), *mask.values(), self.y]) + (
            self.token_ids.nbytes if self.token_ids is not None else 0)
        self.storage = device if self._fits(nbytes) else torch.device("cpu")
        if self.storage != device:
            log.info("dataset (%.1f GiB) does not fit in %s memory: batches are copied per step", nbytes / 2**30, device)
        move = lambda d: {k: v.to(self.storage) for k, v in d.items()}  # noqa: E731
        self.x, self.mask, self.present = move(x), move(mask), move(present)
        self.y = self.y.to(self.storage)
        self.token_ids = None if self.token_ids is None else self.token_ids.to(self.storage)

    def _fits(self, nbytes: int) -> bool:
        if self.device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        return nbytes < RESIDENT_SHARE * free

    def n(self, split: str) -> int:
        return len(self.split_rows[split])

    def _batch(self, rows: np.ndarray) -> Batch:
        """Rows of the store as a Batch, each modality cut to the longest valid length among them."""
        index = torch.from_numpy(rows).to(self.storage)
        steps = {m: max(int(self.lengths[m][rows].max(initial=0)), 1) for m in self.modalities}
        batch = Batch(x={m: self.x[m][index, :steps[m]] for m in self.modalities},
                      mask={m: self.mask[m][index, :steps[m]] for m in self.modalities},
                      present={m: self.present[m][index] for m in self.modalities},
                      y=self.y[index], index=index,
                      token_ids=None if self.token_ids is None else self.token_ids[index, :steps["text"]])
        return batch if self.storage == self.device else batch.to(self.device)

    def batches(self, split: str, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches of ``split`` in table order, or shuffled with ``generator`` (a CPU generator).

        Indices are sliced on the host (no device sync); the feature tensors are gathered on the device.
        """
        rows = self.split_rows[split]
        if shuffle:
            rows = rows[torch.randperm(len(rows), generator=generator).numpy()]
        for start in range(0, len(rows), batch_size):
            yield self._batch(rows[start:start + batch_size])

    def full(self, split: str) -> Batch:
        """The whole split as one Batch."""
        return self._batch(self.split_rows[split])

    def input_stats(self, chunk: int = 4096) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-feature mean and std ``(d_m,)`` of each modality over the valid train frames.

        Sums run in float64 over chunks of rows, so a large split is never copied whole.
        """
        rows = torch.from_numpy(self.split_rows["train"]).to(self.storage)
        mean, std = {}, {}
        for m in self.modalities:
            total = torch.zeros(self.dims[m], dtype=torch.float64, device=self.storage)
            square = torch.zeros_like(total)
            count = 0
            for start in range(0, len(rows), chunk):
                part = rows[start:start + chunk]
                frames = self.x[m][part][self.mask[m][part]].double()
                total += frames.sum(0)
                square += frames.square().sum(0)
                count += frames.shape[0]
            mu = total / max(count, 1)
            sd = (square / max(count, 1) - mu.square()).clamp_min(0).sqrt()
            # constant (or never observed) features would divide by zero: leave them unscaled
            std[m] = torch.where(sd > MIN_STD, sd, torch.ones_like(sd)).float().to(self.device)
            mean[m] = mu.float().to(self.device)
        return mean, std


def load_data(store: str | Path | Store, cfg: DataConfig, device: torch.device | str = "cpu") -> Data:
    """Open and check a store for training (its ``cfg.features`` variant); every problem found is listed in one StoreError."""
    variant = cfg.features or None
    if not isinstance(store, Store) or store.variant != variant:
        store = open_store(store.root if isinstance(store, Store) else store, features=variant)
    problems = []
    if store.task is None:
        problems.append(f"{store.root}: the store has no labels (extracted from a bare folder); add labels to train")
    missing = [m for m in cfg.modalities if m not in store.modalities]
    if missing:
        problems.append(f"{store.root}: --data.modalities asks for {', '.join(missing)}, but the store has only "
                        f"{', '.join(store.modalities)}; choose from those or extract/import the missing modality")
    if not store.modalities:
        problems.append(f"{store.root}: the store has no feature sets; import or extract features first")
    raise_if(problems, f"cannot train on {store.root}")
    ids = store.utterances["utterance_id"].astype(str).to_numpy()
    problems += _label_problems(store, cfg, store.labels(), ids)
    problems += [f"{store.root}: split {s!r} has no samples; every split (train, valid, test) needs utterances"
                 for s in SPLITS if len(store.split_indices(s)) == 0]
    train_rows = store.split_indices("train")
    for m in (tuple(cfg.modalities) or store.modalities):
        fs = store.features(m)
        if len(train_rows) and not fs.present[train_rows].any():
            problems.append(f"{fs.folder}: modality {m!r} is absent for every train sample, so nothing can "
                            "learn from it; drop it with --data.modalities or re-extract it")
    raise_if(problems, f"cannot train on {store.root}")
    return Data(store, cfg, torch.device(device) if isinstance(device, str) else device)
