"""Batch transforms a training run applies: augmentation, Table 5 validation drops, stage-II condition masks."""
from __future__ import annotations

import torch

from ..config import TrainConfig
from .frames import frame_drop, random_frame_drop
from .missing import Transform, keep_only


def _chain(*transforms: Transform | None) -> Transform | None:
    """The given transforms applied in order (None: no transform at all)."""
    steps = [t for t in transforms if t is not None]
    if not steps:
        return None

    def apply(batch):
        for step in steps:
            batch = step(batch)
        return batch
    return apply


def _condition(cfg: TrainConfig, stage: int) -> Transform | None:
    """Stage II of a per-condition model (Table 3, authors' protocol) sees only its modalities."""
    return keep_only(cfg.stage2_modalities) if stage == 2 and cfg.stage2_modalities else None


def train_transform(cfg: TrainConfig, stage: int, generator: torch.Generator) -> Transform | None:
    """What each training batch of ``stage`` goes through: the condition's mask, then the
    augmentation (``robust_augment``, drawn from the run's ``generator``)."""
    augment = random_frame_drop(cfg.augment_rates, generator, cfg.augment_scheme) if cfg.robust_augment else None
    return _chain(_condition(cfg, stage), augment)


def eval_transform(cfg: TrainConfig, stage: int, split: str) -> Transform | None:
    """What each evaluation batch goes through: the condition's mask in stage II, and on the
    validation split the deterministic frame drop of ``select_drop_rate`` (Table 5 selection)."""
    drop = None
    if split == "valid" and cfg.select_drop_rate is not None:
        drop = frame_drop(cfg.select_drop_rate, cfg.seed)
    return _chain(_condition(cfg, stage), drop)
