"""Word alignment: sub-word token states pooled per word, and frame features averaged over each word's time span."""
from __future__ import annotations

import numpy as np

from ebmc.store import ModalityData

from .types import Result

ALIGNED = "aligned"  # the store's name of the word-aligned feature-set variant
VERSION = 1  # bump whenever the code changes what the aligned sets hold


def pool_words(values: np.ndarray, word_ids: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the token states of each word: ``values`` (T, d), ``word_ids`` (T,) word index per
    token (-1 = special token, ignored). Returns ``(n_words, d)`` float32 means and ``(n_words,)``
    bool, False for a word without any token (cut off by the token limit), whose row is zeros."""
    keep = (word_ids >= 0) & (word_ids < n_words)
    sums = np.zeros((n_words, values.shape[1]), np.float64)
    np.add.at(sums, word_ids[keep], values[keep])
    counts = np.bincount(word_ids[keep], minlength=n_words)[:n_words]
    valid = counts > 0
    sums[valid] /= counts[valid, None]
    return sums.astype(np.float32), valid


def span_means(values: np.ndarray, timestamps: np.ndarray, frame_mask: np.ndarray | None,
               spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the frames overlapping each span, as MMSA's aligned data averages over each word.

    ``values`` (T, d) with ``timestamps`` (T, 2) [start, end] seconds; ``frame_mask`` (T,) False =
    an invalid frame (no face), excluded; ``spans`` (W, 2) [start, end] seconds on the same clock.
    A frame belongs to a word when their intervals overlap (frame start < word end and frame end >
    word start), so a word shorter than the frame period still gets the frame on screen. Returns
    ``(W, d)`` float32 means and ``(W,)`` bool, False for a word with no valid frame (row zeros).
    """
    valid = np.isfinite(timestamps).all(axis=1)
    if frame_mask is not None:
        valid &= frame_mask
    t0, t1 = timestamps[:, 0], timestamps[:, 1]
    inside = (t0[None, :] < spans[:, 1:2]) & (t1[None, :] > spans[:, 0:1]) & valid[None, :]  # (W, T)
    counts = inside.sum(axis=1)
    sums = inside.astype(np.float64) @ values.astype(np.float64)
    ok = counts > 0
    sums[ok] /= counts[ok, None]
    return sums.astype(np.float32), ok


def aligned_data(modality: str, data: ModalityData, words: list[Result | None], words_source: str | None) -> ModalityData:
    """One row per ASR word for every utterance of ``data`` (a modality's unaligned, ragged features).

    ``words[i]``: utterance i's ASR Result (word times as timestamps, extras ``words``), or None
    when its transcript was given or speech recognition heard nothing: that row is "absent" here.
    Text: the mean of each word's token states (``word_ids``), or the stored word rows of
    ``--text.pool words``. Audio and vision: ``span_means`` over each word's time span. Per row:
    values (W, d), timestamps (W, 2) the word span, frame_mask (W,) False = no valid frame or
    token for the word, extras ``words`` (W,) str. ``words_source`` (hash of the ASR producer and
    inputs) enters the producer, with the unaligned producer.
    """
    sequences: list[np.ndarray | None] = []
    extras: dict[str, list] = {"timestamps": [], "frame_mask": [], "words": []}
    status: list[str] = []
    stamps, masks = data.extras.get("timestamps"), data.extras.get("frame_mask")
    for i, seq in enumerate(data.sequences):
        w = words[i]
        if seq is None or w is None:
            status.append("failed" if data.status[i] == "failed" else "absent")
            sequences.append(None)
            for name in extras:
                extras[name].append(None)
            continue
        n = len(w.timestamps)
        if modality == "text" and "word_ids" in data.extras:
            values, valid = pool_words(seq, data.extras["word_ids"][i], n)
        elif modality == "text":  # already one row per word, the first len(seq) words
            values, valid = np.zeros((n, seq.shape[1]), np.float32), np.zeros(n, bool)
            k = min(len(seq), n)
            values[:k] = seq[:k]
            valid[:k] = True if masks is None or masks[i] is None else masks[i][:k]
        else:
            values, valid = span_means(seq, stamps[i], None if masks is None else masks[i], w.timestamps)
        status.append("ok")
        sequences.append(values)
        extras["timestamps"].append(w.timestamps)
        extras["frame_mask"].append(valid)
        extras["words"].append(w.extras["words"])
    producer = {"name": "word-aligned", "version": VERSION, "features": data.producer, "words": words_source}
    return ModalityData(producer=producer, info=data.info, sequences=sequences, extras=extras, status=status)
