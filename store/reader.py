"""Reading a feature store: the committed dataset, its utterance table and memory-mapped features."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import StoreError, raise_if
from .fingerprint import ids_digest
from .lock import LOCK_FILE
from .validate import REBUILD, check_feature_set, read_json
from .schema import (ID_COLUMN, MANIFEST_FILE, MODALITIES, SCHEMA_VERSION, SPLITS, STATUSES,
                     STORE_FILE, dataset_name_problems)

_FIX_VERSION = ("re-create it with this ebmc (ebmc-import / ebmc-extract into a new folder), "
                "or install the ebmc release that wrote it")


def _check_version(meta: dict, where: Path) -> None:
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{where} has feature-store schema version {version!r}; this ebmc reads "
                         f"version {SCHEMA_VERSION}: {_FIX_VERSION}")


def read_manifest(folder: Path, verify: bool = False) -> dict:
    """A feature set's manifest, checked: present, this schema version, its arrays sound
    (``validate.check_feature_set``; full content hashes with ``verify``)."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.exists():
        raise StoreError(f"{folder}: no {MANIFEST_FILE}, so this feature set was never committed "
                         "(a killed or failed write); rerun the import or extraction that makes it")
    manifest = read_json(path)
    _check_version(manifest, path)
    missing = [k for k in ("modality", "fingerprint", "producer", "layout", "n", "dim", "ids_sha256", "arrays")
               if k not in manifest]
    raise_if([f"{path}: no {k!r} entry; {REBUILD}" for k in missing], f"feature set {folder} is damaged")
    raise_if(check_feature_set(folder, manifest, verify), f"feature set {folder} is damaged")
    return manifest


class FeatureSet:
    """One modality's committed features: ``(T_i, d)`` per utterance, memory-mapped.

    Rows follow the store's utterance table. Only the arrays touched are read from disk.
    """

    def __init__(self, folder: Path, manifest: dict):
        self.folder = folder
        self.manifest = manifest
        self.modality: str = manifest["modality"]
        self.fingerprint: str = manifest["fingerprint"]
        self.producer: dict[str, Any] = manifest["producer"]
        self.info: dict[str, Any] = manifest.get("info", {})
        self.layout: str = manifest["layout"]
        self.n: int = manifest["n"]
        self.dim: int = manifest["dim"]

    @functools.cache
    def array(self, name: str) -> np.ndarray:
        """A stored array by name (``values``, ``status``, ``timestamps``, ...), memory-mapped."""
        if name not in self.manifest["arrays"]:
            raise KeyError(f"{self.folder}: no array {name!r}; it has {sorted(self.manifest['arrays'])}")
        return np.load(self.folder / self.manifest["arrays"][name]["file"], mmap_mode="r")

    def has(self, name: str) -> bool:
        """Whether this feature set stores an array called ``name``."""
        return name in self.manifest["arrays"]

    @functools.cached_property
    def status(self) -> np.ndarray:
        """``(N,)`` status names: "ok", "absent" or "failed"."""
        return np.asarray(STATUSES, dtype=object)[np.asarray(self.array("status"))]

    @functools.cached_property
    def present(self) -> np.ndarray:
        """``(N,)`` bool: the modality exists for this utterance."""
        return np.asarray(self.array("status")) == 0

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """``(N,)`` valid lengths; 0 where the modality is absent."""
        if self.layout == "ragged":
            raw = np.diff(np.asarray(self.array("offsets")))
        else:
            raw = np.asarray(self.array("lengths"))
        return np.where(self.present, raw, 0).astype(np.int64)

    @property
    def max_length(self) -> int:
        return int(self.lengths.max()) if self.n else 0

    def sequence(self, i: int, name: str = "values") -> np.ndarray:
        """Utterance ``i``'s valid rows of array ``name``: ``(T_i, ...)``."""
        arr = self.array(name)
        if self.layout == "ragged":
            off = self.array("offsets")
            return arr[off[i]:off[i] + self.lengths[i]]
        return arr[i, :self.lengths[i]]

    def padded(self, indices: Sequence[int] | np.ndarray | None = None, max_len: int | None = None,
               name: str = "values", dtype: npt.DTypeLike | None = np.float32
               ) -> tuple[np.ndarray, np.ndarray]:
        """Batch of utterances as ``values (n, T, ...)`` and valid ``mask (n, T)`` (bool).

        ``T`` is ``max_len`` or the longest selected sequence; longer ones are cut at ``T``.
        A stored ``frame_mask`` (e.g. frames without a face) is folded into the mask. ``values``
        has ``dtype``, or the stored dtype when ``dtype`` is None.
        """
        idx = np.arange(self.n) if indices is None else np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[idx]
        T = int(max_len if max_len is not None else (lengths.max() if len(idx) else 0))
        arr = self.array(name)
        tail = arr.shape[1:] if self.layout == "ragged" else arr.shape[2:]
        out = np.zeros((len(idx), T, *tail), dtype=dtype if dtype is not None else arr.dtype)
        steps = np.arange(T)
        mask = steps[None, :] < np.minimum(lengths, T)[:, None]
        if self.layout == "padded":
            # padded rows are contiguous: one slice per batch, cut to T
            src = np.asarray(arr[np.sort(idx)][:, :T]) if len(idx) else arr[:0, :T]
            order = np.argsort(np.argsort(idx))
            src = src[order]
            out[:, :src.shape[1]] = src
            out[~mask] = 0
        else:
            off = np.asarray(self.array("offsets"))
            for row, (i, L) in enumerate(zip(idx, np.minimum(lengths, T))):
                if L:
                    out[row, :L] = arr[off[i]:off[i] + L]
        if name == "values" and self.has("frame_mask"):
            fm, _ = self.padded(idx, T, name="frame_mask", dtype=bool)
            mask &= fm
        return out, mask


class Store:
    """A committed dataset: utterance table, task and labels, one feature set per modality.

    ``features`` picks a named variant of the feature sets (e.g. "aligned"); None = the default ones.
    """

    def __init__(self, root: str | Path, verify: bool = False, features: str | None = None):
        root = Path(root)
        path = root / STORE_FILE
        if not path.exists():
            hint = ("it holds an uncommitted (killed or failed) write; rerun the import or extraction"
                    if root.is_dir() and any(p.name != LOCK_FILE for p in root.iterdir()) else
                    "point to a folder made by ebmc-import or ebmc-extract, e.g. features/mosi")
            raise StoreError(f"{root} is not a committed feature store (no {STORE_FILE}): {hint}")
        meta = read_json(path)
        _check_version(meta, path)
        missing = [k for k in ("dataset", "task", "label_columns", "classes", "n", "utterances", "ids_sha256",
                               "feature_sets") if k not in meta]
        raise_if([f"{path}: no {k!r} entry; {REBUILD}" for k in missing], f"feature store {root} is damaged")
        self.root = root
        self.meta = meta
        self.dataset: str = meta["dataset"]
        # the name becomes a folder of the runs: a tampered store.json must not write outside --out
        raise_if(dataset_name_problems(self.dataset, str(path)),
                 f"feature store {root} is damaged")
        self.task: str | None = meta["task"]
        self.label_columns: list[str] = list(meta["label_columns"])
        self.classes: list[str] | None = meta["classes"]
        self.n: int = meta["n"]
        self.variant = features
        sets = meta["feature_sets"] if features is None else meta.get("variants", {}).get(features)
        if sets is None:
            have = ", ".join(meta.get("variants", {})) or "none"
            raise StoreError(f"{root}: no feature-set variant {features!r} (variants: {have}); "
                             "ebmc-extract --align words writes the 'aligned' one")
        problems = []
        self._feature_sets: dict[str, FeatureSet] = {}
        for m, rel in sets.items():
            try:
                man = read_manifest(root / rel, verify)
            except StoreError as e:
                problems.extend(e.problems or [str(e)])
                continue
            if man["ids_sha256"] != meta["ids_sha256"]:
                problems.append(f"{root / rel}: rows do not belong to this store's utterance list; re-commit the store")
            self._feature_sets[m] = FeatureSet(root / rel, man)
        table = root / meta["utterances"]
        # read now, whole (it is small): a Store never needs the file again, so a later commit may replace it
        self._table_bytes = table.read_bytes() if table.exists() else b""
        if not table.exists():
            problems.append(f"{table}: utterance table missing; {REBUILD}")
        elif not table.name.endswith(f"-{hashlib.sha256(self._table_bytes).hexdigest()[:16]}.parquet"):
            problems.append(f"{table}: content differs from the hash in its name (damaged or edited after commit); {REBUILD}")
        raise_if(problems, f"feature store {root} is damaged")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this store has, in canonical order (text, audio, vision)."""
        return tuple(m for m in MODALITIES if m in self._feature_sets)

    @functools.cached_property
    def utterances(self) -> pd.DataFrame:
        """The utterance table (id, video/clip id, split, labels, transcript, ``<m>_length``/``_status``)."""
        path = self.root / self.meta["utterances"]
        try:
            table = pq.read_table(pa.BufferReader(self._table_bytes)).to_pandas()
        except (OSError, ValueError, pa.ArrowException) as e:
            raise StoreError(f"{path}: unreadable utterance table ({type(e).__name__}: {e}); {REBUILD}") from None
        if ID_COLUMN not in table.columns or ids_digest(table[ID_COLUMN].astype(str)) != self.meta["ids_sha256"]:
            raise StoreError(f"{self.root / self.meta['utterances']}: ids do not match store.json; the table was changed after commit")
        return table

    def features(self, modality: str) -> FeatureSet:
        if modality not in self._feature_sets:
            raise StoreError(f"{self.root}: no {modality!r} features; this store has {', '.join(self.modalities)}. "
                             "Choose from those (e.g. --data.modalities) or extract/import that modality")
        return self._feature_sets[modality]

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of one split (train/valid/test), in table order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.utterances["split"].to_numpy() == split)

    def labels(self) -> np.ndarray:
        """Labels of every row: regression ``(N,)`` float32, classification ``(N,)`` int64,
        multilabel ``(N, K)`` int64 (one column per ``label_columns`` entry)."""
        if self.task is None:
            raise StoreError(f"{self.root}: this store has no labels (extracted from a bare folder); add labels "
                             "to the manifest and re-extract to train")
        table = self.utterances
        if self.task == "regression":
            return table[self.label_columns[0]].to_numpy(np.float32)
        if self.task == "classification":
            return table[self.label_columns[0]].to_numpy(np.int64)
        return table[self.label_columns].to_numpy(np.int64)

    def fingerprints(self) -> dict[str, str]:
        """modality -> fingerprint of the feature set this store uses."""
        return {m: fs.fingerprint for m, fs in self._feature_sets.items()}


def open_store(root: str | Path, verify: bool = False, features: str | None = None) -> Store:
    """Open a committed feature store; raises StoreError with a fix-it message otherwise.

    Sizes, structure and index checksums are always checked; ``verify`` also hashes every file's
    full content against its recorded checksum (see ``validate.py``). ``features`` picks a variant
    of the feature sets (e.g. "aligned"); None = the default ones.
    """
    return Store(root, verify, features)
