"""Shared builders for the protocol tests: random batches and a small EBMC."""
from __future__ import annotations

import torch

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
