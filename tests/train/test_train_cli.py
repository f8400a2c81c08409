"""The ebmc-train command: generated flags, TOML config, bad values named, end-to-end run and rerun."""
import json

import pytest

from ebmc.train.cli import build_parser, main, resolve_config

TINY = ["--model.hidden_dim", "8", "--model.max_steps", "4", "--model.encoder_layers", "1",
        "--model.encoder_heads", "2", "--model.encoder_ff_mult", "1", "--data.max_len_audio", "20",
        "--data.max_len_vision", "20", "--train.batch_size", "16", "--train.stage1_epochs", "1",
        "--train.stage2_epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from ebmc.extract.importers.synthetic import make_synthetic
    return make_synthetic(tmp_path_factory.mktemp("syn") / "mosi", like="mosi", seed=0, n_train=32)


def test_flags_come_from_the_dataclasses(tmp_path):
    help_text = build_parser().format_help()
    for flag in ("--model.hidden_dim", "--train.stage1_epochs", "--loss.zeta", "--data.modalities",
                 "--train.freeze_encoders", "--model.use_emc", "--train.device"):
        assert flag in help_text
    toml = tmp_path / "run.toml"
    toml.write_text('seeds = [5, 6]\n[model]\nhidden_dim = 16\nuse_imtd = false\n[loss]\nzeta = 0.25\n'
                    '[data]\nmodalities = ["text", "audio"]\n')
    args = build_parser().parse_args(["x", "--config", str(toml), "--model.hidden_dim", "32", "--loss.beta", "0.5"])
    cfg, options = resolve_config(args)
    assert cfg.model.hidden_dim == 32 and cfg.model.use_imtd is False  # flag beats TOML, TOML beats default
    assert cfg.loss.zeta == 0.25 and cfg.loss.beta == 0.5 and cfg.data.modalities == ("text", "audio")
    assert options == {"seeds": [5, 6]}


@pytest.mark.parametrize("argv, named", [
    (["--train.lr", "-1"], "--train.lr = -1.0: must be > 0"),
    (["--model.dropout", "1.5"], "model.dropout = 1.5: must be in [0, 1)"),
    (["--loss.zeta", "-0.1"], "loss.zeta = -0.1: must be >= 0"),
    (["--train.stage2_epochs", "0"], "--train.stage2_epochs = 0: must be >= 1"),
    (["--data.modalities", "text", "video"], "--data.modalities: unknown modality 'video'"),
    (["--ablations", "full", "no_foo"], "unknown ablation 'no_foo'; valid: full no_msd no_cce no_emc"),
])
def test_bad_values_name_the_flag(tmp_path, capsys, argv, named):
    assert main([str(tmp_path / "store"), "--out", str(tmp_path / "runs"), *argv]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_type_errors_and_missing_store(tmp_path, capsys):
    assert main(["x", "--train.lr", "fast"]) == 2
    assert "--train.lr: invalid float value: 'fast'" in capsys.readouterr().err
    assert main([str(tmp_path / "none"), "--out", str(tmp_path / "runs"), *TINY]) == 2
    assert "is not a committed feature store" in capsys.readouterr().err


def test_train_summarise_and_rerun(store, tmp_path, capsys):
    argv = [str(store), "--out", str(tmp_path), "--seeds", "1", "2", "--ablations", "full", "no_emc", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 run(s) trained, 0 already finished" in printed and "| w/o EMC |" in printed
    for ablation in ("full", "no_emc"):
        for seed in (1, 2):
            folder = tmp_path / "synthetic-mosi" / ablation / f"seed-{seed}"
            config = json.loads((folder / "config.json").read_text())["config"]
            assert config["train"]["seed"] == seed and config["model"]["hidden_dim"] == 8
            assert config["model"]["use_emc"] is (ablation == "full")
            assert (folder / "metrics.json").exists()
    assert (tmp_path / "summary.md").read_text().strip() in printed
    assert main(argv) == 0
    assert "0 run(s) trained, 4 already finished (skipped)" in capsys.readouterr().out
