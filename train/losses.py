"""Task-aware loss primitives of EBMC: task loss, unimodal heads' outputs, InfoNCE and disentanglement.

Shapes: B samples, M modalities, H features, K classes or labels. ``present`` is a (B, M) bool tensor.
"Raw" unimodal outputs are a head's last layer: regression (..., 2) = (mean, log-variance),
classification (..., K) logits, multilabel (..., K, 2) logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# exp(8) ~ 3000: keeps the Gaussian NLL and the trust weights finite for any head output.
LOGVAR_BOUND = 8.0
_GAUSS_ENTROPY_CONST = 0.5 * math.log(2 * math.pi * math.e)


def task_loss(kind: str, pred: Tensor, y: Tensor) -> Tensor:
    """Per-sample task loss (B,): L1 (regression, MMSA), cross-entropy (classification), mean over
    labels of the 2-way cross-entropy (multilabel). pred: (B,) | (B, K) | (B, K, 2)."""
    if kind == "regression":
        return (pred - y.to(pred.dtype)).abs()
    if kind == "classification":
        return F.cross_entropy(pred, y.long(), reduction="none")
    if kind == "multilabel":
        return F.cross_entropy(pred.transpose(1, 2), y.long(), reduction="none").mean(1)
    raise ValueError(f"unknown task kind {kind!r}: use regression, classification or multilabel")


def logvar(raw: Tensor) -> Tensor:
    """Bounded log-variance of a regression head's raw output (..., 2) -> (...)."""
    return raw[..., 1].clamp(-LOGVAR_BOUND, LOGVAR_BOUND)


def unimodal_prediction(kind: str, raw: Tensor) -> Tensor:
    """A unimodal head's prediction in the fused head's format: regression mean, else the logits."""
    return raw[..., 0] if kind == "regression" else raw


def entropy(kind: str, raw: Tensor) -> Tensor:
    """Predictive entropy per sample (...): Gaussian 0.5 log(2 pi e sigma^2), categorical entropy,
    or the mean over labels of the binary entropies (multilabel)."""
    if kind == "regression":
        return _GAUSS_ENTROPY_CONST + 0.5 * logvar(raw)
    logp = F.log_softmax(raw, dim=-1)
    ent = -(logp.exp() * logp).sum(-1)
    return ent.mean(-1) if kind == "multilabel" else ent


def spread(kind: str, raw: Tensor) -> Tensor:
    """Predictive spread sigma per sample (...): regression standard deviation, else the entropy."""
    if kind == "regression":
        return torch.exp(0.5 * logvar(raw))
    return entropy(kind, raw)


def unimodal_loss(kind: str, raw: Tensor, y: Tensor) -> Tensor:
    """Per-sample loss of unimodal heads, raw (B, M, ...) -> (B, M). Regression: L1 on the mean plus
    the Gaussian NLL of the variance with the mean detached (the variance must not pull the mean)."""
    B, M = raw.shape[:2]
    flat = raw.reshape(B * M, *raw.shape[2:])
    yy = y.repeat_interleave(M, dim=0)
    pred = unimodal_prediction(kind, flat)
    loss = task_loss(kind, pred, yy)
    if kind == "regression":
        lv = logvar(flat)
        loss = loss + 0.5 * (lv + (yy.to(pred.dtype) - pred.detach()) ** 2 * torch.exp(-lv))
    return loss.reshape(B, M)


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` where ``keep`` (same shape) is True; 0 (still in the graph) when none is."""
    keep = keep.to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp(min=1.0)


def multi_present(present: Tensor) -> Tensor:
    """(B,) bool: samples with at least two present modalities, the only ones pair terms use."""
    return present.sum(1) >= 2


def aggregate(z: Tensor, present: Tensor) -> Tensor:
    """Mean of the present modalities' vectors, z (B, M, H) -> (B, H); zeros for an empty sample."""
    w = present.to(z.dtype).unsqueeze(-1)
    return (z * w).sum(1) / w.sum(1).clamp(min=1.0)


def info_nce(zc: Tensor, present: Tensor, tau: float) -> Tensor:
    """L_inv (Eq. 2), scalar. Anchor zc[i, m], positive the aggregate of sample i, negatives the
    aggregates of the other samples; cosine similarity / tau; averaged over present anchors of
    samples with >= 2 present modalities (others neither anchor nor serve as negatives).

    Left-out samples are masked, not removed, so every shape is known without reading the data
    (no host synchronisation): their columns get -inf logits and their rows weight 0.
    """
    keep = multi_present(present)                                      # (B,)
    anchors = F.normalize(zc, dim=-1)                                  # (B, M, H)
    agg = F.normalize(aggregate(zc, present), dim=-1)                  # (B, H)
    logits = torch.einsum("imh,kh->imk", anchors, agg) / tau           # (B, M, B)
    B, M = present.shape
    eye = torch.eye(B, dtype=torch.bool, device=zc.device)
    # a left-out row still sees its own column, so its (unused) loss stays finite
    negatives = keep.unsqueeze(0) | eye                                # (B anchors, B columns)
    logits = logits.masked_fill(~negatives.unsqueeze(1), float("-inf"))
    target = torch.arange(B, device=zc.device).unsqueeze(1).expand(B, M)
    ce = F.cross_entropy(logits.reshape(B * M, B), target.reshape(-1), reduction="none")
    return masked_mean(ce, (present & keep.unsqueeze(1)).reshape(-1))


def disentangle(zs: Tensor, present: Tensor) -> Tensor:
    """L_dis (Eq. 3), scalar: mean over modality pairs m != m' present in the same sample of
    cos(zs[i, m], zs[i, m'])^2 (squared, so anti-alignment is not rewarded)."""
    M = zs.shape[1]
    unit = F.normalize(zs, dim=-1)
    cos2 = torch.einsum("imh,inh->imn", unit, unit) ** 2              # (B, M, M)
    pair = present.unsqueeze(2) & present.unsqueeze(1)
    pair = pair & ~torch.eye(M, dtype=torch.bool, device=zs.device)
    return masked_mean(cos2, pair)
