"""The training batch and task description shared by data loading, the model and the protocols."""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

# Standard deviations below this are treated as 1 (data's input statistics, the model's normaliser):
# a constant feature carries no information.
MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What is predicted: ``kind`` regression (one value), classification (``n_classes`` logits)
    or multilabel (one-vs-rest: ``len(label_names)`` binary heads). Comes from the store."""

    kind: Literal["regression", "classification", "multilabel"]
    n_classes: int = 1
    class_names: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ()

    @property
    def n_outputs(self) -> int:
        """Width of the prediction: 1, K classes, or K labels (each with 2 logits)."""
        if self.kind == "regression":
            return 1
        if self.kind == "classification":
            return self.n_classes
        return len(self.label_names)


@dataclasses.dataclass
class Batch:
    """A batch of utterances; per-modality dicts hold only the modalities the model uses.

    x[m]: (B, T_m, d_m) float; mask[m]: (B, T_m) bool, True = valid step; present[m]: (B,) bool.
    A modality absent for a sample has present False, an all-False mask row and zeroed x.
    y: (B,) float (regression) | (B,) long (classification) | (B, K) long (multilabel) | None.
    index: (B,) long rows of the store's utterance table. token_ids: (B, T_text) long or None
    (kept for the [UNK] text protocol).
    """

    x: dict[str, Tensor]
    mask: dict[str, Tensor]
    present: dict[str, Tensor]
    y: Tensor | None
    index: Tensor
    token_ids: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.x)

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda d: {k: v.to(device, non_blocking=True) for k, v in d.items()}  # noqa: E731
        return Batch(move(self.x), move(self.mask), move(self.present),
                     None if self.y is None else self.y.to(device), self.index.to(device),
                     None if self.token_ids is None else self.token_ids.to(device))

    def without(self, modality: str, rows: Tensor | None = None) -> "Batch":
        """A copy where ``modality`` is absent (for ``rows``, a (B,) bool tensor, or all samples)."""
        rows = torch.ones(self.size, dtype=torch.bool, device=self.index.device) if rows is None else rows
        x, mask, present = dict(self.x), dict(self.mask), dict(self.present)
        x[modality] = torch.where(rows[:, None, None], torch.zeros_like(x[modality]), x[modality])
        mask[modality] = mask[modality] & ~rows[:, None]
        present[modality] = present[modality] & ~rows
        return dataclasses.replace(self, x=x, mask=mask, present=present)
