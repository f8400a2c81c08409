"""Schema version 1 of the feature store: names, constants and validation of the utterance table."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
MODALITIES = ("text", "audio", "vision")
SPLITS = ("train", "valid", "test")
TASKS = ("regression", "classification", "multilabel")
STATUSES = ("ok", "absent", "failed")
STORE_FILE = "store.json"
MANIFEST_FILE = "manifest.json"
ID_COLUMN = "utterance_id"


# A dataset name becomes a folder under --out (store) and under the runs folder: one safe path component.
_DATASET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def dataset_name_problems(name: object, where: str) -> list[str]:
    """Why ``name`` is not a usable dataset name (a single safe path component); [] when it is."""
    if isinstance(name, str) and _DATASET_NAME.fullmatch(name) and ".." not in name and len(name) <= 128:
        return []
    return [f"{where}: dataset name {name!r} is not a single folder name; use letters, digits, '-', '_' and '.' "
            "(not starting with '.' or '-', no '..', at most 128 characters), e.g. --dataset mosi"]


def length_column(modality: str) -> str:
    return f"{modality}_length"


def status_column(modality: str) -> str:
    return f"{modality}_status"


def check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}: use one of {', '.join(MODALITIES)}")


def missing_train_classes(table: pd.DataFrame, task: str | None, label_columns: list[str],
                          classes: list[str] | None, where: str) -> list[str]:
    """Warnings for classes no train utterance has (a model cannot learn them; their test scores
    mislead); [] when every class is seen in train."""
    train = table[table["split"] == "train"] if "split" in table.columns else table.iloc[:0]
    if task == "classification" and classes:
        seen = set(pd.to_numeric(train[label_columns[0]], errors="coerce").dropna().astype(int))
        unseen = [c for k, c in enumerate(classes) if k not in seen]
    elif task == "multilabel":
        unseen = [c for c in label_columns if not (pd.to_numeric(train[c], errors="coerce") == 1).any()]
    else:
        return []
    return [f"{where}: no train utterance has class {c!r}; the model cannot learn it, and its valid/test "
            "scores for it mean nothing: move some of its utterances to train" for c in unseen]


def validate_utterances(table: pd.DataFrame, task: str | None, label_columns: list[str],
                        classes: list[str] | None, where: str) -> list[str]:
    """Every problem of an utterance table, each naming the row or column; [] when valid.

    ``where`` names the input (a file, a split) in each message.
    """
    problems: list[str] = []
    if task is not None and task not in TASKS:
        problems.append(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    for col in [ID_COLUMN, "split", *label_columns]:
        if col not in table.columns:
            problems.append(f"{where}: missing column {col!r}")
    if problems:
        return problems
    ids = table[ID_COLUMN].astype(str)
    if (ids.str.len() == 0).any():
        rows = np.flatnonzero((ids.str.len() == 0).to_numpy())[:10].tolist()
        problems.append(f"{where}: empty utterance_id in rows {rows}")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        names = sorted(set(dup))[:10]
        problems.append(f"{where}: {dup.nunique()} duplicate utterance ids, e.g. {names}: ids must be unique")
    allowed = SPLITS if task is not None else SPLITS + ("none",)
    bad = ~table["split"].isin(allowed)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:10].tolist()
        vals = sorted(set(map(str, table.loc[bad, "split"])))[:5]
        problems.append(f"{where}: split values {vals} in rows {rows} are not one of {', '.join(allowed)}")
    if task is not None:
        for split in SPLITS:
            if not (table["split"] == split).any():
                problems.append(f"{where}: split {split!r} has no utterances; every labelled store needs train, valid and test")
    for col in label_columns:
        values = pd.to_numeric(table[col], errors="coerce")
        nan = values.isna().to_numpy()
        if nan.any():
            rows = np.flatnonzero(nan)[:10].tolist()
            problems.append(f"{where}: label column {col!r} is NaN or not numeric in {int(nan.sum())} rows: "
                            f"rows {rows} (first id {ids.iloc[rows[0]]!r}); fix or drop those rows")
            continue
        inf = np.isinf(values.to_numpy(np.float64))
        if inf.any():
            rows = np.flatnonzero(inf)[:10].tolist()
            problems.append(f"{where}: label column {col!r} is infinite in {int(inf.sum())} rows: rows {rows} "
                            f"(first id {ids.iloc[rows[0]]!r}); give finite labels or drop those rows")
            continue
        if task == "classification":
            k = len(classes or [])
            outside = ~values.isin(range(k)) if k else values < 0
            if outside.any():
                rows = np.flatnonzero(outside.to_numpy())[:10].tolist()
                problems.append(f"{where}: label column {col!r} holds values outside the class indices 0..{k - 1} in rows {rows}")
        elif task == "multilabel":
            outside = ~values.isin([0, 1])
            if outside.any():
                rows = np.flatnonzero(outside.to_numpy())[:10].tolist()
                problems.append(f"{where}: one-vs-rest label column {col!r} must be 0 or 1; rows {rows} are not")
    if task == "classification" and not classes:
        problems.append(f"{where}: a classification store needs its class names (classes=[...])")
    if task == "regression" and len(label_columns) != 1:
        problems.append(f"{where}: a regression store has exactly one label column, got {label_columns}")
    if task == "classification" and len(label_columns) != 1:
        problems.append(f"{where}: a classification store has exactly one label column, got {label_columns}")
    return problems
