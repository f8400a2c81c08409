"""Instance-aware Modality Trust Distillation (paper Sec. 3.5, Eq. 13-16): trust weights and the distillation loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..losses import unimodal_prediction


def trust_weights(sigma: Tensor, present: Tensor) -> Tensor:
    """alpha (B, M): c * rho normalised over each sample's present modalities (absent -> 0).

    sigma: (B, M) predictive spread; c = exp(-sigma), rho = 1 / (log(1 + sigma^2) + 0.1) (the 0.1
    keeps rho finite as sigma -> 0). A sample with no present modality gets all zeros.
    """
    score = torch.exp(-sigma) / (torch.log1p(sigma ** 2) + 0.1)
    score = torch.where(present, score, torch.zeros_like(score))
    total = score.sum(1, keepdim=True)
    return score / torch.where(total > 0, total, torch.ones_like(total))


def divergence(kind: str, student: Tensor, teacher_raw: Tensor, tau: float) -> Tensor:
    """D_m^i (B, M) between the fused prediction and each teacher unimodal head.

    student: (B,) | (B, K) | (B, K, 2) fused output; teacher_raw: (B, M, ...) unimodal raw outputs.
    Regression: (y_hat - mu_m)^2. Classification: tau^2 KL(softmax(s/tau) || softmax(t_m/tau)),
    multilabel: its mean over the K binary labels.
    """
    teacher = unimodal_prediction(kind, teacher_raw)
    if kind == "regression":
        return (student.unsqueeze(1) - teacher) ** 2
    logp_s = F.log_softmax(student.unsqueeze(1) / tau, dim=-1)
    logp_t = F.log_softmax(teacher / tau, dim=-1)
    kl = (logp_s.exp() * (logp_s - logp_t)).sum(-1) * tau ** 2
    return kl.mean(-1) if kind == "multilabel" else kl


def imtd_loss(kind: str, student: Tensor, teacher_raw: Tensor, alpha: Tensor, tau: float) -> Tensor:
    """L_IMTD = sum_m mean_i alpha_m^i D_m^i, scalar; alpha (B, M) from the teacher's spreads."""
    return (alpha * divergence(kind, student, teacher_raw, tau)).mean(0).sum()
