"""The EBMC model package: configs, the model and its output (see ebmc.train.model.ebmc)."""
from .config import LossConfig, ModelConfig
from .ebmc import EBMC, TERM_NAMES, ModelOutput

__all__ = ["EBMC", "LossConfig", "ModelConfig", "ModelOutput", "TERM_NAMES"]
