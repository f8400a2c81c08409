"""Builders for the importer tests: small pickles with the exact structure of MMSA and MulT releases."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SPLIT_SIZES = {"train": 6, "valid": 3, "test": 4}


def mmsa_data(seed: int = 0, aligned: bool = False, sims: bool = False) -> dict:
    """An MMSA ``{split: {key: array}}`` dict: BERT-style text, COVAREP-like audio with -inf, Facet-like vision."""
    rng = np.random.default_rng(seed)
    T_text, d_text = 8, 12
    T_audio, d_audio = (T_text, 5) if aligned else (10, 5)
    T_vision, d_vision = (T_text, 4) if aligned else (12, 4)
    data, video = {}, 0
    for split, n in SPLIT_SIZES.items():
        text_len = rng.integers(3, T_text + 1, n)
        mask = (np.arange(T_text)[None] < text_len[:, None]).astype(np.float64)
        ids = rng.integers(100, 30000, (n, T_text)) * mask
        bert = np.stack([ids, mask, np.zeros_like(mask)], axis=1)  # (N, 3, T): ids, mask, segment
        audio = rng.normal(size=(n, T_audio, d_audio)).astype(np.float32)
        audio[0, 1, 2] = -np.inf  # COVAREP writes -inf for unvoiced frames
        audio[n - 1, 0, :2] = -np.inf
        part = {
            "id": np.array([f"vid{video + i // 2}$_${i % 2 + 1}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"words of {split} sample {i}" for i in range(n)], dtype=object),
            "text": (rng.normal(size=(n, T_text, d_text)) * mask[..., None]).astype(np.float32),
            "text_bert": bert,
            "audio": audio,
            "vision": rng.normal(size=(n, T_vision, d_vision)).astype(np.float32),
            "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
        }
        if not aligned:
            part["audio_lengths"] = rng.integers(1, T_audio + 1, n).tolist()
            part["vision_lengths"] = rng.integers(1, T_vision + 1, n).tolist()
        if sims:
            for m in "TAV":
                part[f"regression_labels_{m}"] = rng.uniform(-1, 1, n).astype(np.float32)
            part["classification_labels"] = rng.integers(0, 3, n).astype(np.float32)
        video += n
        data[split] = part
    return data


def mult_data(seed: int = 0, iemocap: bool = False) -> dict:
    """A MulT ``{split: {key: array}}`` dict: word-aligned (N, T, d) arrays, (N,1,1) or (N,4,2) labels."""
    rng = np.random.default_rng(seed)
    T = 6
    data = {}
    for split, n in SPLIT_SIZES.items():
        if iemocap:
            yes = rng.integers(0, 2, (n, 4))
            labels = np.stack([1 - yes, yes], axis=-1).astype(np.float32)  # one-hot (no, yes) per emotion
        else:
            labels = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
        data[split] = {
            "vision": rng.normal(size=(n, T, 35)).astype(np.float32),
            "audio": rng.normal(size=(n, T, 74)).astype(np.float32),
            "text": rng.normal(size=(n, T, 300)).astype(np.float32),
            "labels": labels,
            "id": np.array([[f"{split}vid{i // 2}", str(i % 2)] for i in range(n)]),
        }
    return data


def write_pickle(path: Path, obj) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path
