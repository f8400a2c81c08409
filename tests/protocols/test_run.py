"""run_protocols end to end on a tiny trained run: one result file per protocol, means over rates."""
import json

import numpy as np
import pytest

from ebmc.train.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ebmc.train.data import load_data
from ebmc.train.protocols.config import PROTOCOLS, ProtocolConfig
from ebmc.train.protocols.run import mean_over, resolve_names, run_protocols
from ebmc.train.runs import execute

from .helpers import tiny_store


def test_resolve_names_and_mean_over():
    assert resolve_names("all") == PROTOCOLS
    assert resolve_names("missing_rate,full") == ("full", "missing_rate")
    with pytest.raises(ValueError, match="bogus"):
        resolve_names(["full", "bogus"])
    rows = [{"metrics": {"mae": 1.0, "corr": 0.5}}, {"metrics": {"mae": 2.0, "corr": None}}]
    assert mean_over(rows) == {"mae": 1.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    tiny_store(tmp / "store")
    cfg = RunConfig(model=ModelConfig(hidden_dim=8, encoder_heads=2, encoder_layers=1, max_steps=4),
                    train=TrainConfig(batch_size=12, stage1_epochs=1, stage2_epochs=1, device="cpu"))
    folder, _, _ = execute(load_data(tmp / "store", DataConfig()), cfg, tmp / "runs", progress=False)
    return folder


def test_run_protocols_writes_every_result(trained):
    cfg = ProtocolConfig(rates=(0.0, 0.5), embedding_points=5)
    written = run_protocols(trained, "all", cfg)
    assert set(written) == set(PROTOCOLS)
    res = {k: json.loads(p.read_text()) for k, p in written.items()}
    assert res["full"]["run"]["dataset"] == "tiny" and res["full"]["split"] == "test"
    assert [c["name"] for c in res["missing"]["conditions"]] == ["text", "audio", "vision", "text+audio",
                                                                  "text+vision", "audio+vision"]
    fd = res["frame_drop"]
    assert fd["mean"]["mae"] == pytest.approx(np.mean([c["metrics"]["mae"] for c in fd["conditions"]]))
    # rate 0 drops nothing: the same metrics as the full test set
    assert fd["conditions"][0]["metrics"] == pytest.approx(res["full"]["metrics"], nan_ok=True)
    assert res["missing_rate"]["conditions"][0]["metrics"] == pytest.approx(res["full"]["metrics"], nan_ok=True)
    assert sum(res["contribution"]["share"].values()) == pytest.approx(1.0)
    assert len(res["embedding"]["fused"]) == 5


def test_per_condition_models_lists_every_missing_run(trained):
    from ebmc.store import StoreError
    with pytest.raises(StoreError) as err:
        run_protocols(trained, "missing", ProtocolConfig(per_condition_models=True))
    assert str(err.value).count("no trained run for condition") == 6
