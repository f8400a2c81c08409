"""Settings of the robustness protocols (one frozen dataclass) and the protocol names they select."""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

from ebmc.store.errors import ConfigError
from ebmc.store.fingerprint import setting

#: Every protocol ``run_protocols`` knows, in the order they run (``all`` selects these).
PROTOCOLS = ("full", "missing", "frame_drop", "missing_rate", "contribution", "embedding")

_TENTHS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """How a trained run is evaluated under missing data (docs/protocols.md). CLI flags: ``--protocol.<field>``.

    The training-time augmentation is ``TrainConfig.robust_augment``: it changes the trained model,
    so it belongs to the run's config and fingerprint."""

    names: tuple[str, ...] = setting(PROTOCOLS, f"protocols to run after training: any of {', '.join(PROTOCOLS)}")
    split: Literal["test", "valid"] = setting("test", "split the protocols evaluate")
    rates: tuple[float, ...] = setting(
        _TENTHS, "drop rates of frame_drop (intra-modality) and missing_rate (modality) curves")
    text_drop_mode: Literal["zero", "unk"] = setting(
        "zero", "frame_drop on text: zero the token features (authors' code) or replace ids by [UNK] and "
                "re-encode (LNLN; needs token_ids and the text model)")
    mask_seed: int = setting(0, "seed of the deterministic drop masks; the same for every run so that "
                                "models are compared on identical corruptions")
    per_condition_models: bool = setting(
        False, "missing: train (ebmc-train) and evaluate one model per modality subset in "
               "<run>/conditions/<mode>/<subset>/ (authors' protocol) instead of one model under all conditions")
    per_condition_mode: Literal["stage2", "whole"] = setting(
        "stage2", "how a per-condition model trains: stage2 (authors' protocol): stage I on all modalities, "
                  "stage II with the others masked; whole: both stages on the subset's features only")
    embedding_points: int = setting(1000, "embedding: at most this many fused vectors kept for the t-SNE plot")
    text_model: str = setting("", "unk mode: local folder of the text model that made the features "
                                  "(default: the one recorded at extraction)", run_only=True)
    text_model_device: str = setting("cpu", "device of the text model that re-encodes text in unk mode",
                                     run_only=True)


def resolve_names(names: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` or names (a comma-separated string or a sequence) -> known protocol names, in run order."""
    wanted = [n for part in ([names] if isinstance(names, str) else names) for n in str(part).split(",") if n]
    if "all" in wanted:
        return PROTOCOLS
    unknown = [n for n in wanted if n not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {', '.join(unknown)}: use 'all' or any of {', '.join(PROTOCOLS)}")
    return tuple(n for n in PROTOCOLS if n in wanted)
