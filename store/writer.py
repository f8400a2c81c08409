"""Writing a feature store: feature sets (one per modality and producer) and the commit of a dataset.

Order of a write, so that a killed writer never leaves a readable half state:
1. each feature set is built in a ``.tmp-*`` folder, its ``manifest.json`` written last, then the
   folder is renamed to its fingerprint (``<modality>/<fingerprint>/``);
2. the utterance table is written under a content-hashed name;
3. ``store.json`` is replaced atomically: it is the commit point, readers trust only what it lists.
Each step holds the store's lock (``lock.py``), so a second writer fails at once with the holder's
name instead of deleting the first one's files.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import atomic
from .errors import StoreError, raise_if
from .fingerprint import fingerprint, ids_digest
from .lock import locked
from .schema import (ID_COLUMN, MANIFEST_FILE, MODALITIES, SCHEMA_VERSION, STATUSES, STORE_FILE,
                     check_modality, dataset_name_problems, length_column, missing_train_classes,
                     status_column, validate_utterances)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModalityData:
    """One modality's features for all utterances of a dataset, in utterance-table order.

    Give either ``sequences`` (ragged: one ``(T_i, d)`` array per utterance, ``None`` when absent)
    or ``values`` ``(N, T, d)`` with ``lengths`` ``(N,)`` (padded, kept as is: exact round trips).
    ``extras`` are further arrays in the same layout (ragged: list of ``(T_i, ...)`` arrays;
    padded: ``(N, T, ...)``), e.g. ``timestamps``, ``frame_mask``, ``token_ids``.
    ``status`` per utterance is "ok", "absent" or "failed"; by default "ok" where data exists.
    ``producer`` describes what made the data (name, version, semantic config, tool versions,
    source hash); it and the utterance ids determine the fingerprint. ``info`` is recorded in the
    manifest but not fingerprinted: where things were on this machine (e.g. the text model's folder,
    which the [UNK] protocol re-loads), never what determines content.
    """

    producer: dict[str, Any]
    sequences: Sequence[np.ndarray | None] | None = None
    values: np.ndarray | None = None
    lengths: np.ndarray | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: Sequence[str] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _sanitize(values: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    if not np.issubdtype(values.dtype, np.floating):
        return values, 0
    bad = ~np.isfinite(values)
    n_bad = int(bad.sum())
    if n_bad:
        values = np.where(bad, 0.0, values).astype(values.dtype)
        log.warning("%s: replaced %d non-finite values (NaN/inf) with 0", where, n_bad)
    return values, n_bad


def _ragged(data: ModalityData, n: int, where: str, problems: list[str]):
    seqs = list(data.sequences)
    if len(seqs) != n:
        problems.append(f"{where}: {len(seqs)} sequences for {n} utterances")
        return None
    dims = {np.asarray(s).shape[1:] for s in seqs if s is not None}
    if len(dims) > 1:
        per_dim: dict[tuple, list[int]] = {}
        for i, s in enumerate(seqs):
            if s is not None:
                per_dim.setdefault(np.asarray(s).shape[1:], []).append(i)
        detail = "; ".join(f"shape (T, {', '.join(map(str, d))}) in samples {rows[:5]}" for d, rows in per_dim.items())
        problems.append(f"{where}: feature dimension differs across samples: {detail}")
        return None
    for i, s in enumerate(seqs):
        if s is not None and np.asarray(s).ndim != 2:
            problems.append(f"{where}: sample {i} has shape {np.asarray(s).shape}; expected (T, d)")
    if problems:
        return None
    dim = dims.pop()[0] if dims else 0
    lengths = np.array([0 if s is None else len(s) for s in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    present_rows = [np.asarray(s, dtype=np.float32) for s in seqs if s is not None]
    values = np.concatenate(present_rows) if present_rows else np.zeros((0, dim), np.float32)
    arrays = {"values": values, "offsets": offsets}
    for name, extra in data.extras.items():
        parts = list(extra)
        if len(parts) != n:
            problems.append(f"{where}: extra array {name!r} has {len(parts)} entries for {n} utterances")
            continue
        bad = [i for i, (p, L) in enumerate(zip(parts, lengths)) if (0 if p is None else len(p)) != L]
        if bad:
            problems.append(f"{where}: extra array {name!r} length differs from the features in samples {bad[:10]}")
            continue
        kept = [np.asarray(p) for p in parts if p is not None and len(p)]
        arrays[name] = np.concatenate(kept) if kept else np.zeros((0,), np.float32)
    return arrays, lengths, dim, "ragged", [s is not None for s in seqs]


def _padded(data: ModalityData, n: int, where: str, problems: list[str]):
    values = np.asarray(data.values)
    lengths = np.asarray(data.lengths if data.lengths is not None
                         else np.full(n, values.shape[1] if values.ndim == 3 else 0)).astype(np.int64)
    if values.ndim != 3 or values.shape[0] != n:
        problems.append(f"{where}: padded values have shape {values.shape}; expected (N={n}, T, d)")
        return None
    if lengths.shape != (n,):
        problems.append(f"{where}: lengths have shape {lengths.shape}; expected ({n},)")
        return None
    over = np.flatnonzero((lengths > values.shape[1]) | (lengths < 0))
    if len(over):
        problems.append(f"{where}: lengths beyond the padded size {values.shape[1]} (or negative) in samples {over[:10].tolist()}")
    arrays = {"values": values, "lengths": lengths}
    for name, extra in data.extras.items():
        extra = np.asarray(extra)
        if extra.shape[:2] != values.shape[:2]:
            problems.append(f"{where}: extra array {name!r} has shape {extra.shape}; expected ({n}, {values.shape[1]}, ...)")
            continue
        arrays[name] = extra
    if problems:
        return None
    return arrays, lengths, values.shape[2], "padded", [True] * n


@locked
def write_feature_set(root: str | Path, modality: str, ids: Sequence[str], data: ModalityData) -> str:
    """Write one modality's features as a committed feature set; return its fingerprint.

    The feature set lands in ``root/<modality>/<fingerprint>/``. The fingerprint hashes the
    schema version, modality, producer and utterance ids: the same inputs give the same folder,
    which is then reused rather than rewritten.
    """
    check_modality(modality)
    root = Path(root)
    n = len(ids)
    where = f"{root.name}/{modality}"
    problems: list[str] = []
    if (data.sequences is None) == (data.values is None):
        raise StoreError(f"{where}: give either sequences (ragged) or values (padded), not both or neither")
    built = (_ragged if data.sequences is not None else _padded)(data, n, where, problems)
    raise_if(problems, f"cannot write the {modality} features of {root}")
    arrays, lengths, dim, layout, has_data = built
    values, n_bad = _sanitize(arrays["values"], where)
    arrays["values"] = values
    status = list(data.status) if data.status is not None else ["ok" if h else "absent" for h in has_data]
    bad_status = sorted({s for s in status if s not in STATUSES})
    raise_if([f"{where}: unknown status values {bad_status}; use {', '.join(STATUSES)}"] if bad_status else [],
             f"cannot write the {modality} features of {root}")
    if len(status) != n:
        raise StoreError(f"{where}: {len(status)} status values for {n} utterances")
    missing = [i for i, (s, h) in enumerate(zip(status, has_data)) if s == "ok" and not h]
    if missing:
        raise StoreError(f"{where}: status 'ok' but no data for samples {missing[:10]}")
    # uint8 codes, index into STATUSES: 0 ok, 1 absent, 2 failed
    arrays["status"] = np.array([STATUSES.index(s) for s in status], dtype=np.uint8)
    id_hash = ids_digest(ids)
    fp = fingerprint({"schema_version": SCHEMA_VERSION, "modality": modality,
                      "producer": data.producer, "ids": id_hash})
    folder = root / modality
    folder.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(folder)
    final = folder / fp
    if (final / MANIFEST_FILE).exists():
        log.info("%s: feature set %s already committed; reusing it", where, fp)
        return fp
    staging = atomic.temp_name(final)
    staging.mkdir()
    manifest_arrays = {}
    for name, arr in arrays.items():
        digest = atomic.write_npy(staging / f"{name}.npy", arr)
        manifest_arrays[name] = {"file": f"{name}.npy", "dtype": str(arr.dtype), "shape": list(arr.shape),
                                 "sha256": digest}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "modality": modality,
        "fingerprint": fp,
        "producer": data.producer,
        "info": data.info,
        "layout": layout,
        "n": n,
        "dim": int(dim),
        "ids_sha256": id_hash,
        "arrays": manifest_arrays,
        "status_counts": {s: status.count(s) for s in STATUSES},
        "stats": {"nonfinite_replaced": n_bad, "frames": int(lengths.sum())},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic.write_json(staging / MANIFEST_FILE, manifest)  # last: the feature set's commit point
    atomic.publish_dir(staging, final)
    log.info("%s: committed feature set %s (%d utterances, dim %d, %d non-finite replaced)", where, fp, n, dim, n_bad)
    return fp


@locked
def commit_store(root: str | Path, *, dataset: str, task: str | None, utterances: pd.DataFrame,
                 feature_sets: dict[str, str], label_columns: Sequence[str] = ("label",),
                 classes: Sequence[str] | None = None, source: dict[str, Any] | None = None,
                 variants: dict[str, dict[str, str]] | None = None) -> Path:
    """Validate and commit a dataset: its utterance table and the active feature set per modality.

    ``feature_sets`` maps modality -> fingerprint of an already written feature set. The
    ``<m>_length`` and ``<m>_status`` columns are filled from those feature sets. ``variants``
    names further sets of the same utterances, {name: {modality: fingerprint}} (e.g. "aligned":
    word-aligned features), which ``open_store(root, features=name)`` reads instead. ``store.json``
    is replaced last and atomically; until then readers see the previous commit (or none).
    """
    from .reader import read_manifest  # the reader's manifest checks are the writer's too

    root = Path(root)
    label_columns = list(label_columns) if task is not None else []
    table = utterances.reset_index(drop=True).copy()
    problems = validate_utterances(table, task, label_columns, list(classes) if classes else None, f"{root}")
    problems += dataset_name_problems(dataset, str(root))
    if not feature_sets:
        problems.append(f"{root}: no modality given; a store needs at least one of {', '.join(MODALITIES)}")
    ids = table[ID_COLUMN].astype(str).tolist() if ID_COLUMN in table.columns else []
    id_hash = ids_digest(ids)
    for name, m, fp in [*(("", m, fp) for m, fp in feature_sets.items()),
                        *((v, m, fp) for v, sets in (variants or {}).items() for m, fp in sets.items())]:
        if m not in MODALITIES:
            problems.append(f"{root}: unknown modality {m!r}; use {', '.join(MODALITIES)}")
            continue
        try:
            man = read_manifest(root / m / fp)
        except StoreError as e:
            problems.extend(e.problems or [str(e)])
            continue
        if man["ids_sha256"] != id_hash:
            problems.append(f"{root / m / fp}: its rows belong to another utterance list than the table being "
                            "committed; rewrite the feature set for these utterances")
            continue
        if name:  # a variant's lengths and status are its own, not the table's columns
            continue
        codes = np.load(root / m / fp / "status.npy")
        lengths = _lengths_of(root / m / fp, man)
        table[length_column(m)] = np.where(codes == 0, lengths, 0).astype(np.int64)
        table[status_column(m)] = np.asarray(STATUSES, dtype=object)[codes]
    raise_if(problems, f"cannot commit the feature store {root}")
    for col in label_columns:
        table[col] = pd.to_numeric(table[col]).astype(np.float32 if task == "regression" else np.int64)
    table[ID_COLUMN] = table[ID_COLUMN].astype(str)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    digest = hashlib.sha256(buf.getvalue()).hexdigest()[:16]
    table_file = f"utterances-{digest}.parquet"
    atomic.write_bytes(root / table_file, buf.getvalue())
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "task": task,
        "label_columns": label_columns,
        "classes": list(classes) if classes else None,
        "n": len(table),
        "utterances": table_file,
        "ids_sha256": id_hash,
        "feature_sets": {m: f"{m}/{fp}" for m, fp in sorted(feature_sets.items(), key=lambda kv: MODALITIES.index(kv[0]))},
        "source": source or {},
        **({"variants": {v: {m: f"{m}/{fp}" for m, fp in sets.items()} for v, sets in variants.items()}} if variants else {}),
        "committed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    previous = _committed_table(root)
    atomic.write_json(root / STORE_FILE, meta)  # the commit point
    for warning in missing_train_classes(table, task, label_columns, meta["classes"], str(root)):
        log.warning(warning)
    for old in root.glob("utterances-*.parquet"):
        # the previous table stays one commit longer: a reader may have read the old store.json just now
        if old.name not in (table_file, previous):
            old.unlink(missing_ok=True)
    atomic.remove_stale_temps(root)
    log.info("committed store %s: %d utterances, modalities %s", root, len(table), ", ".join(meta["feature_sets"]))
    return root


def _committed_table(root: Path) -> str | None:
    """The utterance table the current store.json names, if there is a readable one."""
    try:
        return json.loads((root / STORE_FILE).read_text())["utterances"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lengths_of(folder: Path, manifest: dict) -> np.ndarray:
    if manifest["layout"] == "ragged":
        return np.diff(np.load(folder / "offsets.npy"))
    return np.load(folder / "lengths.npy")


@locked
def write_store(root: str | Path, *, dataset: str, task: str | None, utterances: pd.DataFrame,
                features: dict[str, ModalityData], label_columns: Sequence[str] = ("label",),
                classes: Sequence[str] | None = None, source: dict[str, Any] | None = None) -> Path:
    """Write a whole dataset in one call: every modality's feature set, then the commit.

    This is the API importers and in-memory users share. ``utterances`` needs ``utterance_id``,
    ``split`` (train/valid/test) and the label columns; other columns (video_id, clip_id,
    transcript, speaker, ...) are kept.
    """
    root = Path(root)
    table = utterances.reset_index(drop=True)
    problems = validate_utterances(table, task, list(label_columns) if task else [], list(classes) if classes else None, str(root))
    problems += dataset_name_problems(dataset, str(root))
    raise_if(problems, f"cannot write the feature store {root}")
    ids = table[ID_COLUMN].astype(str).tolist()
    feature_sets = {m: write_feature_set(root, m, ids, data) for m, data in features.items()}
    return commit_store(root, dataset=dataset, task=task, utterances=table, feature_sets=feature_sets,
                        label_columns=label_columns, classes=classes, source=source)
