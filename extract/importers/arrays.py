"""`ebmc-import arrays`: per-utterance ``.npy``/``.npz`` features listed in a CSV manifest -> a feature store.

The manifest has one row per utterance: ``utterance_id``, ``split`` (unless ``--split-by
speaker``), the label (``label``, or several ``label_<name>`` one-vs-rest columns), optional
``video_id``, ``clip_id``, ``transcript``, ``speaker`` and any other columns (kept), and one column
per modality (``text``, ``audio``, ``vision``, any subset). A modality cell is a path relative to
the manifest's folder: a ``.npy`` of shape ``(T, d)`` or ``(d,)`` (a vector is a sequence of length
1), or a ``.npz`` holding the array under the key ``<utterance_id>/<modality>``; an empty cell
means the modality is absent for that utterance. See ``docs/bring-your-own-features.md``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ebmc.store import MODALITIES, SPLITS, TASKS, ModalityData, StoreError, open_store, write_store
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import file_sha256

from .speaker_split import SpeakerSplitConfig, speaker_split

log = logging.getLogger(__name__)

IMPORTER_VERSION = 1
LABEL_PREFIX = "label_"
SPLIT_BY = ("speaker",)


def _row(i: int) -> int:
    """Spreadsheet row number of data row ``i``: the header is row 1."""
    return i + 2


def _at(where: str, i: int, uid: str) -> str:
    return f"{where} row {_row(i)} (utterance {uid!r})"


def _read_manifest(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise StoreError(f"manifest {path} not found: pass the CSV that lists your utterances (--manifest)")
    try:
        # every cell as text: empty cells stay "" (absent modality), labels like "NA" stay class names
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise StoreError(f"manifest {path} is not a readable CSV: {e}; save it as UTF-8 CSV with a header row") from e
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda col: col.str.strip())


def _check_columns(table: pd.DataFrame, split_by: str | None, where: str) -> list[str]:
    problems = []
    required = ["utterance_id"] + (["split"] if split_by is None else ["speaker"])
    for col in required:
        if col not in table.columns:
            why = "" if col != "speaker" else " (needed by --split-by speaker)"
            problems.append(f"{where}: missing column {col!r}{why}")
    label_cols = [c for c in table.columns if c.startswith(LABEL_PREFIX)]
    if "label" in table.columns and label_cols:
        problems.append(f"{where}: has both 'label' and {label_cols}: use one 'label' column (regression or "
                        "classification) or only label_<name> columns (one-vs-rest multilabel)")
    if "label" not in table.columns and not label_cols:
        problems.append(f"{where}: no label column: add 'label' (a number or a class name per row) "
                        "or label_<name> columns holding 0/1")
    if not any(m in table.columns for m in MODALITIES):
        problems.append(f"{where}: no modality column: add at least one of {', '.join(MODALITIES)} holding "
                        "paths to .npy/.npz files")
    for m in MODALITIES:
        if m in table.columns and (table[m] == "").all():
            problems.append(f"{where}: column {m!r} is empty in every row; drop the column if the dataset has no {m}")
    return problems


def _check_ids(ids: pd.Series, where: str) -> list[str]:
    problems = []
    empty = [_row(i) for i in np.flatnonzero((ids == "").to_numpy())]
    if empty:
        problems.append(f"{where}: empty utterance_id in rows {empty[:10]}; every row needs a unique id")
    rows_of = collections.defaultdict(list)
    for i, uid in enumerate(ids):
        if uid:
            rows_of[uid].append(_row(i))
    for uid, rows in rows_of.items():
        if len(rows) > 1:
            problems.append(f"{where}: utterance id {uid!r} appears in rows {rows}; ids must be unique")
    return problems


def _splits(table: pd.DataFrame, split_by: str | None, config: SpeakerSplitConfig,
            where: str) -> tuple[np.ndarray | None, list[str]]:
    if split_by is None:
        split = table["split"].to_numpy(dtype=object)
        bad = [i for i, s in enumerate(split) if s not in SPLITS]
        if bad:
            values = sorted({split[i] for i in bad})[:5]
            return None, [f"{where}: split values {values} in rows {[_row(i) for i in bad[:10]]} are not one of "
                          f"{', '.join(SPLITS)}; fix them or build a split with --split-by speaker"]
        return split, []
    if split_by not in SPLIT_BY:
        return None, [f"--split-by {split_by!r} is not supported; use one of {', '.join(SPLIT_BY)}"]
    if "split" in table.columns:
        log.warning("%s: --split-by %s replaces the manifest's 'split' column", where, split_by)
    try:
        return speaker_split(table["speaker"].tolist(), config, where, [_row(i) for i in range(len(table))]), []
    except StoreError as e:
        return None, e.problems


def _split_problems(split: np.ndarray, where: str) -> list[str]:
    return [f"{where}: split {s!r} has no rows; every store needs train, valid and test rows"
            for s in SPLITS if not (split == s).any()]


def _integers(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _labels(table: pd.DataFrame, task: str | None, where: str) -> tuple[str | None, pd.DataFrame, list[str] | None, list[str]]:
    """Task, parsed label columns, class names (classification) and problems."""
    ids = table["utterance_id"].tolist()
    label_cols = [c for c in table.columns if c.startswith(LABEL_PREFIX)]
    if label_cols:
        return _multilabel(table, label_cols, task, where)
    cells = table["label"]
    numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
    empty = (cells == "").to_numpy()
    parsed = np.isfinite(numbers)
    problems = [f"{_at(where, i, ids[i])}: empty label" for i in np.flatnonzero(empty)]
    text = np.flatnonzero(~parsed & ~empty)
    if task is None:
        if len(text) and parsed.any():
            problems.append(f"{where}: labels mix numbers (e.g. rows {[_row(i) for i in np.flatnonzero(parsed)[:5]]}) "
                            f"and text (e.g. rows {[_row(i) for i in text[:5]]}: {cells.iloc[text[0]]!r}); pass "
                            "--task regression (text labels are then errors) or --task classification "
                            "(every distinct value is a class)")
        elif len(text):
            task = "classification"
        elif parsed.any() and _integers(numbers[parsed]):
            problems.append(f"{where}: every label is an integer, which fits regression (e.g. a 1-5 rating) and "
                            "classification (class ids): pass --task regression or --task classification")
        elif parsed.any():
            task = "regression"
        if task is not None:
            log.info("%s: inferred task %s from the labels", where, task)
    if task == "multilabel":
        problems.append(f"{where}: --task multilabel needs one-vs-rest columns label_<name> holding 0/1, "
                        "not one 'label' column")
    if task == "regression":
        problems += [f"{_at(where, i, ids[i])}: label {cells.iloc[i]!r} is not a finite number" for i in text]
        return task, pd.DataFrame({"label": numbers.astype(np.float32)}), None, problems
    if task != "classification" or problems:
        return task, pd.DataFrame({"label": np.zeros(len(table), np.int64)}), None, problems
    if not len(text) and _integers(numbers):
        # integer class ids: the vocabulary is the distinct integers in numeric order, named by value
        values = numbers.astype(np.int64)
        vocab = sorted(set(values.tolist()))
        classes = [str(v) for v in vocab]
    else:
        values = cells.to_numpy(dtype=object)
        vocab = sorted(set(values.tolist()))
        classes = list(vocab)
    index = {v: k for k, v in enumerate(vocab)}
    return task, pd.DataFrame({"label": np.array([index[v] for v in values], dtype=np.int64)}), classes, problems


def _multilabel(table: pd.DataFrame, label_cols: list[str], task: str | None,
                where: str) -> tuple[str | None, pd.DataFrame, None, list[str]]:
    ids = table["utterance_id"].tolist()
    problems = []
    if task not in (None, "multilabel"):
        problems.append(f"{where}: columns {label_cols} make a one-vs-rest multilabel task, not {task}; for "
                        "single-label classification use one 'label' column holding class names")
    out = {}
    for col in label_cols:
        if col == LABEL_PREFIX:
            problems.append(f"{where}: column {col!r} has no class name; name it label_<name>")
        numbers = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isin(numbers, [0.0, 1.0]))
        problems += [f"{_at(where, i, ids[i])}: {col} is {table[col].iloc[i]!r}, not 0 or 1" for i in bad]
        out[col] = np.nan_to_num(numbers).astype(np.int64)
    return "multilabel", pd.DataFrame(out), None, problems


def _class_problems(task: str, labels: pd.DataFrame, classes: list[str] | None, split: np.ndarray,
                    where: str) -> list[str]:
    """Classes (or one-vs-rest positives) that never occur in train: the model cannot learn them."""
    train = split == "train"
    problems = []
    if task == "classification":
        y = labels["label"].to_numpy()
        for k, name in enumerate(classes or []):
            if not (y[train] == k).any():
                rows = [_row(i) for i in np.flatnonzero(y == k)[:5]]
                problems.append(f"{where}: class {name!r} has no train rows (it occurs in rows {rows}); "
                                "move some of its utterances to train or drop the class")
    elif task == "multilabel":
        for col in labels.columns:
            if not (labels[col].to_numpy()[train] == 1).any():
                problems.append(f"{where}: {col} is never 1 in train; one-vs-rest needs positives in train")
    return problems


def _escapes(cell: str) -> bool:
    norm = os.path.normpath(cell)
    return os.path.isabs(cell) or norm == os.pardir or norm.startswith(os.pardir + os.sep)


def _load_modality(table: pd.DataFrame, modality: str, folder: Path, where: str,
                   npz: dict[Path, Any], stack: contextlib.ExitStack) -> tuple[ModalityData | None, list[str]]:
    """One modality's arrays ``(T_i, d)`` (``None`` where absent), checked, with a content hash."""
    ids = table["utterance_id"].tolist()
    problems: list[str] = []
    seqs: list[np.ndarray | None] = []
    nonfinite: list[tuple[int, int]] = []
    cells = tqdm(table[modality], desc=f"{modality} arrays", unit="utt", disable=None)
    for i, (uid, cell) in enumerate(zip(ids, cells)):
        seqs.append(None)
        if not cell:
            continue
        at = _at(where, i, uid)
        if _escapes(cell):
            problems.append(f"{at}: {modality} path {cell!r} leaves the manifest's folder {folder}; "
                            "put the file under that folder and give a relative path")
            continue
        path = folder / cell
        if path.suffix not in (".npy", ".npz"):
            problems.append(f"{at}: {modality} file {cell!r} is neither .npy nor .npz")
            continue
        if not path.is_file():
            problems.append(f"{at}: {modality} file {cell!r} not found (looked for {path})")
            continue
        try:
            if path.suffix == ".npy":
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                if path not in npz:
                    npz[path] = stack.enter_context(np.load(path, allow_pickle=False))
                key = f"{uid}/{modality}"
                if key not in npz[path].files:
                    problems.append(f"{at}: {cell!r} has no array {key!r}; name each array <utterance_id>/<modality>")
                    continue
                arr = npz[path][key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            problems.append(f"{at}: cannot read {modality} file {cell!r}: {e}")
            continue
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
            problems.append(f"{at}: {modality} array has dtype {arr.dtype}; it must hold real numbers")
            continue
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)  # an utterance-level vector is a sequence of one step
        if arr.ndim != 2 or 0 in arr.shape:
            problems.append(f"{at}: {modality} array has shape {arr.shape}; expected (T, d) or (d,) with T, d > 0 "
                            "(leave the cell empty to mark the modality absent)")
            continue
        seqs[i] = np.asarray(arr, dtype=np.float32)
        n_bad = int((~np.isfinite(seqs[i])).sum())
        if n_bad:
            nonfinite.append((i, n_bad))
    dims = collections.Counter(s.shape[1] for s in seqs if s is not None)
    if len(dims) > 1:
        common, count = dims.most_common(1)[0]
        problems += [f"{_at(where, i, ids[i])}: {modality} has dimension d={s.shape[1]}, but {count} other "
                     f"{modality} arrays have d={common}; every {modality} array needs the same d"
                     for i, s in enumerate(seqs) if s is not None and s.shape[1] != common]
    if nonfinite:
        log.warning("%s: %s: %d non-finite values (NaN/inf) in %d rows, e.g. %s; they are replaced by 0",
                    where, modality, sum(n for _, n in nonfinite), len(nonfinite),
                    ", ".join(f"row {_row(i)} ({n})" for i, n in nonfinite[:10]))
    if problems:
        return None, problems
    digest = hashlib.sha256()
    for s in seqs:
        # exactly the content: absence markers, shapes and float32 values in row order
        digest.update(b"-" if s is None else repr(s.shape).encode() + s.tobytes())
    producer = {"name": "arrays", "version": IMPORTER_VERSION, "content_sha256": digest.hexdigest()}
    return ModalityData(producer=producer, sequences=seqs), []


def import_arrays(manifest_path: str | Path, out: str | Path, task: str | None = None,
                  split_by: str | None = None, split: SpeakerSplitConfig = SpeakerSplitConfig(),
                  dataset: str | None = None) -> Path:
    """Import the arrays a CSV manifest lists into a committed feature store at ``out``; return ``out``.

    ``task`` is "regression", "classification" or "multilabel", or None to infer it from the
    labels (an error asks for it when the labels fit more than one). ``split_by="speaker"``
    replaces the manifest's splits by a speaker-independent split drawn with ``split``.
    ``dataset`` defaults to the name of ``out``. Every problem of the manifest and its files is
    raised at once as a StoreError naming manifest rows (the header is row 1).
    """
    manifest_path = Path(manifest_path)
    out = Path(out)
    if task is not None and task not in TASKS:
        raise StoreError(f"--task {task!r} is not one of {', '.join(TASKS)}")
    table = _read_manifest(manifest_path)
    where = str(manifest_path)
    problems = _check_columns(table, split_by, where)
    raise_if(problems, f"cannot import {manifest_path}")
    problems += _check_ids(table["utterance_id"], where)
    splits, split_errors = _splits(table, split_by, split, where)
    problems += split_errors
    task, labels, classes, label_errors = _labels(table, task, where)
    problems += label_errors
    if splits is not None:
        problems += _split_problems(splits, where)
        if not label_errors and not split_errors:
            problems += _class_problems(task, labels, classes, splits, where)
    modalities = [m for m in MODALITIES if m in table.columns]
    features: dict[str, ModalityData] = {}
    with contextlib.ExitStack() as stack:
        npz: dict[Path, Any] = {}
        for m in modalities:
            data, errors = _load_modality(table, m, manifest_path.parent, where, npz, stack)
            problems += errors
            if data is not None:
                features[m] = data
    nothing = (table[modalities] == "").all(axis=1).to_numpy()
    problems += [f"{_at(where, i, table['utterance_id'].iloc[i])}: no modality given; fill at least one "
                 f"of {', '.join(modalities)} or drop the row" for i in np.flatnonzero(nothing)]
    raise_if(problems, f"cannot import {manifest_path}")
    kept = [c for c in table.columns if c not in MODALITIES and c not in labels.columns and c != "split"]
    utterances = pd.concat([table[kept].reset_index(drop=True), labels], axis=1)
    utterances.insert(1, "split", splits)
    split_source: dict[str, Any] = ({"from": "manifest"} if split_by is None else
                                    {"from": split_by, "valid": split.valid, "test": split.test, "seed": split.seed})
    source = {"importer": "arrays", "version": IMPORTER_VERSION, "manifest": manifest_path.name,
              "manifest_sha256": file_sha256(manifest_path), "split": split_source}
    return write_store(out, dataset=dataset or out.name, task=task, utterances=utterances, features=features,
                       label_columns=list(labels.columns), classes=classes, source=source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ebmc-import arrays``."""
    parser.add_argument("--manifest", required=True, type=Path,
                        help="CSV with one row per utterance (see docs/bring-your-own-features.md)")
    parser.add_argument("--out", required=True, type=Path, help="feature store folder to write, e.g. features/mydata")
    parser.add_argument("--task", choices=TASKS, default=None,
                        help="label type; inferred from the labels when unambiguous")
    parser.add_argument("--dataset", default=None, help="dataset name stored in the store (default: the --out folder name)")
    parser.add_argument("--split-by", choices=SPLIT_BY, default=None,
                        help="build a speaker-independent split instead of the manifest's split column")
    defaults = SpeakerSplitConfig()
    parser.add_argument("--valid", type=int, default=defaults.valid, help="speakers held out for valid (--split-by speaker)")
    parser.add_argument("--test", type=int, default=defaults.test, help="speakers held out for test (--split-by speaker)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the speaker draw (--split-by speaker)")


def run(args: argparse.Namespace) -> int:
    """Run ``ebmc-import arrays`` and print a summary; a StoreError propagates to ``cli.dispatch``."""
    root = import_arrays(args.manifest, args.out, task=args.task, split_by=args.split_by,
                         split=SpeakerSplitConfig(valid=args.valid, test=args.test, seed=args.seed),
                         dataset=args.dataset)
    store = open_store(root)
    counts = store.utterances["split"].value_counts()
    print(f"imported {store.n} utterances into {root} (dataset {store.dataset!r}, task {store.task}, "
          + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS) + ")")
    if store.classes:
        print(f"classes (label index order): {store.classes}")
    for m in store.modalities:
        fs = store.features(m)
        print(f"  {m}: d={fs.dim}, present in {int(fs.present.sum())}/{fs.n} utterances, "
              f"{fs.manifest['stats']['nonfinite_replaced']} non-finite values replaced by 0")
    return 0
