"""Modality Semantic Disentangle (paper Sec. 3.2): shared / specific MLPs and unimodal predictors per modality."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """The two-layer MLP used by every EBMC head."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class MSD(nn.Module):
    """D^c_m, D^s_m (Eq. 1) and the unimodal predictor T_m on z^s_m (Eq. 4) for each modality."""

    def __init__(self, modalities: tuple[str, ...], hidden: int, uni_out: int, dropout: float):
        super().__init__()
        self.modalities = modalities
        self.shared = nn.ModuleDict({m: mlp(hidden, hidden, hidden, dropout) for m in modalities})
        self.specific = nn.ModuleDict({m: mlp(hidden, hidden, hidden, dropout) for m in modalities})
        self.predictor = nn.ModuleDict({m: mlp(hidden, hidden, uni_out, dropout) for m in modalities})

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z: (B, M, H) -> z^c (B, M, H), z^s (B, M, H), raw unimodal outputs (B, M, uni_out)."""
        zc = torch.stack([self.shared[m](z[:, j]) for j, m in enumerate(self.modalities)], 1)
        zs = torch.stack([self.specific[m](z[:, j]) for j, m in enumerate(self.modalities)], 1)
        raw = torch.stack([self.predictor[m](zs[:, j]) for j, m in enumerate(self.modalities)], 1)
        return zc, zs, raw
