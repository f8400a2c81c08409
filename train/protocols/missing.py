"""Missing-modality conditions (Table 3) and random modality-missing rates (Fig. 7/8) as batch transforms."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Sequence

from ebmc.store.schema import MODALITIES

from ..batch import Batch
from .masks import modality_drop_mask

Transform = Callable[[Batch], Batch]


def conditions(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty proper subset of ``modalities``, singles first, in canonical order.

    ('text', 'audio', 'vision') -> (text), (audio), (vision), (text, audio), (text, vision), (audio, vision).
    A one-modality run has no proper subset: [] (nothing can be removed).
    """
    ordered = [m for m in MODALITIES if m in modalities]
    return [c for k in range(1, len(ordered)) for c in itertools.combinations(ordered, k)]


def condition_name(subset: Sequence[str]) -> str:
    """Stable name of a condition, also its folder name: ``text+audio``."""
    return "+".join(m for m in MODALITIES if m in subset)


def condition_run_dir(run_dir: str | Path, subset: Sequence[str], mode: str) -> Path:
    """Where ``per_condition_models`` keeps the model of condition ``subset`` trained in ``mode``
    (``ProtocolConfig.per_condition_mode``): ``<run_dir>/conditions/<mode>/<text+audio>/``, a run dir of its own."""
    return Path(run_dir) / "conditions" / mode / condition_name(subset)


def keep_only(subset: Sequence[str]) -> Transform:
    """Transform making every modality outside ``subset`` absent (masked, present False, x zeroed)."""
    def apply(batch: Batch) -> Batch:
        for m in batch.modalities:
            if m not in subset:
                batch = batch.without(m)
        return batch
    return apply


def random_missing(rate: float, seed: int) -> Transform:
    """Transform making each (sample, modality) absent with probability ``rate``, at least one kept.

    Deterministic per (store row, modality, seed); see ``masks.modality_drop_mask``.
    """
    def apply(batch: Batch) -> Batch:
        drop = modality_drop_mask(batch.present, batch.index, rate, seed)
        for m, rows in drop.items():
            batch = batch.without(m, rows)
        return batch
    return apply
