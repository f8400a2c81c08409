"""``ebmc-export csd``: write a feature store as CMU-SDK computational sequences (one .csd per modality + labels).

Output folder: ``labels.csd`` (per video: segment intervals ``(S, 2)``, label columns ``(S, K)``),
``<modality>.csd`` (per video: row intervals ``(R, 2)``, features ``(R, d)``) and ``folds.json``
(video ids per split, the form ``ebmc-import csd --folds`` reads). Every metadata key mmsdk
requires is filled, so ``deploy()`` never prompts.

Times: a store imported from .csd keeps its segment (``start``/``end``) and row intervals and
they are written back. Otherwise each video gets a synthetic timeline: its segments are laid end
to end (one time unit per step of the longest modality, one unit of gap between segments) and a
modality's rows evenly divide their segment, so re-importing slices out exactly the same rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from mmsdk import mmdatasdk

from ebmc.store import SPLITS, Store, open_store
from ebmc.store import atomic
from ebmc.store.errors import raise_if
from ebmc.extract.formats import quiet_sdk, video_of


def _video_ids(table: pd.DataFrame) -> list[str]:
    if "video_id" in table:
        return table["video_id"].astype(str).tolist()
    return [video_of(u) for u in table["utterance_id"].astype(str)]


def segment_times(store: Store, videos: list[str]) -> np.ndarray:
    """``(N, 2)`` segment intervals: the stored ``start``/``end``, or a synthetic per-video timeline."""
    table = store.utterances
    if {"start", "end"} <= set(table.columns):
        return table[["start", "end"]].to_numpy(np.float64)
    steps = np.max([store.features(m).lengths for m in store.modalities], axis=0).clip(min=1)
    times = np.zeros((len(table), 2))
    clock: dict[str, float] = {}
    for i, (vid, length) in enumerate(zip(videos, steps)):
        t = clock.get(vid, 0.0)
        times[i] = (t, t + length)
        clock[vid] = t + length + 1.0
    return times


def _rows(fs, i: int, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Utterance ``i``'s ``(intervals (T, 2), features (T, d))``: stored intervals, or ``seg`` evenly divided."""
    feats = np.asarray(fs.sequence(i))
    if fs.has("intervals"):
        return np.asarray(fs.sequence(i, "intervals"), dtype=np.float64), feats
    bounds = seg[0] + (seg[1] - seg[0]) * np.arange(len(feats) + 1) / max(len(feats), 1)
    return np.stack([bounds[:-1], bounds[1:]], axis=1), feats


def _write_sequence(path: Path, name: str, data: dict, metadata: dict) -> None:
    with atomic.atomic_path(path) as tmp, quiet_sdk():
        seq = mmdatasdk.computational_sequence(name)  # a name without ".csd": a new, blank sequence
        seq.setData(data, name)
        seq.setMetadata({"root name": name, **metadata}, name)
        seq.deploy(str(tmp))


def export_csd(root: str | Path, out: str | Path) -> Path:
    """Write the store at ``root`` as computational sequences into the folder ``out``."""
    store, out = open_store(root, verify=True), Path(out)
    table = store.utterances
    videos = _video_ids(table)
    problems = [f"{store.root}: video id {v!r} contains '/', which HDF5 group names cannot hold" for v in sorted(set(videos)) if "/" in v]
    split_of: dict[str, str] = {}
    for vid, split in zip(videos, table["split"]):
        if split_of.setdefault(vid, split) != split:
            problems.append(f"{store.root}: video {vid!r} has segments in both {split_of[vid]} and {split}; CSD folds are per video")
    if store.task is None:
        problems.append(f"{store.root}: has no labels; a labels sequence needs them")
    raise_if(problems, f"cannot export {store.root} as computational sequences")
    times = segment_times(store, videos)
    by_video: dict[str, list[int]] = {}
    for i, vid in enumerate(videos):
        by_video.setdefault(vid, []).append(i)
    source = store.meta.get("source", {})
    extra = [c for c in table.columns if c.startswith("csd_")]
    names = (source.get("label_names") if source.get("format") == "csd" and len(source.get("label_names", [])) == 1 + len(extra)
             else [*store.label_columns, *[c[len("csd_"):] for c in extra]])
    label_values = table[store.label_columns + extra].to_numpy(np.float64)
    # every key of mmsdk's featuresetMetadataTemplate, so deploy() never prompts on stdin
    common = {"computational sequence version": "1", "alignment compatible": "True",
              "dataset name": store.dataset, "dataset version": json.dumps(store.fingerprints(), sort_keys=True),
              "creator": "ebmc-export", "contact": "",
              "featureset bib citation": "", "dataset bib citation": ""}
    out.mkdir(parents=True, exist_ok=True)
    labels = {vid: {"intervals": times[rows], "features": label_values[rows]} for vid, rows in by_video.items()}
    _write_sequence(out / "labels.csd", f"{store.dataset}_labels", labels,
                    {**common, "computational sequence description": f"labels of {store.dataset} ({store.task})",
                     "dimension names": json.dumps(names)})
    for m in store.modalities:
        fs = store.features(m)
        data = {}
        for vid, rows in by_video.items():
            parts = [_rows(fs, i, times[i]) for i in rows if fs.present[i]]
            iv = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 2))
            feats = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, fs.dim), np.float32)
            # rows shared by overlapping segments were stored once per segment: write them once
            _, first = np.unique(iv, axis=0, return_index=True)
            data[vid] = {"intervals": iv[first], "features": feats[first]}
        _write_sequence(out / f"{m}.csd", f"{store.dataset}_{m}", data,
                        {**common, "computational sequence description": f"{m} features of {store.dataset}",
                         "ebmc producer": json.dumps(fs.producer, sort_keys=True), "ebmc fingerprint": fs.fingerprint})
    folds = {s: sorted({v for v, sp in split_of.items() if sp == s}) for s in SPLITS}
    atomic.write_json(out / "folds.json", {"source": f"ebmc-export csd of {store.dataset}", **folds})
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="feature store folder, e.g. features/mosi")
    parser.add_argument("--out", type=Path, required=True, help="folder for labels.csd, <modality>.csd and folds.json")


def run(args: argparse.Namespace) -> int:
    out = export_csd(args.store, args.out)
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".csd", ".json"))
    print(f"wrote {', '.join(files)} to {out}")
    return 0
