"""per_condition_models end to end: ebmc-train trains one model per modality subset, skips them on rerun, evaluates them."""
import json

import pytest

from ebmc.train.cli import main
from ebmc.train.protocols.missing import condition_run_dir
from ebmc.train.runs import load_run

from .helpers import tiny_store

TINY = ["--model.hidden_dim", "8", "--model.max_steps", "4", "--model.encoder_layers", "1",
        "--model.encoder_heads", "2", "--model.encoder_ff_mult", "1", "--train.batch_size", "12",
        "--train.stage1_epochs", "1", "--train.stage2_epochs", "1", "--train.device", "cpu", "--no-progress"]
SUBSETS = [("text",), ("audio",), ("vision",), ("text", "audio"), ("text", "vision"), ("audio", "vision")]


def test_cli_trains_skips_and_evaluates_one_model_per_condition(tmp_path, capsys):
    store = tiny_store(tmp_path / "store")
    argv = [str(store), "--out", str(tmp_path / "runs"), "--seeds", "3", "--protocols", "missing",
            "--protocol.per_condition_models", "true", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) trained" in printed and "6 per-condition model(s) trained, 0 already finished" in printed
    run = tmp_path / "runs" / "tiny" / "full" / "seed-3"
    parent = json.loads((run / "config.json").read_text())["config"]
    stamps = {}
    for subset in SUBSETS:
        folder = condition_run_dir(run, subset)
        model, cfg, data = load_run(folder)
        assert data.modalities == subset and model.modalities == subset
        # the parent's config (seed, schedule, model) with only the modalities changed
        assert cfg.data.modalities == subset and cfg.train.seed == 3 and cfg.train.stage1_epochs == 1
        assert cfg.model.hidden_dim == parent["model"]["hidden_dim"] == 8
        stamps[folder] = (folder / "model.pt").stat().st_mtime_ns
    result = json.loads((run / "protocols" / "missing.json").read_text())
    assert result["per_condition_models"] is True
    assert [(c["name"], c["run"]) for c in result["conditions"]] == [
        ("+".join(s), f"conditions/{'+'.join(s)}") for s in SUBSETS]
    # each condition is scored by its own model: the metrics of that run's test split
    for c, subset in zip(result["conditions"], SUBSETS):
        own = json.loads((condition_run_dir(run, subset) / "metrics.json").read_text())["test"]
        assert c["metrics"] == pytest.approx(own, nan_ok=True)
    assert result["mean"]["mae"] == pytest.approx(sum(c["metrics"]["mae"] for c in result["conditions"]) / 6)
    # rerun: the run and its condition models are finished, nothing is trained again
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "0 run(s) trained" in printed and "0 per-condition model(s) trained, 6 already finished" in printed
    assert all((f / "model.pt").stat().st_mtime_ns == t for f, t in stamps.items())
