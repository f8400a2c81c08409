"""Settings of the robustness protocols and of the optional robustness augmentation (one frozen dataclass)."""
from __future__ import annotations

import dataclasses
from typing import Literal

from ebmc.store.fingerprint import run_only

#: Every protocol ``run_protocols`` knows, in the order they run (``all`` selects these).
PROTOCOLS = ("full", "missing", "frame_drop", "missing_rate", "contribution", "embedding")

_TENTHS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """How a trained run is evaluated under missing data (spec section 5), and the training-time
    augmentation switch. CLI flags: ``--protocol.<field>``."""

    names: tuple[str, ...] = dataclasses.field(
        default=PROTOCOLS, metadata={"help": f"protocols to run after training: any of {', '.join(PROTOCOLS)}"})
    split: Literal["test", "valid"] = dataclasses.field(
        default="test", metadata={"help": "split the protocols evaluate"})
    rates: tuple[float, ...] = dataclasses.field(
        default=_TENTHS, metadata={"help": "drop rates of frame_drop (intra-modality) and missing_rate (modality) curves"})
    text_drop_mode: Literal["zero", "unk"] = dataclasses.field(
        default="zero", metadata={"help": "frame_drop on text: zero the token features (authors' code) or "
                                          "replace ids by [UNK] and re-encode (LNLN; needs token_ids and the text model)"})
    mask_seed: int = dataclasses.field(
        default=0, metadata={"help": "seed of the deterministic drop masks; the same for every run so that "
                                     "models are compared on identical corruptions"})
    per_condition_models: bool = dataclasses.field(
        default=False, metadata={"help": "missing: evaluate one model trained per modality subset "
                                         "(<run>/conditions/<subset>/, authors' code) instead of one model under all conditions"})
    embedding_points: int = dataclasses.field(
        default=1000, metadata={"help": "embedding: at most this many fused vectors kept for the t-SNE plot"})
    robust_augment: bool = dataclasses.field(
        default=False, metadata={"help": "training: drop frames at a random per-sample, per-modality rate (off = paper)"})
    augment_rates: tuple[float, ...] = dataclasses.field(
        default=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), metadata={"help": "training: the rates robust_augment draws from"})
    text_model: str = run_only(
        default="", metadata={"help": "unk mode: local folder of the text model that made the features "
                                      "(default: the one recorded at extraction)"})
    text_model_device: str = run_only(
        default="cpu", metadata={"help": "device of the text model that re-encodes text in unk mode"})
