"""``ebmc-export mmsa``: write a feature store as an MMSA pickle so MMSA baselines can run on our features.

A store imported from MMSA comes back as an equal pickle (same keys, dtypes and arrays; non-finite
feature values, replaced by 0 on import, stay 0). Any other regression store is written with
padded arrays cut at each modality's longest sequence, ``*_lengths`` for audio and vision, and
``text_bert`` when the text features carry token ids.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from ebmc.store import MODALITIES, SPLITS, Store, StoreError, open_store
from ebmc.store import atomic
from ebmc.extract.align import ALIGNED
from ebmc.extract.formats import EXTRA_COLUMNS, LENGTH_KEYS, TEXT_BERT_PARTS


def _as(values, key: str, dtypes: dict, shapes: dict):
    """Cast to the dtype/shape the source file had (when the store came from MMSA)."""
    if dtypes.get(key) == "list":
        return np.asarray(values).tolist()
    out = np.asarray(values, dtype=dtypes.get(key)) if key in dtypes else np.asarray(values)
    if key in shapes:
        out = out.reshape(len(out), *shapes[key])
    return out


def _rows(fs, idx: np.ndarray, name: str, T: int) -> np.ndarray:
    """Rows ``idx`` of array ``name`` as ``(n, T, ...)``: padded stores as stored, ragged ones zero-padded."""
    if fs.layout == "padded":
        return np.asarray(fs.array(name)[idx])
    return fs.padded(idx, max_len=T, name=name, dtype=None)[0]


def store_to_mmsa(store: Store) -> dict:
    """The MMSA dict ``{split: {key: array}}`` of a regression store with text, audio and vision.

    A store opened with its "aligned" variant gives MMSA's aligned layout: one step per word in
    every modality, all padded to the same length (the most words of any utterance).
    """
    problems = []
    if store.task != "regression":
        problems.append(f"{store.root}: task is {store.task!r}; MMSA pickles hold regression labels")
    missing = [m for m in MODALITIES if m not in store.modalities]
    if missing:
        problems.append(f"{store.root}: no {', '.join(missing)} features; an MMSA pickle needs text, audio and vision")
    if problems:
        raise StoreError(f"cannot export {store.root} as an MMSA pickle", problems)
    source = store.meta.get("source", {})
    from_mmsa = source.get("format") == "mmsa"
    dtypes, shapes = (source.get("dtypes", {}), source.get("shapes", {})) if from_mmsa else ({}, {})
    table = store.utterances
    common = max(store.features(m).max_length for m in MODALITIES) if store.variant == ALIGNED else None
    out: dict = {}
    for split in SPLITS:
        idx = store.split_indices(split)
        rows = table.iloc[idx]
        part = {"id": _as(rows["utterance_id"].astype(str).to_numpy(object), "id", dtypes, shapes),
                "raw_text": _as(rows["transcript"].astype(str).to_numpy(object) if "transcript" in rows
                                else np.array([""] * len(idx), dtype=object), "raw_text", dtypes, shapes)}
        for m in MODALITIES:
            fs = store.features(m)
            T = common or (int(fs.array("values").shape[1]) if fs.layout == "padded" else fs.max_length)
            part[m] = _as(_rows(fs, idx, "values", T), m, dtypes, shapes)
            key = LENGTH_KEYS.get(m)
            if key and (key in dtypes or not from_mmsa):
                part[key] = _as(fs.lengths[idx], key, dtypes, shapes)
            if m == "text" and fs.has("token_ids"):
                bert = [_rows(fs, idx, name, T) if fs.has(name) else
                        # no stored mask/segments: the mask is the valid length, segments are 0
                        (np.arange(T)[None, :] < fs.lengths[idx][:, None]) * (name == "attention_mask")
                        for name in TEXT_BERT_PARTS]
                part["text_bert"] = _as(np.stack(bert, axis=1).astype(np.int64), "text_bert", dtypes, shapes)
        part["regression_labels"] = _as(rows[store.label_columns[0]].to_numpy(), "regression_labels", dtypes, shapes)
        for key, column in EXTRA_COLUMNS.items():
            if column in rows:
                part[key] = _as(rows[column].to_numpy(), key, dtypes, shapes)
        out[split] = part
    return out


def export_mmsa(root: str | Path, out: str | Path, aligned: bool = False) -> Path:
    """Write the store at ``root`` (its word-aligned sets with ``aligned``) as an MMSA pickle at ``out`` (atomically)."""
    data, out = store_to_mmsa(open_store(root, verify=True, features=ALIGNED if aligned else None)), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # streamed to the file, not through pickle.dumps: a MOSEI pickle is several GB
    with atomic.open_atomic(out) as f:
        pickle.dump(data, f, protocol=4)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="feature store folder, e.g. features/mosi")
    parser.add_argument("--out", type=Path, required=True, help="pickle to write, e.g. mosi_unaligned_50.pkl")
    parser.add_argument("--aligned", action="store_true", help="write the word-aligned feature sets (ebmc-extract "
                        "--align words) in MMSA's aligned layout: one step per word in every modality")


def run(args: argparse.Namespace) -> int:
    path = export_mmsa(args.store, args.out, aligned=args.aligned)
    print(f"wrote {path}")
    return 0
