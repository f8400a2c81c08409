"""The ebmc-train command: generated flags, TOML config, bad values named, end-to-end run and rerun."""
import json

import pytest

from ebmc.store import StoreError
from ebmc.train.cli import build_parser, main, protocol_config, resolve_config

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
                 "--train.freeze_encoders", "--model.use_emc", "--train.device", "--train.robust_augment",
                 "--protocols", "--protocol.per_condition_models", "sensitivity"):
        assert flag in help_text
    toml = tmp_path / "run.toml"
    toml.write_text('seeds = [5, 6]\n[model]\nhidden_dim = 16\nuse_imtd = false\n[loss]\nzeta = 0.25\n'
                    '[data]\nmodalities = ["text", "audio"]\n[protocol]\nrates = [0.0, 0.5]\nsplit = "valid"\n')
    args = build_parser().parse_args(["x", "--config", str(toml), "--model.hidden_dim", "32", "--loss.beta", "0.5",
                                      "--protocol.split", "test"])
    cfg, options = resolve_config(args)
    assert cfg.model.hidden_dim == 32 and cfg.model.use_imtd is False  # flag beats TOML, TOML beats default
    assert cfg.loss.zeta == 0.25 and cfg.loss.beta == 0.5 and cfg.data.modalities == ("text", "audio")
    assert options == {"seeds": [5, 6], "protocol": {"rates": [0.0, 0.5], "split": "valid"}}
    pcfg = protocol_config(args, options["protocol"])
    assert pcfg.rates == (0.0, 0.5) and pcfg.split == "test"
    with pytest.raises(ValueError, match="unknown setting protocol.rate;"):
        protocol_config(args, {"rate": 0.5})


def test_model_preset_sits_under_file_and_flag_settings(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\npreset = "paper"\nencoder_layers = 3\n')
    cfg, _ = resolve_config(build_parser().parse_args(["x", "--config", str(toml), "--model.dropout", "0.2"]))
    assert (cfg.model.preset, cfg.model.hidden_dim, cfg.model.encoder_layers, cfg.model.dropout) == ("paper", 256, 3, 0.2)
    cfg, _ = resolve_config(build_parser().parse_args(["x", "--model.preset", "small", "--model.hidden_dim", "64"]))
    assert (cfg.model.hidden_dim, cfg.model.encoder_ff_mult, cfg.model.encoder_heads) == (64, 4, 4)


@pytest.mark.parametrize("argv, named", [
    (["--train.lr", "-1"], "--train.lr = -1.0: must be > 0"),
    (["--model.dropout", "1.5"], "model.dropout = 1.5: must be in [0, 1)"),
    (["--loss.zeta", "-0.1"], "loss.zeta = -0.1: must be >= 0"),
    (["--train.stage2_epochs", "0"], "--train.stage2_epochs = 0: must be >= 1"),
    (["--data.modalities", "text", "video"], "--data.modalities: unknown modality 'video'"),
    (["--ablations", "full", "no_foo"], "unknown ablation 'no_foo'; valid: full no_msd no_cce no_emc"),
    (["--ablations", "beta=-1"], "or <weight>=<value> with weight one of beta gamma eta zeta"),
    (["--train.augment_rates", "0.5", "2"], "--train.augment_rates: 2.0 is not in [0, 1]"),
    (["--protocols", "bogus"], "unknown protocol(s) bogus"),
    (["--protocol.per_condition_models", "true"], "protocol settings apply only with --protocols"),
])
def test_bad_values_name_the_flag(tmp_path, capsys, argv, named):
    assert main([str(tmp_path / "store"), "--out", str(tmp_path / "runs"), *argv]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_every_bad_value_is_reported_at_once(tmp_path, capsys):
    argv = [str(tmp_path / "store"), "--model.dropout", "2", "--ablations", "nope", "--protocol.mask_seed", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "model.dropout = 2.0" in err and "unknown ablation 'nope'" in err and "--protocol.mask_seed" in err


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


def _default_text(value) -> str:
    """A default as one would type it on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return " ".join(map(str, value)) if value else "(empty)"
    return str(value) if value != "" else '""'


def _escape(text: str) -> str:
    """Markdown-safe table cell: pipes and angle brackets escaped."""
    return text.replace("|", "\\|").replace("<", "\\<")


def config_table() -> str:
    """The markdown table of every RunConfig and ProtocolConfig field, as docs/training.md holds it."""
    import dataclasses
    import typing

    from ebmc.train.config import SECTIONS
    from ebmc.train.protocols.config import ProtocolConfig
    rows = ["| Flag | Default | Meaning |", "|---|---|---|"]
    for prefix, cls in [*SECTIONS.items(), ("protocol", ProtocolConfig)]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            meaning = f.metadata.get("help", "")
            choices = [a for a in typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal]
            if choices:
                meaning += f" (one of: {', '.join(choices)})"
            if f.metadata.get("run_only"):
                meaning += " [run-only: left out of fingerprints]"
            rows.append(f"| `--{prefix}.{f.name}` | `{_default_text(default)}` | {_escape(meaning)} |")
    return "\n".join(rows)


def test_training_docs_list_every_setting_as_generated():
    """docs/training.md holds the table of every setting; regenerate it with
    ``python tests/train/test_train_cli.py`` when a field, default or help text changes."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    import dataclasses

    from ebmc.train.config import SECTIONS, RunConfig
    missing = [row for row in config_table().splitlines() if row not in doc.splitlines()]
    missing += [f"RunConfig.{f.name} (no flag; explain it in prose)" for f in dataclasses.fields(RunConfig)
                if f.name not in SECTIONS and f"RunConfig.{f.name}" not in doc]
    assert not missing, "docs/training.md is out of date; regenerate its table:\n" + "\n".join(missing)


@pytest.mark.parametrize("error, exit_code", [(StoreError("bad store", ["row 3"]), 2), (ValueError("a bug"), None)])
def test_train_cli_reports_bad_input_and_lets_bugs_through(tmp_path, monkeypatch, capsys, error, exit_code):
    from ebmc.train import grid

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(grid, "run_grid", fail)
    argv = [str(tmp_path), "--out", str(tmp_path / "runs"), "--train.device", "cpu", "--no-progress"]
    if exit_code is None:
        with pytest.raises(ValueError, match="a bug"):
            main(argv)
    else:
        assert main(argv) == exit_code
        assert "row 3" in capsys.readouterr().err


if __name__ == "__main__":
    print(config_table())
