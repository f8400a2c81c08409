"""Cross-modal Complementary Enhancement (paper Sec. 3.3, Eq. 6): z~_m = G_m([z^c_m, z^c_-m, z^s_m, z^s_-m] + eps)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .msd import mlp


def others_mean(z: Tensor, present: Tensor) -> Tensor:
    """For each modality m, the mean of the *other* present modalities' vectors.

    z: (B, M, H), present: (B, M) bool -> (B, M, H); zeros where no other modality is present.
    """
    w = present.to(z.dtype).unsqueeze(-1)
    total = (z * w).sum(1, keepdim=True)
    own = z * w
    count = w.sum(1, keepdim=True) - w
    return (total - own) / count.clamp(min=1.0)


class CCE(nn.Module):
    """One enhancement network G_m per modality; noise of std ``noise_std`` on its input in training."""

    def __init__(self, modalities: tuple[str, ...], hidden: int, dropout: float, noise_std: float):
        super().__init__()
        self.modalities = modalities
        self.noise_std = noise_std
        self.enhance = nn.ModuleDict({m: mlp(4 * hidden, hidden, hidden, dropout) for m in modalities})

    def forward(self, zc: Tensor, zs: Tensor, present: Tensor) -> Tensor:
        """zc, zs: (B, M, H), present: (B, M) -> z~ (B, M, H), zeros for absent modalities."""
        inp = torch.cat([zc, others_mean(zc, present), zs, others_mean(zs, present)], dim=-1)
        if self.training and self.noise_std > 0:
            inp = inp + torch.randn_like(inp) * self.noise_std
        out = torch.stack([self.enhance[m](inp[:, j]) for j, m in enumerate(self.modalities)], 1)
        return torch.where(present.unsqueeze(-1), out, torch.zeros_like(out))
