"""Run-config sections read from JSON / TOML, and config errors that name the flag to fix."""
import pytest

from ebmc.train.config import TrainConfig, section_values
from ebmc.train.model.config import LossConfig, ModelConfig


def test_section_values_keeps_known_fields_as_tuples_and_names_unknown_ones():
    values, problems = section_values("train", TrainConfig, {"augment_rates": [0.0, 0.5], "lr": 0.01, "lrr": 1})
    assert values == {"augment_rates": (0.0, 0.5), "lr": 0.01}
    assert len(problems) == 1 and problems[0].startswith("unknown setting train.lrr; valid: augment_rates, augment_scheme, batch_size")
    assert section_values("train", TrainConfig, {}) == ({}, [])


@pytest.mark.parametrize("make, named", [
    (lambda: ModelConfig(hidden_dim=10, encoder_heads=4), "--model.hidden_dim = 10 is not divisible by "
                                                           "--model.encoder_heads = 4"),
    (lambda: ModelConfig(tau=0.0), "--model.tau = 0.0: a temperature must be > 0"),
    (lambda: LossConfig(eta=-1.0), "--loss.eta = -1.0: must be >= 0"),
])
def test_model_and_loss_errors_name_the_flag(make, named):
    with pytest.raises(ValueError, match="invalid (Model|Loss)Config") as err:
        make()
    assert named in str(err.value)
