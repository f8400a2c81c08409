"""The grid at once: --grid-shard partitions the (ablation, seed) grid exactly; --jobs N gives the runs of --jobs 1."""
import json

import pandas as pd
import pytest

from ebmc.train.cli import main
from ebmc.train.config import DataConfig, RunConfig, TrainConfig
from ebmc.train.grid import grid_runs, run_grid
from ebmc.train.model import ModelConfig

CFG = RunConfig(data=DataConfig(max_len_audio=30, max_len_vision=30),
                model=ModelConfig(hidden_dim=8, max_steps=4, encoder_layers=1, encoder_heads=2, encoder_ff_mult=1),
                train=TrainConfig(batch_size=16, stage1_epochs=1, stage2_epochs=1, device="cpu"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from ebmc.extract.importers.synthetic import make_synthetic
    return make_synthetic(tmp_path_factory.mktemp("syn") / "mosi", like="mosi", seed=0, n_train=32)


@pytest.mark.parametrize("n_runs", [1, 5, 12])
@pytest.mark.parametrize("shards", [1, 2, 3, 5, 7])
def test_grid_shards_partition_the_grid(n_runs, shards):
    seeds = list(range(n_runs))
    whole = grid_runs(seeds, ["full"])
    parts = [grid_runs(seeds, ["full"], (i, shards)) for i in range(shards)]
    assert [run for part in parts for run in part] == whole          # each run once, grid order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1          # balanced


def test_grid_order_is_ablation_major_and_presets_expand():
    assert grid_runs([1, 2], ["full", "no_emc"]) == [("full", 1), ("full", 2), ("no_emc", 1), ("no_emc", 2)]
    assert grid_runs([1, 2], ["full", "no_emc"], (1, 2)) == [("no_emc", 1), ("no_emc", 2)]


def _results(out):
    """{run folder: (metrics, history without timings)} of every run under ``out``."""
    found = {}
    for metrics in sorted(out.glob("*/*/seed-*/metrics.json")):
        folder = metrics.parent
        history = pd.read_csv(folder / "history.csv").drop(columns="seconds")
        found[str(folder.relative_to(out))] = (json.loads(metrics.read_text()), history)
    return found


def test_jobs_two_gives_the_runs_of_jobs_one(store, tmp_path):
    """Two worker processes (one thread each) against one process (two threads): the same run
    folders with the same metrics and histories; float sums may differ in the last bits."""
    seeds, ablations = [1], ["full", "no_imtd"]
    rows1 = run_grid(store, CFG, tmp_path / "one", seeds, ablations, progress=False, jobs=1)
    rows2 = run_grid(store, CFG, tmp_path / "two", seeds, ablations, progress=False, jobs=2)
    assert [(r["ablation"], r["seed"], r["skipped"]) for r in rows2] == \
        [(r["ablation"], r["seed"], r["skipped"]) for r in rows1]
    one, two = _results(tmp_path / "one"), _results(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 2
    for folder, (metrics, history) in one.items():
        pd.testing.assert_frame_equal(two[folder][1], history, rtol=1e-5)
        for split in ("valid", "test"):
            for key, value in metrics[split].items():
                assert two[folder][0][split][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (folder, key)
    # a finished grid is skipped with any number of jobs
    assert all(r["skipped"] for r in run_grid(store, CFG, tmp_path / "one", seeds, ablations, progress=False, jobs=2))


def test_cli_grid_shards_fill_one_results_folder(store, tmp_path, capsys):
    tiny = ["--train.stage1_epochs", "1", "--train.stage2_epochs", "1", "--train.batch_size", "16",
            "--train.device", "cpu", "--model.hidden_dim", "8", "--model.encoder_layers", "1",
            "--model.encoder_heads", "2", "--data.max_len_audio", "30", "--data.max_len_vision", "30"]
    argv = [str(store), "--out", str(tmp_path), "--seeds", "1", "2", "--no-progress", *tiny]
    assert main([*argv, "--grid-shard", "1/2"]) == 0
    assert "1 run(s) trained" in capsys.readouterr().out
    assert [p.parent.name for p in tmp_path.glob("*/full/seed-*/metrics.json")] == ["seed-2"]
    assert main([*argv, "--grid-shard", "0/2"]) == 0
    assert "1 run(s) trained" in capsys.readouterr().out
    assert sorted(p.parent.name for p in tmp_path.glob("*/full/seed-*/metrics.json")) == ["seed-1", "seed-2"]


@pytest.mark.parametrize("flag,value,named", [("--grid-shard", "2/2", "--grid-shard '2/2': need 0 <= i < N"),
                                              ("--grid-shard", "x", "--grid-shard 'x': write i/N"),
                                              ("--jobs", "0", "--jobs: '0': give a whole number >= 1")])
def test_bad_grid_flags(tmp_path, capsys, flag, value, named):
    assert main([str(tmp_path), flag, value]) == 2
    assert named in capsys.readouterr().err
