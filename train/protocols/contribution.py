"""Analyses of a trained model's outputs: modality contribution (Fig. 4) and fused representations (Fig. 3)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data import Data
from ..loop import predict
from .missing import Transform, keep_only

MetricsUnder = Callable[[Transform | None], dict[str, float]]


def modality_contribution(model: torch.nn.Module, data: Data, split: str, batch_size: int,
                          metrics_under: MetricsUnder) -> dict:
    """Contribution of each of ``model.modalities`` on ``split``.

    ``mean_weight[m]``: mean fusion weight w_m (trust, stage II); ``share[m]``: mean of
    w_m / sum_m' w_m' over samples (an absent modality counts 0), i.e. the share of the fusion each
    modality gets, summing to 1 over modalities (with trust fusion it is the trust alpha_m).
    ``removed[m]``: metrics with m absent for every sample; ``drop[m][k] = full[k] - removed[m][k]``
    (positive: removing m lowers metric k). ``metrics_under(transform)`` evaluates under a transform.
    """
    trust = predict(model, data.batches(split, batch_size))["trust"].astype(np.float64)   # (N, M)
    share = trust / np.maximum(trust.sum(axis=1, keepdims=True), 1e-12)
    names = list(model.modalities)
    full = metrics_under(None)
    removed = {}
    if len(names) > 1:  # removing a one-modality run's only input leaves nothing to predict from
        removed = {m: metrics_under(keep_only([o for o in names if o != m])) for m in names}
    return {
        "modalities": names,
        "mean_weight": {m: float(trust[:, j].mean()) for j, m in enumerate(names)},
        "share": {m: float(share[:, j].mean()) for j, m in enumerate(names)},
        "full": full,
        "removed": removed,
        "drop": {m: {k: full[k] - v for k, v in r.items() if k in full} for m, r in removed.items()},
    }


def fused_embedding(model: torch.nn.Module, data: Data, split: str, batch_size: int, max_points: int, seed: int) -> dict:
    """Fused representations (Fig. 3): at most ``max_points`` rows of the fusion head's hidden
    layer ``fused`` (N, H) with their labels; a seeded subsample (in table order) when N is larger."""
    out = predict(model, data.batches(split, batch_size))
    n = out["fused"].shape[0]
    keep = np.arange(n)
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).permutation(n)[:max_points])
    return {"fused": out["fused"][keep].tolist(), "label": out["y"][keep].tolist()}
