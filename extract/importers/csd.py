"""``ebmc-import csd``: CMU-SDK computational sequences (.csd) sliced per labelled segment, split by the standard folds.

The labels sequence gives, per video, the segment intervals ``(S, 2)`` and their labels ``(S, K)``
(column 0 is the sentiment score; MOSEI adds six emotions, kept as extra columns ``csd_<name>``).
Each feature sequence gives, per video, row intervals ``(R, 2)`` and features ``(R, d)``. A
segment takes every row whose interval overlaps it (``row_start < seg_end`` and
``row_end > seg_start``), computed per video with one vectorised comparison; the SDK's
whole-dataset ``align()`` (hours and ~32 GB on MOSEI) is never used. Row intervals are kept as the
extra array ``intervals`` ``(T_i, 2)`` (seconds). A segment without rows has that modality absent.
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm
from mmsdk import mmdatasdk  # optional ([extract]): without it only this subcommand fails to load

from ebmc.store import MODALITIES, SPLITS, ModalityData, StoreError, open_store, write_store
from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import file_sha256

from ..formats import quiet_sdk

log = logging.getLogger(__name__)

VERSION = 1
FOLDS_DIR = importlib.resources.files("ebmc.manifests") / "folds"  # repo folder manifests/folds
STANDARD_FOLDS = {"mosi": "cmu_mosi.json", "mosei": "cmu_mosei.json"}
# column order of the CMU-MOSEI labels sequence (All Labels)
MOSEI_LABEL_NAMES = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")


class CSDFile:
    """One computational sequence opened through mmsdk; entries are read per video, on demand.

    ``entries[video]`` holds the HDF5 datasets ``intervals (R, 2)`` and ``features (R, d)``:
    their shape and dtype are known without reading them, ``read(video)`` loads both.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix != ".csd" or not path.is_file():
            # mmsdk treats any name without ".csd" as a new blank sequence, so check first
            raise StoreError(f"{path}: no such .csd file; give the path of a computational sequence (*.csd)")
        with quiet_sdk() as sdk_log:
            try:
                seq = mmdatasdk.computational_sequence(str(path))
            except Exception as e:  # mmsdk raises bare RuntimeErrors; its log explains them
                raise StoreError(f"{path}: mmsdk cannot read this computational sequence: {e}",
                                 [line for line in sdk_log.getvalue().splitlines() if "Error" in line or "Warning" in line]) from e
        self.path = path
        self._handle = seq.h5handle
        self.entries = {str(vid): (entry["intervals"], entry["features"]) for vid, entry in seq.data.items()}
        self.metadata = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in seq.metadata.items()}

    def read(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        intervals, features = self.entries[video]
        return np.asarray(intervals[()]), np.asarray(features[()])

    def close(self) -> None:
        self._handle.close()


def load_folds(spec: str) -> dict[str, str]:
    """``video id -> split`` from a standard fold name (mosi, mosei) or a JSON file of the same form."""
    path = FOLDS_DIR / STANDARD_FOLDS[spec] if spec in STANDARD_FOLDS else Path(spec)
    if not path.is_file():
        raise StoreError(f"folds {spec!r}: no such file {path}; use mosi, mosei or a JSON file "
                         '{"train": [video ids], "valid": [...], "test": [...]}')
    folds = json.loads(path.read_text())
    problems = [f"{path}: missing fold {s!r}" for s in SPLITS if s not in folds]
    by_video: dict[str, str] = {}
    for split in SPLITS:
        for vid in folds.get(split, []):
            if vid in by_video:
                problems.append(f"{path}: video {vid!r} is in both {by_video[vid]} and {split}")
            by_video[str(vid)] = split
    raise_if(problems, f"cannot use the folds {spec!r}")
    return by_video


def label_names(metadata: dict[str, str], k: int) -> list[str]:
    """Names of the labels sequence's ``k`` columns: its 'dimension names' metadata when usable,
    the MOSEI order for 7 columns, else dim0, dim1, ..."""
    try:
        names = json.loads(metadata.get("dimension names", ""))
        if isinstance(names, list) and len(names) == k:
            return [str(n) for n in names]
    except ValueError:
        pass
    return list(MOSEI_LABEL_NAMES) if k == len(MOSEI_LABEL_NAMES) else [f"dim{i}" for i in range(k)]


def slice_segments(segments: np.ndarray, intervals: np.ndarray) -> list[np.ndarray]:
    """Row indices of ``intervals (R, 2)`` overlapping each of ``segments (S, 2)``: one vectorised
    ``(S, R)`` comparison per video."""
    hit = (intervals[None, :, 0] < segments[:, None, 1]) & (intervals[None, :, 1] > segments[:, None, 0])
    return [np.flatnonzero(row) for row in hit]


def _check_sequence(name: str, csd: CSDFile, problems: list[str]) -> None:
    dims: dict[tuple, list[str]] = {}
    for vid, (iv, feats) in csd.entries.items():
        if feats.dtype.kind not in "fiub":
            problems.append(f"{csd.path} ({name}): video {vid!r} has non-numeric features ({feats.dtype}); "
                            "import an embedding sequence (e.g. glove_vectors), not words")
            return
        if len(iv.shape) != 2 or iv.shape[1] != 2 or iv.shape[0] != feats.shape[0]:
            problems.append(f"{csd.path} ({name}): video {vid!r} has intervals {iv.shape} for features "
                            f"{feats.shape}; expected (R, 2) and (R, d)")
        dims.setdefault(feats.shape[1:], []).append(vid)
    if len(dims) > 1:
        detail = "; ".join(f"{d} in {v[:3]}" for d, v in dims.items())
        problems.append(f"{csd.path} ({name}): feature shape differs across videos: {detail}")


def import_csd(labels: str | Path, features: dict[str, str | Path], folds: str, out: str | Path,
               dataset: str | None = None) -> dict:
    """Import labelled segments and their features into the store at ``out``; return a summary."""
    out, labels = Path(out), Path(labels)
    problems = [f"--features {m}: unknown modality; use {', '.join(MODALITIES)}" for m in features if m not in MODALITIES]
    raise_if(problems, "cannot import computational sequences")
    split_of = load_folds(folds)
    label_file = CSDFile(labels)
    files = {m: CSDFile(p) for m, p in features.items()}
    try:
        return _import(label_file, files, split_of, folds, out, dataset)
    finally:
        for f in [label_file, *files.values()]:
            f.close()


def _import(label_file: CSDFile, files: dict[str, CSDFile], split_of: dict[str, str], folds: str,
            out: Path, dataset: str | None) -> dict:
    labels, problems = label_file.path, []
    _check_sequence("labels", label_file, problems)
    label_data = {vid: label_file.read(vid) for vid in label_file.entries} if not problems else {}
    for m, f in files.items():
        _check_sequence(m, f, problems)
    outside = sorted(v for v in label_data if v not in split_of)
    if outside:
        problems.append(f"{labels}: {len(outside)} labelled videos are in no fold of {folds!r}, e.g. {outside[:5]}; "
                        "use the dataset's folds or a folds JSON that lists them")
    for vid, (_, y) in label_data.items():
        bad = np.flatnonzero(~np.isfinite(np.asarray(y, dtype=np.float64)).all(axis=1))
        if len(bad):
            problems.append(f"{labels}: video {vid!r} has NaN/inf labels in segments {bad[:5].tolist()}")
    raise_if(problems, "cannot import computational sequences")
    k = next(iter(label_data.values()))[1].shape[1]
    names = label_names(label_file.metadata, k)
    rows, label_rows = [], []
    per_modality = {m: ([], []) for m in files}  # sequences, intervals
    missing_videos = {m: 0 for m in files}
    order = sorted(label_data, key=lambda v: (SPLITS.index(split_of[v]), v))
    for vid in tqdm(order, desc="slicing videos", unit="video", disable=len(order) < 100):
        segments, y = label_data[vid]
        segments = segments.astype(np.float64)
        for s, (start, end) in enumerate(segments):
            rows.append({"utterance_id": f"{vid}[{s}]", "video_id": vid, "clip_id": str(s),
                         "split": split_of[vid], "start": float(start), "end": float(end)})
        label_rows.append(np.asarray(y, dtype=np.float64))
        for m, f in files.items():
            seqs_m, ivs_m = per_modality[m]
            if vid not in f.entries:
                missing_videos[m] += 1
                seqs_m += [None] * len(segments)
                ivs_m += [None] * len(segments)
                continue
            iv, feats = f.read(vid)
            for idx in slice_segments(segments, iv.astype(np.float64)):
                seqs_m.append(feats[idx] if len(idx) else None)
                ivs_m.append(iv[idx].astype(np.float64) if len(idx) else None)
    table = pd.DataFrame(rows)
    y = np.concatenate(label_rows)
    table["label"] = y[:, 0]
    for c, name in enumerate(names[1:], start=1):
        table[f"csd_{name}"] = y[:, c]
    labels_sha = file_sha256(labels)
    data = {}
    for m, f in files.items():
        producer = {"name": "csd-import", "version": VERSION, "source_sha256": file_sha256(f.path),
                    "labels_sha256": labels_sha, "key": m}
        sequences, intervals = per_modality[m]
        data[m] = ModalityData(producer=producer, sequences=sequences, extras={"intervals": intervals})
    write_store(out, dataset=dataset or out.name, task="regression", utterances=table, features=data,
                source={"format": "csd", "labels_file": labels.name, "labels_sha256": labels_sha,
                        "label_names": names, "folds": folds if folds in STANDARD_FOLDS else Path(folds).name})
    store = open_store(out)
    return {"n": store.n, "splits": {s: len(store.split_indices(s)) for s in SPLITS},
            "dims": {m: store.features(m).dim for m in store.modalities},
            "absent": {m: int((~store.features(m).present).sum()) for m in store.modalities},
            "videos_missing": missing_videos, "label_names": names,
            "nonfinite_replaced": {m: store.features(m).manifest["stats"]["nonfinite_replaced"] for m in store.modalities}}


def _feature_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected MODALITY=FILE.csd (e.g. audio=CMU_MOSI_COVAREP.csd), got {text!r}")
    return name, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, required=True, help="labels sequence, e.g. CMU_MOSI_Opinion_Labels.csd")
    parser.add_argument("--features", type=_feature_arg, nargs="+", required=True, metavar="MODALITY=FILE.csd",
                        help="feature sequences by modality (text, audio, vision)")
    parser.add_argument("--folds", required=True, help="standard folds (mosi, mosei; manifests/folds/) or a folds JSON file")
    parser.add_argument("--out", type=Path, required=True, help="store folder to write, e.g. features/mosi-csd")
    parser.add_argument("--dataset", default=None, help="dataset name recorded in the store (default: the --out folder name)")


def run(args: argparse.Namespace) -> int:
    names = [m for m, _ in args.features]
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise StoreError(f"--features names {', '.join(twice)} more than once; give one file per modality")
    s = import_csd(args.labels, dict(args.features), args.folds, args.out, args.dataset)
    print(f"imported {s['n']} segments into {args.out} ({', '.join(f'{k} {v}' for k, v in s['splits'].items())}); "
          f"labels {', '.join(s['label_names'])}")
    for m, dim in s["dims"].items():
        print(f"  {m}: dim {dim}, absent in {s['absent'][m]} segments ({s['videos_missing'][m]} videos missing from its file), "
              f"{s['nonfinite_replaced'][m]} non-finite values (NaN/inf) replaced by 0")
    return 0
