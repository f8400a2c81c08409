"""per_condition_models end to end: ebmc-train trains one model per modality subset, skips them on rerun, evaluates them."""
import json

import pandas as pd
import pytest
from ebmc.train.cli import main
from ebmc.train.config import DataConfig
from ebmc.train.protocols.missing import condition_run_dir
from ebmc.train.runs import load_run, read_history

from .helpers import tiny_store

TINY = ["--model.hidden_dim", "8", "--model.max_steps", "4", "--model.encoder_layers", "1",
        "--model.encoder_heads", "2", "--model.encoder_ff_mult", "1", "--train.batch_size", "12",
        "--train.stage1_epochs", "1", "--train.stage2_epochs", "1", "--train.device", "cpu", "--no-progress"]
SUBSETS = [("text",), ("audio",), ("vision",), ("text", "audio"), ("text", "vision"), ("audio", "vision")]


def test_cli_trains_skips_and_evaluates_one_model_per_condition(tmp_path, capsys):
    """The "whole" mode: both stages on the subset's features only."""
    store = tiny_store(tmp_path / "store")
    argv = [str(store), "--out", str(tmp_path / "runs"), "--seeds", "3", "--protocols", "missing",
            "--protocol.per_condition_models", "true", "--protocol.per_condition_mode", "whole", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) trained" in printed and "6 per-condition model(s) trained, 0 already finished" in printed
    run = tmp_path / "runs" / "tiny" / "full" / "seed-3"
    parent = json.loads((run / "config.json").read_text())["config"]
    stamps = {}
    for subset in SUBSETS:
        folder = condition_run_dir(run, subset, "whole")
        model, cfg, data = load_run(folder)
        assert data.modalities == subset and model.modalities == subset
        # the parent's config (seed, schedule, model) with only the modalities changed
        assert cfg.data.modalities == subset and cfg.train.seed == 3 and cfg.train.stage1_epochs == 1
        assert cfg.model.hidden_dim == parent["model"]["hidden_dim"] == 8
        stamps[folder] = (folder / "model.pt").stat().st_mtime_ns
    result = json.loads((run / "protocols" / "missing.json").read_text())
    assert result["per_condition_models"] is True and result["per_condition_mode"] == "whole"
    assert [(c["name"], c["run"]) for c in result["conditions"]] == [
        ("+".join(s), f"conditions/whole/{'+'.join(s)}") for s in SUBSETS]
    # each condition is scored by its own model: the metrics of that run's test split
    for c, subset in zip(result["conditions"], SUBSETS):
        own = json.loads((condition_run_dir(run, subset, "whole") / "metrics.json").read_text())["test"]
        assert c["metrics"] == pytest.approx(own, nan_ok=True)
    assert result["mean"]["mae"] == pytest.approx(sum(c["metrics"]["mae"] for c in result["conditions"]) / 6)
    # rerun: the run and its condition models are finished, nothing is trained again
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "0 run(s) trained" in printed and "0 per-condition model(s) trained, 6 already finished" in printed
    assert all((f / "model.pt").stat().st_mtime_ns == t for f, t in stamps.items())


def test_authors_mode_masks_the_condition_in_stage_two_only(tmp_path, capsys):
    """The default "stage2" mode: stage I of each condition model is the parent's (all modalities, same
    seed), stage II trains with the condition's modalities only; the report names the mode."""
    from ebmc.train.report.build import build_report
    store = tiny_store(tmp_path / "store")
    argv = [str(store), "--out", str(tmp_path / "runs"), "--seeds", "3", "--protocols", "missing",
            "--protocol.per_condition_models", "true", *TINY]
    assert main(argv) == 0
    run = tmp_path / "runs" / "tiny" / "full" / "seed-3"
    parent = read_history(run)
    for subset in (("text",), ("audio", "vision")):
        folder = condition_run_dir(run, subset, "stage2")
        model, cfg, data = load_run(folder)
        assert data.modalities == model.modalities == ("text", "audio", "vision")
        assert cfg.train.stage2_modalities == subset and cfg.data == DataConfig()
        history = read_history(folder)
        stage1 = history[history.stage == 1].drop(columns="seconds").reset_index(drop=True)
        stage2 = history[history.stage == 2].drop(columns="seconds").reset_index(drop=True)
        pd.testing.assert_frame_equal(stage1, parent[parent.stage == 1].drop(columns="seconds").reset_index(drop=True))
        assert not stage2.equals(parent[parent.stage == 2].drop(columns="seconds").reset_index(drop=True))
    result = json.loads((run / "protocols" / "missing.json").read_text())
    assert result["per_condition_mode"] == "stage2"
    assert result["conditions"][0]["run"] == "conditions/stage2/text"
    report = build_report(tmp_path / "runs").read_text()
    assert "one model per condition, stage I on all modalities and stage II with the others masked" in report
