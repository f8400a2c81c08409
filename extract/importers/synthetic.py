"""Synthetic datasets with the real benchmarks' shapes and splits and a planted multimodal signal.

The label is a sum of three independent per-sample factors, one carried by each modality, so no
single modality can explain it and fusion must beat each of them. Text carries the largest part
(as in the real benchmarks). In a fraction of the samples one modality is corrupted: its factor is
replaced by noise, so a model that trusts modalities per sample gains. Everything is drawn from
one seeded generator: the same arguments give byte-identical stores.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ebmc.store import MODALITIES, ModalityData, write_store

log = logging.getLogger(__name__)

VERSION = 1


@dataclasses.dataclass(frozen=True)
class Shape:
    """Shapes and split sizes of one benchmark's standard features (MMSA / MulT releases)."""

    task: str
    splits: tuple[int, int, int]          # train, valid, test
    dims: dict                            # modality -> feature dimension
    max_len: dict                         # modality -> padded length
    min_len: dict                         # modality -> shortest valid length
    clips_per_video: int
    labels: tuple[str, ...] = ()          # multilabel: one-vs-rest label names


SHAPES = {
    # MMSA unaligned_50.pkl: BERT 768-d text (<= 50 tokens), COVAREP-lite 5-d audio, Facet 20-d vision
    "mosi": Shape("regression", (1284, 229, 686), {"text": 768, "audio": 5, "vision": 20},
                  {"text": 50, "audio": 375, "vision": 500}, {"text": 8, "audio": 40, "vision": 40}, 24),
    # MMSA unaligned_50.pkl: COVAREP 74-d audio, Facet 35-d vision
    "mosei": Shape("regression", (16326, 1871, 4659), {"text": 768, "audio": 74, "vision": 35},
                   {"text": 50, "audio": 500, "vision": 500}, {"text": 8, "audio": 40, "vision": 40}, 7),
    # MulT iemocap_data.pkl: word-aligned 20 steps, GloVe 300-d text; four one-vs-rest emotions
    "iemocap": Shape("multilabel", (2717, 798, 938), {"text": 300, "audio": 74, "vision": 35},
                     {"text": 20, "audio": 20, "vision": 20}, {"text": 20, "audio": 20, "vision": 20}, 30,
                     labels=("neutral", "happy", "sad", "angry")),
}

# Share of the label each modality carries (squared weights sum to 1): text dominates.
WEIGHTS = {"text": 0.72, "audio": 0.5, "vision": 0.48}
CORRUPT_RATE = 0.15      # samples with one modality's factor replaced by noise
FRAME_NOISE = 2.0        # per-frame noise std (signal amplitude is 1 per factor unit)
SIGNAL_FRAC = 0.5        # fraction of valid frames that carry the factor


def _split_sizes(shape: Shape, n_train: int | None) -> tuple[int, int, int]:
    if n_train is None:
        return shape.splits
    tr, va, te = shape.splits
    return n_train, max(8, round(n_train * va / tr)), max(8, round(n_train * te / tr))


def _sequences(rng: np.random.Generator, factor: np.ndarray, dim: int, lo: int, hi: int) -> list[np.ndarray]:
    """Per sample a (T_i, dim) sequence whose frames carry ``factor`` (N, k) along fixed directions."""
    n, k = factor.shape
    directions = rng.standard_normal((k, dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    nuisance_dir = rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
    lengths = rng.integers(lo, hi + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    frames = rng.standard_normal((offsets[-1], dim), dtype=np.float32) * FRAME_NOISE / np.sqrt(max(dim, 1) / 4)
    row = np.repeat(np.arange(n), lengths)
    carries = rng.random(offsets[-1]) < SIGNAL_FRAC
    signal = (factor @ directions).astype(np.float32)  # (N, dim)
    frames += np.where(carries[:, None], signal[row] / SIGNAL_FRAC, 0.0).astype(np.float32)
    frames += rng.standard_normal(n).astype(np.float32)[row, None] * nuisance_dir  # label-free per-sample offset
    return [frames[offsets[i]:offsets[i + 1]] for i in range(n)]


def make_synthetic(out: str | Path, like: str = "mosi", seed: int = 0, n_train: int | None = None) -> Path:
    """Write a synthetic store shaped like ``like`` (mosi, mosei, iemocap) to ``out``; return it."""
    if like not in SHAPES:
        raise ValueError(f"unknown benchmark {like!r} for --like; use one of {', '.join(SHAPES)}")
    if n_train is not None and n_train < 8:
        raise ValueError(f"--n-train must be at least 8, got {n_train}")
    shape = SHAPES[like]
    sizes = _split_sizes(shape, n_train)
    n = sum(sizes)
    rng = np.random.default_rng(seed)
    k = 1 if shape.task == "regression" else len(shape.labels)
    factors = {m: rng.standard_normal((n, k)) for m in MODALITIES}
    score = sum(WEIGHTS[m] * factors[m] for m in MODALITIES)
    seen = {m: f.copy() for m, f in factors.items()}
    corrupt = rng.random(n) < CORRUPT_RATE
    which = rng.integers(0, len(MODALITIES), size=n)
    for j, m in enumerate(MODALITIES):
        rows = corrupt & (which == j)
        seen[m][rows] = rng.standard_normal((int(rows.sum()), k)) * 2.0
    split = np.repeat(np.array(["train", "valid", "test"]), sizes)
    video = np.concatenate([[f"{s}{i // shape.clips_per_video:04d}" for i in range(c)]
                            for s, c in zip(("tr", "va", "te"), sizes)])
    clip = np.concatenate([np.arange(c) % shape.clips_per_video for c in sizes])
    table = pd.DataFrame({"utterance_id": [f"{v}${c}" for v, c in zip(video, clip)],
                          "video_id": video, "clip_id": clip.astype(str), "split": split,
                          "corrupted": np.where(corrupt, np.asarray(MODALITIES)[which], "")})
    if shape.task == "regression":
        y = np.clip(1.3 * score[:, 0] + 0.15 * rng.standard_normal(n), -3, 3)
        table["label"] = (np.round(y * 5) / 5).astype(np.float32)  # MOSI-style 0.2 steps
        label_columns = ["label"]
    else:
        hot = np.eye(k, dtype=np.int64)[np.argmax(score + 0.2 * rng.standard_normal((n, k)), axis=1)]
        label_columns = [f"label_{name}" for name in shape.labels]
        for j, col in enumerate(label_columns):
            table[col] = hot[:, j]
    config = {"like": like, "seed": seed, "n_train": n_train}
    features = {m: ModalityData(producer={"name": "synthetic", "version": VERSION, "config": config},
                                sequences=_sequences(rng, seen[m], shape.dims[m], shape.min_len[m], shape.max_len[m]))
                for m in MODALITIES}
    log.info("synthetic %s: %d/%d/%d utterances (seed %d)", like, *sizes, seed)
    return write_store(out, dataset=f"synthetic-{like}", task=shape.task, utterances=table, features=features,
                       label_columns=label_columns, source={"importer": "synthetic", **config})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--like", choices=sorted(SHAPES), default="mosi", help="benchmark whose shapes and splits to copy")
    parser.add_argument("--out", required=True, help="store folder to write, e.g. features/synthetic-mosi")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same store)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="training utterances (valid/test scale with it); default: the benchmark's own sizes")


def run(args: argparse.Namespace) -> int:
    path = make_synthetic(args.out, like=args.like, seed=args.seed, n_train=args.n_train)
    print(f"wrote synthetic {args.like} store to {path}")
    return 0
