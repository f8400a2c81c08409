"""Energy-guided Modality Coordination (paper Sec. 3.4, App. B; spec 2.5): energies, energy gap, gradient penalty."""
from __future__ import annotations

import torch
from torch import Tensor

from ..losses import entropy, masked_mean, multi_present, task_loss, unimodal_prediction


def sample_energy(kind: str, z: Tensor, raw: Tensor, y: Tensor, a: float, b: float, c: float) -> Tensor:
    """E_i(m) = a ||z_{m,i}||^2 / H + b l_{m,i} + c u_{m,i}, (B, M).

    z: (B, M, H) encoder outputs; raw: (B, M, ...) unimodal head outputs computed from z (through
    z^s_m = D^s_m(z_m) and T_m), so all three terms depend on z; y: the batch labels.
    l is T_m's task loss (L1 / cross-entropy), u its predictive entropy.
    """
    B, M, H = z.shape
    flat = raw.reshape(B * M, *raw.shape[2:])
    loss = task_loss(kind, unimodal_prediction(kind, flat), y.repeat_interleave(M, dim=0)).reshape(B, M)
    return a * z.pow(2).sum(-1) / H + b * loss + c * entropy(kind, raw)


def modality_energies(energy: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """E(m): batch mean of E_i(m) over samples where m is present among >= 2 present modalities.

    energy: (B, M), present: (B, M) -> (M,) energies and (M,) bool "has samples" (energy 0 where not).
    """
    keep = (present & multi_present(present).unsqueeze(1)).to(energy.dtype)
    return (energy * keep).sum(0) / keep.sum(0).clamp(min=1.0), keep.sum(0) > 0


def energy_gap(energies: Tensor, has: Tensor) -> Tensor:
    """L_gap = sum over unordered pairs m < m' (both with samples) of (E(m) - E(m'))^2, scalar."""
    diff = (energies.unsqueeze(0) - energies.unsqueeze(1)) ** 2
    pair = torch.triu(has.unsqueeze(0) & has.unsqueeze(1), diagonal=1)
    return (diff * pair.to(diff.dtype)).sum()


def gradient_penalty(energy: Tensor, z: Tensor, present: Tensor) -> Tensor:
    """mean_i sum_m ||dE_i(m)/dz_{m,i}||^2 by double backprop (create_graph=True), scalar.

    energy: (B, M) computed from z: (B, M, H) with grad; samples do not interact inside E, so the
    gradient of the masked sum holds every per-sample gradient. Averaged over samples with any
    present modality.
    """
    (grad,) = torch.autograd.grad((energy * present.to(energy.dtype)).sum(), z, create_graph=True)
    per_sample = (grad.pow(2).sum(-1) * present.to(grad.dtype)).sum(1)
    return masked_mean(per_sample, present.any(1))
