"""Shared builders for the protocol tests: random batches, a small EBMC, a tiny regression store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ebmc.store import ModalityData, write_store

from ebmc.train.batch import Batch, TaskSpec
from ebmc.train.model.config import ModelConfig
from ebmc.train.model.ebmc import EBMC

DIMS = {"text": 6, "audio": 4, "vision": 5}


def make_batch(B: int = 12, T: int = 20, seed: int = 0, dims: dict[str, int] = DIMS) -> Batch:
    """Random batch with ragged valid lengths (at least 3 steps), every modality present."""
    g = torch.Generator().manual_seed(seed)
    x, mask, present = {}, {}, {}
    for m, d in dims.items():
        lengths = torch.randint(3, T + 1, (B,), generator=g)
        mask[m] = torch.arange(T)[None, :] < lengths[:, None]
        x[m] = torch.randn(B, T, d, generator=g) * mask[m][..., None]
        present[m] = torch.ones(B, dtype=torch.bool)
    return Batch(x, mask, present, torch.randn(B, generator=g), torch.arange(100, 100 + B))


def small_model(dims: dict[str, int] = DIMS) -> EBMC:
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_dim=16, encoder_heads=2, encoder_layers=1, max_steps=8, dropout=0.0)
    return EBMC(cfg, dims, TaskSpec("regression")).eval()


@torch.no_grad()
def predict(model: EBMC, batch: Batch) -> torch.Tensor:
    import dataclasses
    return model(dataclasses.replace(batch, y=None), stage=2).pred


def tiny_store(root: Path, n: int = 60) -> Path:
    """A regression store (60 samples: 36/12/12) whose three modalities carry the label as their mean."""
    rng = np.random.default_rng(0)
    y = rng.uniform(-3, 3, n).astype(np.float32)
    feats = {m: ModalityData({"name": "test"}, sequences=[rng.normal(y[i], 1, (int(rng.integers(3, 9)), d)).astype(np.float32)
                                                          for i in range(n)])
             for m, d in (("text", 4), ("audio", 3), ("vision", 2))}
    table = pd.DataFrame({"utterance_id": [f"u{i}" for i in range(n)], "label": y,
                          "split": ["train"] * 36 + ["valid"] * 12 + ["test"] * 12})
    return write_store(root, dataset="tiny", task="regression", utterances=table, features=feats)
