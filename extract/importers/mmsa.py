"""``ebmc-import mmsa``: MMSA ``aligned_50.pkl`` / ``unaligned_50.pkl`` (MOSI, MOSEI, SIMS, SIMSv2) into a feature store.

An MMSA pickle is ``{split: {key: array}}`` for the splits train/valid/test with keys ``id``,
``raw_text``, ``text`` ``(N, T, 768)``, ``text_bert`` ``(N, 3, T)`` (token ids, attention mask,
segment ids), ``audio`` ``(N, T_a, d_a)``, ``vision`` ``(N, T_v, d_v)``, ``regression_labels``
``(N,)``, optionally ``audio_lengths``/``vision_lengths`` ``(N,)`` (unaligned files),
``classification_labels`` and SIMS' unimodal ``regression_labels_T/A/V``.

Features are kept in the padded layout, byte for byte except non-finite values (COVAREP's
-inf), which the store replaces by 0 and counts; ``ebmc-export mmsa`` therefore gives back an
equal pickle up to that replacement.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ebmc.store import SPLITS, ModalityData, StoreError, open_store, write_store
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import file_sha256
from ebmc.store.flags import add_dataclass_flags, dataclass_from_args

from ..formats import EXTRA_COLUMNS, ID_SEPARATOR, LENGTH_KEYS, REQUIRED_KEYS, TEXT_BERT_PARTS
from .unpickle import UnpickleLimits, restricted_load


VERSION = 1

# SHA-256 of the files MMSA publishes, by file name. None are recorded yet: add an entry only
# when copied verbatim from MMSA's own release notes, never from memory. Until then --sha256
# verifies a file against a hash the user supplies.
KNOWN_HASHES: dict[str, str] = {}


def _shape(x: Any) -> tuple:
    return tuple(np.shape(x))


def check_mmsa(data: Any, where: str) -> list[str]:
    """Every problem of a loaded MMSA pickle, each naming split, key or sample; [] when valid."""
    if not isinstance(data, dict):
        return [f"{where}: top level is a {type(data).__name__}; an MMSA pickle is a dict of splits {SPLITS}"]
    problems: list[str] = []
    for split in SPLITS:
        if split not in data:
            problems.append(f"{where}: missing split {split!r} (it has {sorted(map(str, data))})")
        elif not isinstance(data[split], dict):
            problems.append(f"{where}[{split}]: is a {type(data[split]).__name__}, expected a dict of arrays")
    splits = [s for s in SPLITS if isinstance(data.get(s), dict)]
    seen_ids: dict[str, str] = {}
    for split in splits:
        part, here = data[split], f"{where}[{split}]"
        for key in REQUIRED_KEYS:
            if key not in part:
                problems.append(f"{here}: missing key {key!r}")
        if "id" not in part:
            continue
        n = len(part["id"])
        for key, value in part.items():
            if _shape(value)[:1] != (n,):
                problems.append(f"{here}[{key!r}]: shape {_shape(value)}, but there are {n} ids; every per-sample array needs N={n} rows")
        for m in ("text", "audio", "vision"):
            if m in part and np.ndim(part[m]) != 3:
                problems.append(f"{here}[{m!r}]: shape {_shape(part[m])}; expected (N, T, d)")
        if "text_bert" in part and "text" in part:
            tb, t = _shape(part["text_bert"]), _shape(part["text"])
            if len(tb) != 3 or tb[1] != 3 or (len(t) == 3 and tb[2] != t[1]):
                problems.append(f"{here}['text_bert']: shape {tb}; expected (N, 3, T) with T = text's {t[1:2]}")
            else:
                bert = np.asarray(part["text_bert"])
                if not np.array_equal(bert, np.round(bert)):
                    problems.append(f"{here}['text_bert']: holds non-integer values; expected token ids, mask and segment ids")
                elif not np.isin(bert[:, 1], (0, 1)).all():
                    problems.append(f"{here}['text_bert']: attention mask (row 1) holds values other than 0/1")
        for m, key in LENGTH_KEYS.items():
            if key in part and m in part and np.ndim(part[m]) == 3:
                lengths, T = np.asarray(part[key]), np.shape(part[m])[1]
                bad = np.flatnonzero((lengths > T) | (lengths < 0))
                if len(bad):
                    ids = [str(part["id"][i]) for i in bad[:5]]
                    problems.append(f"{here}[{key!r}]: {len(bad)} lengths beyond the padded size {T} of {m!r} "
                                    f"(or negative), samples {bad[:5].tolist()} ids {ids}")
        for key in ("regression_labels", *EXTRA_COLUMNS):
            if key in part and _shape(part[key])[:1] == (n,):
                values = np.asarray(part[key], dtype=np.float64).reshape(n, -1)
                bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
                if len(bad):
                    ids = [str(part["id"][i]) for i in bad[:5]]
                    problems.append(f"{here}[{key!r}]: {len(bad)} NaN/inf labels, samples {bad[:5].tolist()} ids {ids}")
        for i, uid in enumerate(map(str, part["id"])):
            if uid in seen_ids:
                problems.append(f"{here}['id']: sample {i} id {uid!r} already used in {seen_ids[uid]}; ids must be unique")
            else:
                seen_ids[uid] = f"{split} sample {i}"
    # one store array per modality: every split must share the feature dim, padded size and dtype
    keys = set().union(*(data[s].keys() for s in splits)) if splits else set()
    for key in sorted(keys):
        present = [s for s in splits if key in data[s]]
        shapes = {s: _shape(data[s][key])[1:] for s in present}
        dtypes = {s: str(np.asarray(data[s][key]).dtype) for s in present}
        if key not in ("id", "raw_text") and len(set(shapes.values())) > 1:
            problems.append(f"{where}[*][{key!r}]: per-sample shape differs across splits: {shapes}")
        if key not in ("id", "raw_text") and len(set(dtypes.values())) > 1:
            problems.append(f"{where}[*][{key!r}]: dtype differs across splits: {dtypes}")
        if 0 < len(present) < len(splits):
            problems.append(f"{where}: key {key!r} is in splits {present} but not in {[s for s in splits if s not in present]}")
    return problems


def _concat(data: dict, key: str) -> np.ndarray:
    return np.concatenate([np.asarray(data[s][key]) for s in SPLITS])


def _dtype_of(value: Any) -> str:
    return "list" if isinstance(value, list) else str(np.asarray(value).dtype)


def to_store_inputs(data: dict, sha256: str) -> tuple[pd.DataFrame, dict[str, ModalityData], dict]:
    """Turn a checked MMSA dict into the utterance table, padded ModalityData and source metadata."""
    ids = [str(i) for i in _concat(data, "id")]
    table = pd.DataFrame({
        "utterance_id": ids,
        "video_id": [i.split(ID_SEPARATOR)[0] for i in ids],
        "clip_id": [i.split(ID_SEPARATOR)[1] if ID_SEPARATOR in i else "" for i in ids],
        "split": np.concatenate([[s] * len(data[s]["id"]) for s in SPLITS]),
        "transcript": [str(t) for t in _concat(data, "raw_text")],
        "label": _concat(data, "regression_labels").reshape(len(ids)).astype(np.float64),
    })
    first = data["train"]
    for key, column in EXTRA_COLUMNS.items():
        if key in first:
            table[column] = _concat(data, key).reshape(len(ids))
    lengths_from: dict[str, str] = {}
    extras: dict[str, np.ndarray] = {}
    if "text_bert" in first:
        bert = _concat(data, "text_bert")
        extras = {name: bert[:, k].astype(np.int64) for k, name in enumerate(TEXT_BERT_PARTS)}
        text_lengths = extras["attention_mask"].sum(axis=1)
        lengths_from["text"] = "text_bert attention mask"
    else:
        text_lengths = np.full(len(ids), np.shape(first["text"])[1])
        lengths_from["text"] = "padded size (no text_bert)"
    lengths = {"text": text_lengths}
    for m, key in LENGTH_KEYS.items():
        T = np.shape(first[m])[1]
        if key in first:
            lengths[m], lengths_from[m] = _concat(data, key), key
        elif "text_bert" in first and T == np.shape(first["text"])[1]:
            lengths[m], lengths_from[m] = text_lengths, "text_bert attention mask (aligned to text)"
        else:
            lengths[m], lengths_from[m] = np.full(len(ids), T), "padded size"
    features = {}
    for m in ("text", "audio", "vision"):
        producer = {"name": "mmsa-import", "version": VERSION, "source_sha256": sha256, "key": m,
                    "lengths_from": lengths_from[m]}
        features[m] = ModalityData(producer=producer, values=_concat(data, m), lengths=lengths[m],
                                   extras=extras if m == "text" else {})
    known = set(REQUIRED_KEYS) | set(EXTRA_COLUMNS) | set(LENGTH_KEYS.values()) | {"text_bert"}
    source = {
        "format": "mmsa",
        "sha256": sha256,
        "lengths_from": lengths_from,
        # what an exact export needs to rebuild the original arrays
        "dtypes": {k: _dtype_of(v) for k, v in first.items() if k in known},
        "shapes": {k: list(np.shape(v)[1:]) for k, v in first.items() if k in known},
        "ignored_keys": sorted(set(first) - known),
    }
    return table, features, source


def import_mmsa(pkl: str | Path, out: str | Path, dataset: str | None = None,
                sha256: str | None = None, limits: UnpickleLimits = UnpickleLimits()) -> dict:
    """Import one MMSA pickle into the store at ``out``; return a summary (counts, replacements).

    ``sha256``: expected hash of the file; without it the file is checked against KNOWN_HASHES
    when its name is listed there.
    """
    pkl, out = Path(pkl), Path(out)
    digest = file_sha256(pkl) if pkl.is_file() else ""
    expected = sha256 or KNOWN_HASHES.get(pkl.name)
    if expected and digest != expected.lower():
        raise StoreError(f"{pkl}: SHA-256 {digest} differs from the expected {expected.lower()}; "
                         "the download is incomplete or another file: download it again")
    data = restricted_load(pkl, limits)
    raise_if(check_mmsa(data, str(pkl)), f"{pkl} is not a usable MMSA pickle")
    table, features, source = to_store_inputs(data, digest)
    source["file"] = pkl.name
    source["sha256_verified"] = bool(expected)
    write_store(out, dataset=dataset or out.name, task="regression", utterances=table, features=features,
                source=source)
    store = open_store(out)
    replaced = {m: store.features(m).manifest["stats"]["nonfinite_replaced"] for m in store.modalities}
    return {"n": store.n, "splits": {s: len(store.split_indices(s)) for s in SPLITS},
            "dims": {m: store.features(m).dim for m in store.modalities}, "nonfinite_replaced": replaced,
            "lengths_from": source["lengths_from"], "ignored_keys": source["ignored_keys"],
            "sha256": digest, "sha256_verified": bool(expected)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pkl", type=Path, help="MMSA pickle, e.g. MOSI/Processed/unaligned_50.pkl")
    parser.add_argument("--out", type=Path, required=True, help="store folder to write, e.g. features/mosi")
    parser.add_argument("--dataset", default=None, help="dataset name recorded in the store (default: the --out folder name)")
    parser.add_argument("--sha256", default=None, metavar="HEX", help="expected SHA-256 of the pickle; the import stops when it differs")
    add_dataclass_flags(parser, "unpickle", UnpickleLimits)


def run(args: argparse.Namespace) -> int:
    summary = import_mmsa(args.pkl, args.out, args.dataset, args.sha256,
                          dataclass_from_args(args, "unpickle", UnpickleLimits()))
    print(f"imported {summary['n']} utterances into {args.out} "
          f"({', '.join(f'{s} {n}' for s, n in summary['splits'].items())})")
    for m, dim in summary["dims"].items():
        print(f"  {m}: dim {dim}, lengths from {summary['lengths_from'][m]}, "
              f"{summary['nonfinite_replaced'][m]} non-finite values (NaN/inf) replaced by 0")
    if summary["ignored_keys"]:
        print(f"  ignored keys: {', '.join(summary['ignored_keys'])}")
    print(f"  sha256 {summary['sha256']} ({'verified' if summary['sha256_verified'] else 'not verified: pass --sha256 to check'})")
    return 0
