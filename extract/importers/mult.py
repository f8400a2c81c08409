"""``ebmc-import mult``: MulT pickles (``mosi_data.pkl``, ``mosei_senti_data.pkl``, ``iemocap_data.pkl``) into a store.

A MulT pickle is ``{split: {key: array}}`` for train/valid/test with word-aligned ``text``,
``audio``, ``vision`` ``(N, T, d)``, ``labels`` and ``id``. Labels are ``(N, 1, 1)`` sentiment
scores (regression) or, for IEMOCAP, ``(N, 4, 2)``: four one-vs-rest emotions (neutral, happy,
sad, angry), each one-hot over (no, yes) -> multilabel columns ``label_neutral`` ...
MulT pickles carry no lengths and MulT attends over all ``T`` steps, so every length is ``T``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ebmc.store import MODALITIES, SPLITS, ModalityData, open_store, write_store
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import file_sha256
from ebmc.store.flags import add_dataclass_flags, dataclass_from_args

from ..formats import video_of
from .unpickle import UnpickleLimits, restricted_load

VERSION = 1
REQUIRED_KEYS = ("text", "audio", "vision", "labels", "id")
IEMOCAP_EMOTIONS = ("neutral", "happy", "sad", "angry")


def _ids(raw: np.ndarray) -> tuple[list[str], list[str]]:
    """Utterance and video ids from MulT's ``id``: ``(N,)`` strings, or ``(N, k)`` rows whose first
    entry is the video id (the rest, e.g. segment bounds, completes the utterance id)."""
    def text(v: bytes | str) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)
    raw = np.asarray(raw)
    if raw.ndim == 1:
        ids = [text(v) for v in raw]
        return ids, [video_of(i) for i in ids]
    rows = [[text(v) for v in row] for row in raw.reshape(len(raw), -1)]
    return ["_".join(r) for r in rows], [r[0] for r in rows]


def _label_problems(labels: np.ndarray, here: str) -> list[str]:
    problems = []
    bad = np.flatnonzero(~np.isfinite(labels.reshape(len(labels), -1)).all(axis=1))
    if len(bad):
        problems.append(f"{here}['labels']: NaN/inf labels in {len(bad)} samples, e.g. {bad[:5].tolist()}")
    if labels.shape[1:] == (4, 2):
        one_hot = (labels.sum(-1) == 1).all(-1) & np.isin(labels, (0, 1)).all((1, 2))
        if not one_hot.all():
            rows = np.flatnonzero(~one_hot)
            problems.append(f"{here}['labels']: IEMOCAP labels must be one-hot (no, yes) per emotion; samples {rows[:5].tolist()} are not")
    elif labels.shape[1:] not in ((1, 1), (1,), ()):
        problems.append(f"{here}['labels']: shape {labels.shape}; expected (N, 1, 1) sentiment or (N, 4, 2) IEMOCAP emotions")
    return problems


def check_mult(data: Any, where: str) -> list[str]:
    """Every problem of a loaded MulT pickle, each naming split, key or sample; [] when valid."""
    if not isinstance(data, dict):
        return [f"{where}: top level is a {type(data).__name__}; a MulT pickle is a dict of splits {SPLITS}"]
    problems = [f"{where}: missing split {s!r} (it has {sorted(map(str, data))})" for s in SPLITS if s not in data]
    splits = [s for s in SPLITS if isinstance(data.get(s), dict)]
    label_shapes, seen = {}, {}
    for split in splits:
        part, here = data[split], f"{where}[{split}]"
        problems += [f"{here}: missing key {k!r}" for k in REQUIRED_KEYS if k not in part]
        if "id" not in part:
            continue
        n = len(part["id"])
        for key in REQUIRED_KEYS[:-1]:
            if key in part and np.shape(part[key])[:1] != (n,):
                problems.append(f"{here}[{key!r}]: shape {np.shape(part[key])}, but there are {n} ids")
        for m in MODALITIES:
            if m in part and np.ndim(part[m]) != 3:
                problems.append(f"{here}[{m!r}]: shape {np.shape(part[m])}; expected (N, T, d)")
        if "labels" in part:
            problems += _label_problems(np.asarray(part["labels"], dtype=np.float64), here)
            label_shapes[split] = np.shape(part["labels"])[1:]
        for i, uid in enumerate(_ids(part["id"])[0]):
            if uid in seen:
                problems.append(f"{here}['id']: sample {i} id {uid!r} already used in {seen[uid]}; ids must be unique")
            else:
                seen[uid] = f"{split} sample {i}"
    if len(set(label_shapes.values())) > 1:
        problems.append(f"{where}[*]['labels']: shape differs across splits: {label_shapes}")
    for m in MODALITIES:
        shapes = {s: np.shape(data[s][m])[1:] for s in splits if m in data[s]}
        if len(set(shapes.values())) > 1:
            problems.append(f"{where}[*][{m!r}]: per-sample shape (T, d) differs across splits: {shapes}")
    return problems


def import_mult(pkl: str | Path, out: str | Path, dataset: str | None = None,
                limits: UnpickleLimits = UnpickleLimits()) -> dict:
    """Import one MulT pickle into the store at ``out``; return a summary."""
    pkl, out = Path(pkl), Path(out)
    data = restricted_load(pkl, limits)
    raise_if(check_mult(data, str(pkl)), f"{pkl} is not a usable MulT pickle")
    digest = file_sha256(pkl)
    ids, videos = [], []
    for s in SPLITS:
        a, b = _ids(data[s]["id"])
        ids += a
        videos += b
    table = pd.DataFrame({"utterance_id": ids, "video_id": videos,
                          "split": np.concatenate([[s] * len(data[s]["id"]) for s in SPLITS])})
    labels = np.concatenate([np.asarray(data[s]["labels"], dtype=np.float64) for s in SPLITS])
    if labels.shape[1:] == (4, 2):
        task, columns = "multilabel", [f"label_{e}" for e in IEMOCAP_EMOTIONS]
        for k, col in enumerate(columns):
            table[col] = labels[:, k, 1].astype(np.int64)
    else:
        task, columns = "regression", ["label"]
        table["label"] = labels.reshape(len(labels))
    features = {}
    for m in MODALITIES:
        values = np.concatenate([np.asarray(data[s][m]) for s in SPLITS])
        producer = {"name": "mult-import", "version": VERSION, "source_sha256": digest, "key": m}
        features[m] = ModalityData(producer=producer, values=values, lengths=np.full(len(values), values.shape[1]))
    write_store(out, dataset=dataset or out.name, task=task, utterances=table, features=features,
                label_columns=columns, source={"format": "mult", "file": pkl.name, "sha256": digest})
    store = open_store(out)
    return {"n": store.n, "task": task, "label_columns": columns,
            "splits": {s: len(store.split_indices(s)) for s in SPLITS},
            "dims": {m: store.features(m).dim for m in store.modalities},
            "nonfinite_replaced": {m: store.features(m).manifest["stats"]["nonfinite_replaced"] for m in store.modalities}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pkl", type=Path, help="MulT pickle, e.g. iemocap_data.pkl")
    parser.add_argument("--out", type=Path, required=True, help="store folder to write, e.g. features/iemocap")
    parser.add_argument("--dataset", default=None, help="dataset name recorded in the store (default: the --out folder name)")
    add_dataclass_flags(parser, "unpickle", UnpickleLimits)


def run(args: argparse.Namespace) -> int:
    s = import_mult(args.pkl, args.out, args.dataset, dataclass_from_args(args, "unpickle", UnpickleLimits()))
    print(f"imported {s['n']} utterances into {args.out} ({s['task']}: {', '.join(s['label_columns'])}; "
          f"{', '.join(f'{k} {v}' for k, v in s['splits'].items())})")
    for m, dim in s["dims"].items():
        print(f"  {m}: dim {dim}, {s['nonfinite_replaced'][m]} non-finite values (NaN/inf) replaced by 0")
    return 0
