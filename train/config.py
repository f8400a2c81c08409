"""Defaults of a training run: frozen ``DataConfig``, ``TrainConfig`` and the composed ``RunConfig``."""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Literal

from ebmc.store.errors import ConfigError, raise_if
from ebmc.store.fingerprint import setting
from ebmc.store.schema import MODALITIES
from ebmc.train.model.config import LossConfig, ModelConfig, model_config

log = logging.getLogger(__name__)

# Paper App. A.2: batch size and epochs of stage I + stage II per dataset family; CH-SIMS (not in
# the paper) and unknown datasets use the "other" row. --train.family picks the family; "auto"
# matches the store's dataset name (see dataset_family).
OTHER_SCHEDULE = {"batch_size": 32, "stage1_epochs": 100, "stage2_epochs": 100}
PAPER_SCHEDULE: dict[str, dict[str, int]] = {
    "mosi": {"batch_size": 64, "stage1_epochs": 150, "stage2_epochs": 150},
    "mosei": {"batch_size": 32, "stage1_epochs": 100, "stage2_epochs": 100},
    "iemocap": {"batch_size": 16, "stage1_epochs": 150, "stage2_epochs": 150},
    "sims": OTHER_SCHEDULE,
    "other": OTHER_SCHEDULE,
}
# Name parts matched in this order: mosei before mosi (both start with "mos").
NAMED_FAMILIES = ("mosei", "mosi", "iemocap", "sims")


def _problems(cfg: Any, section: str, rules: dict[str, tuple[float | None, float | None, bool]]) -> list[str]:
    """Range problems of numeric fields: rules[name] = (low, high, low_exclusive); None = unbounded."""
    out = []
    for name, (low, high, low_excl) in rules.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"--{section}.{name} = {value}: must be a finite number")
        elif low is not None and (value <= low if low_excl else value < low):
            out.append(f"--{section}.{name} = {value}: must be {'>' if low_excl else '>='} {low}")
        elif high is not None and value > high:
            out.append(f"--{section}.{name} = {value}: must be <= {high}")
    return out


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which features of the store a run reads, and how they are checked."""

    modalities: tuple[str, ...] = setting((), "modalities to train on, a non-empty subset of text audio "
                                             "vision (empty: every modality the store has)")
    features: str = setting("", "feature-set variant of the store: '' the default (unaligned) sets, 'aligned' "
                                "the word-aligned ones (ebmc-extract --align words)")
    max_len_text: int | None = setting(None, "cut text sequences after this many steps (none: longest in store)")
    max_len_audio: int | None = setting(None, "cut audio sequences after this many frames (none: longest in store)")
    max_len_vision: int | None = setting(None, "cut vision sequences after this many frames (none: longest in store)")
    label_min: float = setting(-3.0, "regression labels must lie in [label_min, label_max] (MOSI/MOSEI: -3..3)")
    label_max: float = setting(3.0, "upper end of the regression label range")

    def __post_init__(self) -> None:
        problems = [f"--data.modalities: unknown modality {m!r}; use a subset of {' '.join(MODALITIES)}"
                    for m in self.modalities if m not in MODALITIES]
        if len(set(self.modalities)) != len(self.modalities):
            problems.append(f"--data.modalities = {' '.join(self.modalities)}: names a modality twice")
        problems += _problems(self, "data", {f"max_len_{m}": (1, None, False) for m in MODALITIES})
        problems += _problems(self, "data", {"label_min": (None, None, False), "label_max": (None, None, False)})
        if self.label_min >= self.label_max:
            problems.append(f"--data.label_min = {self.label_min} must be below --data.label_max = {self.label_max}")
        raise_if(problems, "invalid DataConfig", ConfigError)

    def max_len(self, modality: str) -> int | None:
        return getattr(self, f"max_len_{modality}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule and model selection (docs/training.md). None = the paper's per-dataset default."""

    batch_size: int | None = setting(None, "training batch size (none: paper default, MOSI 64 / MOSEI 32 / "
                                          "IEMOCAP 16 / other 32)")
    stage1_epochs: int | None = setting(None, "epochs of stage I (none: paper default, MOSI 150 / MOSEI 100 / "
                                             "IEMOCAP 150 / other 100)")
    stage2_epochs: int | None = setting(None, "epochs of stage II (none: paper default, as stage I)")
    lr: float = setting(1e-4, "Adam learning rate (both stages; stage II starts a fresh optimiser)")
    weight_decay: float = setting(1e-5, "Adam weight decay")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this value (0: no clipping)")
    patience: int = setting(0, "early stopping: end a stage after this many epochs without a better "
                              "validation score (0: off, run every epoch)")
    select_metric: str | None = setting(None, "validation metric for model selection (none: valid MAE for "
                                             "regression, weighted F1 for classification)")
    freeze_encoders: bool = setting(False, "stage II keeps the modality encoders frozen at their stage-I weights")
    bf16: bool = setting(True, "bf16 autocast on CUDA (ignored on CPU, which always computes in float32)")
    family: Literal["auto", "mosi", "mosei", "iemocap", "sims", "other"] = setting(
        "auto", "dataset family that sets the schedule defaults (App. A.2) and the regression metric variant "
                "(sims: CH-SIMS bins on [-1, 1]; else MMSA's MOSI ones); auto: from the store's dataset name, logged")
    seed: int = setting(1111, "seed of initialisation, shuffling and noise (ebmc-train --seeds sets it per run)")
    robust_augment: bool = setting(False, "frame-drop augmentation of training batches (features zeroed, mask "
                                         "kept; text keeps its first and last token), scheme augment_scheme. Off: "
                                         "the paper's Table 1-4 models; its Table 5 models train with it on "
                                         "(ablation name table5)")
    augment_scheme: Literal["rates", "lnln"] = setting("rates", "rates (ours): each sample and modality draws a "
                                                                "rate from augment_rates; lnln (LNLN, the paper's "
                                                                "Table 5): each sample draws one rate, 0 with "
                                                                "probability 0.5, else uniform on [0, 1]")
    augment_rates: tuple[float, ...] = setting((0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
                                              "frame-drop rates the rates scheme draws from, each in [0, 1]")
    select_drop_rate: float | None = setting(None, "model selection on the validation split with every valid "
                                                  "frame dropped at this rate (deterministic masks of the run's "
                                                  "seed; none: clean validation; the paper's Table 5: 0.5)")
    stage2_modalities: tuple[str, ...] = setting((), "stage II trains, validates and tests with only these "
                                                     "modalities present (the others masked); empty: all. The "
                                                     "per-condition models of Table 3 set it (authors' protocol)")
    eval_batch_size: int = setting(2048, "validation and test run as one pass over the split up to this many "
                                         "samples (larger splits in batches of it; bounds their memory)",
                                   run_only=True)
    device: str = setting("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N", run_only=True)

    def __post_init__(self) -> None:
        problems = _problems(self, "train", {
            "batch_size": (1, None, False), "stage1_epochs": (1, None, False), "stage2_epochs": (1, None, False),
            "lr": (0, None, True), "weight_decay": (0, None, False), "grad_clip": (0, None, False),
            "patience": (0, None, False), "eval_batch_size": (1, None, False)})
        if not self.augment_rates:
            problems.append("--train.augment_rates is empty: give at least one rate in [0, 1]")
        problems += [f"--train.augment_rates: {r} is not in [0, 1]" for r in self.augment_rates
                     if not (isinstance(r, (int, float)) and 0 <= r <= 1)]
        if self.select_drop_rate is not None and not 0 <= self.select_drop_rate <= 1:
            problems.append(f"--train.select_drop_rate = {self.select_drop_rate}: must be in [0, 1]")
        problems += [f"--train.stage2_modalities: unknown modality {m!r}; use a subset of {' '.join(MODALITIES)}"
                     for m in self.stage2_modalities if m not in MODALITIES]
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"--train.device = {self.device!r}: use auto, cpu, cuda or cuda:N")
        raise_if(problems, "invalid TrainConfig", ConfigError)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run; ``ablation`` names the overrides applied."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    ablation: str = "full"


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def dataset_family(dataset: str) -> str:
    """The family a store's dataset name names ("mosei", "mosi", "iemocap", "sims"), else "other"."""
    name = dataset.lower()
    return next((key for key in NAMED_FAMILIES if key in name), "other")


def metric_variant(family: str) -> str:
    """The regression metric definition of a family: "sims" for CH-SIMS, else "mmsa" (MOSI / MOSEI)."""
    return "sims" if family == "sims" else "mmsa"


def resolve(cfg: RunConfig, dataset: str) -> RunConfig:
    """``cfg`` with its family chosen (``train.family`` no longer "auto") and every None schedule field
    replaced by that family's paper default; logs the choice, and warns when the name matched nothing."""
    family = dataset_family(dataset) if cfg.train.family == "auto" else cfg.train.family
    why = ("--train.family" if cfg.train.family != "auto" else
           f"dataset name {dataset!r} contains {family!r}" if family != "other" else
           f"dataset name {dataset!r} contains none of {', '.join(NAMED_FAMILIES)}")
    defaults = PAPER_SCHEDULE[family]
    filled = {k: v for k, v in defaults.items() if getattr(cfg.train, k) is None}
    resolved = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, family=family, **filled))
    t = resolved.train
    message = (f"dataset family {family} ({why}): batch {t.batch_size}, {t.stage1_epochs} + {t.stage2_epochs} "
               f"epochs, {metric_variant(family).upper()} regression metrics")
    if cfg.train.family == "auto" and family == "other":
        log.warning("%s; these are the defaults for unknown datasets: set --train.family (or the schedule "
                    "flags) if the store holds a known benchmark", message)
    else:
        log.info("%s", message)
    return resolved


def to_dict(cfg: RunConfig) -> dict:
    """Plain nested dict of every field (run-only ones included), for config.json."""
    return dataclasses.asdict(cfg)


def section_values(name: str, cls: type, values: dict) -> tuple[dict, list[str]]:
    """The fields of dataclass ``cls`` in one config section (JSON / TOML lists as tuples), and one
    problem per unknown key, naming it and the valid ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    problems = [f"unknown setting {name}.{k}; valid: {', '.join(sorted(known))}" for k in values if k not in known]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}, problems


def from_dict(raw: dict) -> RunConfig:
    """Inverse of ``to_dict``; unknown keys are an error naming them (a file from another version)."""
    problems, sections = [], {}
    for key in raw:
        if key not in SECTIONS and key != "ablation":
            problems.append(f"unknown section {key!r}; valid: {', '.join(SECTIONS)}, ablation")
    for name, cls in SECTIONS.items():
        sections[name], unknown = section_values(name, cls, dict(raw.get(name, {})))
        problems += unknown
    raise_if(problems, "invalid run config", ConfigError)
    return RunConfig(**{name: build_section(name, values) for name, values in sections.items()},
                     ablation=raw.get("ablation", "full"))


def build_section(name: str, values: dict) -> Any:
    """Section ``name`` of a RunConfig from the settings given; the model section starts from its
    ``preset`` (the given settings override the preset's)."""
    return model_config(values) if name == "model" else SECTIONS[name](**values)
