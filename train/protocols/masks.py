"""Deterministic drop masks: a Bernoulli draw per (sample, modality, step), fixed by (seed, rate).

Each draw is a counter-based uniform u = hash(seed, purpose, store row, modality, step) in [0, 1),
so a sample's mask depends on neither the batch it lands in, nor its padding, nor the order of
evaluation. An element is dropped when u < rate: the masks of one seed are nested across rates
(what is dropped at 0.3 is also dropped at 0.5), which makes rate curves monotone in the input
corruption instead of adding fresh sampling noise at every rate.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ebmc.store.schema import MODALITIES

# Separate streams, so that frame drops and whole-modality drops of one seed are independent.
FRAME_STREAM = 1
MODALITY_STREAM = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrap-around arithmetic is the point)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(seed: int, stream: int, rows: np.ndarray | Tensor, modality: str, steps: int) -> np.ndarray:
    """Uniforms in [0, 1) for every (row, step): ``(B, steps)`` float64.

    ``rows`` are store row indices (``Batch.index``); column t of a row is the same whatever
    ``steps`` is, so padding a batch differently never changes a sample's draws.
    """
    rows = np.asarray(rows.cpu() if isinstance(rows, Tensor) else rows, dtype=np.uint64)
    key = np.uint64(seed) & np.uint64(0xFFFFFFFF)
    for part in (stream, MODALITIES.index(modality) + 1):
        key = _splitmix64(np.asarray(key ^ np.uint64(part)))
    with np.errstate(over="ignore"):
        sample_key = _splitmix64(key ^ (rows * _GOLDEN))                       # (B,)
        bits = _splitmix64(sample_key[:, None] ^ np.arange(steps, dtype=np.uint64)[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def frame_drop_mask(valid: Tensor, rows: Tensor, modality: str, rate: float, seed: int,
                    keep_ends: bool = False) -> Tensor:
    """Which valid steps to drop: ``(B, T)`` bool on ``valid``'s device.

    valid: (B, T) bool, True = valid step (``Batch.mask[m]``); rows: (B,) store rows.
    Each valid step is dropped with probability ``rate``. ``keep_ends`` keeps each row's first
    and last valid step (text: the [CLS] and [SEP] tokens, as in the LNLN protocol).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop rate must be in [0, 1], got {rate}")
    B, T = valid.shape
    u = torch.from_numpy(uniforms(seed, FRAME_STREAM, rows, modality, T)).to(valid.device)
    drop = valid & (u < rate)
    return drop & ~end_steps(valid) if keep_ends else drop


def end_steps(valid: Tensor) -> Tensor:
    """Each row's first and last valid step: ``(B, T)`` bool (all False for a row without one)."""
    B, T = valid.shape
    if T == 0:
        return valid
    steps = torch.arange(T, device=valid.device).expand(B, T)
    first = torch.where(valid, steps, T).min(dim=1).values
    last = torch.where(valid, steps, -1).max(dim=1).values
    return valid & ((steps == first[:, None]) | (steps == last[:, None]))


def modality_drop_mask(present: dict[str, Tensor], rows: Tensor, rate: float, seed: int) -> dict[str, Tensor]:
    """Which (sample, modality) pairs to make absent: {m: (B,) bool}.

    present: {m: (B,) bool}. Each present pair is dropped with probability ``rate``; a sample that
    would lose all of its modalities keeps the one with the largest draw, so at least one stays
    (the kept one is the same at every rate of a seed).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop rate must be in [0, 1], got {rate}")
    names = list(present)
    device = rows.device
    u = torch.stack([torch.from_numpy(uniforms(seed, MODALITY_STREAM, rows, m, 1)[:, 0]) for m in names],
                    dim=1).to(device)                                            # (B, M)
    avail = torch.stack([present[m] for m in names], dim=1)                      # (B, M)
    drop = avail & (u < rate)
    lost_all = avail.any(dim=1) & ~(avail & ~drop).any(dim=1)
    keep = torch.where(avail, u, -1.0).argmax(dim=1)                             # (B,)
    rescue = lost_all[:, None] & (torch.arange(len(names), device=device)[None, :] == keep[:, None])
    drop &= ~rescue
    return {m: drop[:, j] for j, m in enumerate(names)}
