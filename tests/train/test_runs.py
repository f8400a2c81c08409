"""Run folders: files written, resume after a kill, skipping finished runs, load_run, ablations, summary."""
import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from ebmc.store import StoreError
from ebmc.train.ablations import ABLATIONS, apply_ablation, expand_names
from ebmc.train.config import DataConfig, RunConfig, TrainConfig
from ebmc.train.data import load_data
from ebmc.train.grid import run_grid
from ebmc.train.loop import evaluate
from ebmc.train.model import ModelConfig
from ebmc.train.runs import execute, load_run, read_history
from ebmc.train.report.summary import write_summary

CFG = RunConfig(data=DataConfig(max_len_audio=30, max_len_vision=30),
                model=ModelConfig(hidden_dim=8, max_steps=4, encoder_layers=1, encoder_heads=2, encoder_ff_mult=1),
                train=TrainConfig(batch_size=16, stage1_epochs=2, stage2_epochs=2, seed=7))


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from ebmc.extract.importers.synthetic import make_synthetic
    return make_synthetic(tmp_path_factory.mktemp("syn") / "mosi", like="mosi", seed=0, n_train=48)


@pytest.fixture(scope="module")
def data(store):
    return load_data(store, CFG.data, "cpu")


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """One uninterrupted run: (out, folder, metrics, skipped)."""
    out = tmp_path_factory.mktemp("whole")
    return (out, *execute(data, CFG, out, progress=False))


def test_run_folder_files(data, finished):
    out, folder, metrics, skipped = finished
    assert not skipped and folder == out / "synthetic-mosi" / "full" / "seed-7"
    assert {p.name for p in folder.iterdir()} == {"config.json", "env.json", "history.csv", "model.pt", "metrics.json"}
    record = json.loads((folder / "config.json").read_text())
    assert record["store"]["fingerprints"] == data.fingerprints and set(data.fingerprints) == {"text", "audio", "vision"}
    assert record["config"]["train"]["stage1_epochs"] == 2 and record["config"]["train"]["batch_size"] == 16
    env = json.loads((folder / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and "git_commit" in env
    history = read_history(folder)
    assert list(zip(history.stage, history.epoch)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert {"train_loss", "train_emc", "train_imtd", "valid_mae", "valid_corr"} <= set(history.columns)
    assert (history[history.stage == 1].train_imtd == 0).all() and (history[history.stage == 2].train_emc > 0).all()
    assert set(metrics) >= {"valid", "test", "selected"} and metrics == json.loads((folder / "metrics.json").read_text())
    assert metrics["valid"]["mae"] == history[history.stage == 2].valid_mae.min()
    torch.load(folder / "model.pt", weights_only=True)
    model, cfg, loaded = load_run(folder)
    # the recorded config is resolved: the family the store's name matched is explicit
    assert not model.training and cfg == dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, family="mosi"))
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert evaluate(model, loaded, "test") == pytest.approx(metrics["test"])


def test_rerun_skips_and_other_config_is_refused(data, finished):
    tmp_path, folder, metrics, _ = finished
    stamp = (folder / "model.pt").stat().st_mtime_ns
    again, metrics2, skipped = execute(data, CFG, tmp_path, progress=False)
    assert skipped and again == folder and metrics2 == metrics and (folder / "model.pt").stat().st_mtime_ns == stamp
    changed = dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, lr=1e-3))
    with pytest.raises(StoreError, match="another config") as err:
        execute(data, changed, tmp_path, progress=False)
    assert "train.lr: 0.0001 -> 0.001" in str(err.value)
    # run-only settings (device, eval batch size) do not make it another run
    assert execute(data, dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, eval_batch_size=3)),
                   tmp_path, progress=False)[2]


def test_resume_after_kills_matches_uninterrupted(data, finished, tmp_path):
    """Killed after epoch 1 (stage I), resumed, killed after epoch 3 (stage II), resumed: same result."""
    _, whole, expected, _ = finished
    folder = tmp_path / "synthetic-mosi" / "full" / "seed-7"
    for kill_after in (1, 3):
        def kill(state):
            if len(state.history) == kill_after and state.epoch > 0:
                raise Killed

        with pytest.raises(Killed):
            execute(data, CFG, tmp_path, on_epoch=kill, progress=False)
        assert (folder / "resume.pt").exists() and not (folder / "metrics.json").exists()
        assert len(read_history(folder)) == kill_after
    epochs_run = []
    _, resumed, skipped = execute(data, CFG, tmp_path, progress=False,
                                  on_epoch=lambda s: epochs_run.append((s.stage, s.epoch)))
    assert not skipped and resumed == expected
    assert [e for e in epochs_run if e[1] > 0] == [(2, 2)]
    assert not (folder / "resume.pt").exists()
    pd.testing.assert_frame_equal(read_history(whole).drop(columns="seconds"),
                                  read_history(folder).drop(columns="seconds"))


def test_ablations_change_the_config_as_intended():
    expected = {"full": {}, "no_msd": {"use_msd": False}, "no_cce": {"use_cce": False},
                "no_emc": {"use_emc": False}, "no_imtd": {"use_imtd": False, "trust_fusion": False},
                "emc_no_norm": {"emc_a": 0.0}, "emc_no_task": {"emc_b": 0.0}, "emc_no_uncertainty": {"emc_c": 0.0},
                "table5": {}}
    assert set(ABLATIONS) == set(expected)
    base = RunConfig()
    table5 = dataclasses.replace(base.train, robust_augment=True, augment_scheme="lnln", select_drop_rate=0.5)
    for name, fields in expected.items():
        cfg = apply_ablation(base, name)
        assert cfg.ablation == name and cfg.data == base.data and cfg.loss == base.loss
        assert cfg.train == (table5 if name == "table5" else base.train)
        changed = {f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(ModelConfig)
                   if getattr(cfg.model, f.name) != getattr(base.model, f.name)}
        assert changed == fields, name
    with pytest.raises(ValueError, match="unknown ablation 'no_foo'; valid: full no_msd no_cce no_emc no_imtd "
                                         "emc_no_norm emc_no_task emc_no_uncertainty"):
        apply_ablation(base, "no_foo")


def test_sweeps_set_one_loss_weight_and_the_preset_expands():
    base = RunConfig()
    cfg = apply_ablation(base, "eta=1e-2")
    assert cfg.ablation == "eta=0.01" and cfg.loss == dataclasses.replace(base.loss, eta=0.01)
    assert (cfg.model, cfg.data, cfg.train) == (base.model, base.data, base.train)
    names = expand_names(["full", "sensitivity", "beta=.050"])
    assert names[0] == "full" and len(names) == 1 + 4 * 5 and names.count("beta=0.05") == 1
    grid = {(n.split("=")[0], float(n.split("=")[1])) for n in names[1:]}
    assert grid == {(w, v) for w in ("beta", "gamma", "eta", "zeta") for v in (0.01, 0.05, 0.1, 0.5, 1.0)}
    with pytest.raises(ValueError) as err:
        expand_names(["zeta=-1", "alpha=0.1", "beta=x", "full"])
    message = str(err.value)
    assert "unknown ablations 'zeta=-1', 'alpha=0.1', 'beta=x'" in message
    assert "full no_msd" in message and "sensitivity" in message and "<weight>=<value>" in message
    with pytest.raises(ValueError, match="preset"):
        apply_ablation(base, "sensitivity")


def test_execute_into_an_explicit_folder(data, finished, tmp_path):
    _, whole, expected, _ = finished
    folder, metrics, skipped = execute(data, CFG, folder=tmp_path / "elsewhere", progress=False)
    assert folder == tmp_path / "elsewhere" and not skipped and metrics == expected
    assert execute(data, CFG, folder=folder, progress=False)[2]  # finished: skipped
    with pytest.raises(ValueError, match="exactly one of out"):
        execute(data, CFG, tmp_path, folder=folder, progress=False)


def test_grid_and_summary_mean_and_sample_std(store, tmp_path):
    short = dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, stage1_epochs=1, stage2_epochs=1))
    rows = run_grid(store, short, tmp_path, seeds=[1, 2], ablations=["full", "no_imtd", "zeta=.25"], progress=False)
    assert [(r["ablation"], r["seed"], r["skipped"]) for r in rows] == [
        ("full", 1, False), ("full", 2, False), ("no_imtd", 1, False), ("no_imtd", 2, False),
        ("zeta=0.25", 1, False), ("zeta=0.25", 2, False)]
    no_imtd = json.loads((tmp_path / "synthetic-mosi" / "no_imtd" / "seed-1" / "config.json").read_text())
    assert no_imtd["config"]["model"]["use_imtd"] is False
    sweep = json.loads((tmp_path / "synthetic-mosi" / "zeta=0.25" / "seed-2" / "config.json").read_text())
    assert sweep["config"]["loss"]["zeta"] == 0.25 and sweep["config"]["ablation"] == "zeta=0.25"
    stats, markdown = write_summary(tmp_path)
    maes = [json.loads((tmp_path / "synthetic-mosi" / "full" / f"seed-{s}" / "metrics.json").read_text())["test"]["mae"]
            for s in (1, 2)]
    row = stats[(stats.ablation == "full") & (stats.split == "test") & (stats.metric == "mae")].iloc[0]
    assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(sum(maes) / 2)
    assert row["std"] == pytest.approx(abs(maes[0] - maes[1]) / math.sqrt(2))  # sample std of two values
    assert pd.read_csv(tmp_path / "summary.csv").shape == stats.shape
    assert (tmp_path / "summary.md").read_text() == markdown
    assert "Table 1 layout" in markdown and "Table 4 layout" in markdown and "| w/o IMTD |" in markdown
    assert f"{sum(maes) / 2:.3f} ± {abs(maes[0] - maes[1]) / math.sqrt(2):.3f}" in markdown
    assert "Table 7 layout" not in markdown  # no EMC-term ablation was run
    assert "Other overrides" in markdown and "| zeta=0.25 |" in markdown
