"""Training data and loop: determinism, robust augmentation, two-modality stores, bad input, evaluation, the synthetic benchmark."""
import copy
import dataclasses
import itertools
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from ebmc.store import ModalityData, StoreError, write_store
from ebmc.train.config import DataConfig, RunConfig, TrainConfig, resolve
from ebmc.train.data import load_data
from ebmc.train.config import to_dict
from ebmc.store.fingerprint import file_sha256, fingerprint
from ebmc.train import loop
from ebmc.train.loop import TrainState, evaluate, predict, train
from ebmc.train.model import ModelConfig
from ebmc.train.ablations import apply_ablation
from ebmc.train.protocols.frames import frame_drop

TINY = RunConfig(model=ModelConfig(hidden_dim=8, max_steps=4, encoder_layers=1, encoder_heads=2, encoder_ff_mult=1),
                 train=TrainConfig(batch_size=8, stage1_epochs=2, stage2_epochs=2, seed=3))
DIMS = {"text": 6, "audio": 3, "vision": 4}


def tiny_store(root, modalities=("text", "audio", "vision"), labels=None, splits=(24, 8, 8), seed=0):
    """A small regression store whose label is planted in the first feature of every modality."""
    rng = np.random.default_rng(seed)
    n = sum(splits)
    y = np.round(rng.uniform(-3, 3, n), 1) if labels is None else np.asarray(labels, dtype=float)
    table = pd.DataFrame({"utterance_id": [f"u{i:03d}" for i in range(n)],
                          "split": np.repeat(["train", "valid", "test"], splits), "label": y})
    features = {}
    for m in modalities:
        seqs = []
        for i in range(n):
            seq = rng.normal(size=(int(rng.integers(2, 10)), DIMS[m])).astype(np.float32)
            seq[:, 0] += y[i]
            seqs.append(seq)
        features[m] = ModalityData(producer={"name": "tiny", "modality": m}, sequences=seqs)
    return write_store(root, dataset="tiny", task="regression", utterances=table, features=features)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("tiny") / "store")


def test_data_pads_once_and_batches_by_index(store):
    data = load_data(store, DataConfig(), "cpu")
    assert data.modalities == ("text", "audio", "vision") and data.dims == DIMS
    assert data.x["audio"].shape == (40, 9, 3) and data.mask["audio"].dtype == torch.bool
    assert not data.x["audio"][~data.mask["audio"]].any()  # padding is zero
    seen = torch.cat([b.index for b in data.batches("train", 5, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(24)) and seen.tolist() != list(range(24))
    full = data.full("test")
    assert full.size == 8 and full.y.dtype == torch.float32
    # each batch is cut to its longest valid sequence, never shorter
    for batch in data.batches("train", 4):
        assert batch.mask["text"][:, -1].any()
    mean, std = data.input_stats()
    train_frames = np.concatenate([data.store.features("text").sequence(i) for i in range(24)])
    np.testing.assert_allclose(mean["text"].numpy(), train_frames.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std["text"].numpy(), train_frames.std(0), rtol=1e-4)


def test_same_seed_same_metrics_other_seed_differs(store):
    data = load_data(store, DataConfig(), "cpu")
    first = train(TINY, data, progress=False)
    again = train(TINY, data, progress=False)
    other = train(dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, seed=4)), data, progress=False)
    assert first.metrics == again.metrics
    assert [r["train_loss"] for r in first.state.history] == [r["train_loss"] for r in again.state.history]
    assert first.metrics["test"] != other.metrics["test"]
    assert [(r["stage"], r["epoch"]) for r in first.state.history] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert first.metrics["selected"]["stage"] == 2 and not first.model.training


def _same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_table5_setup_selects_on_validation_at_drop_rate_half(store):
    """ablation table5: LNLN augmentation in training; each epoch's validation score, hence the selected
    checkpoint, is measured with every valid frame dropped at rate 0.5 (deterministic masks)."""
    data = load_data(store, DataConfig(), "cpu")
    cfg = apply_ablation(dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, stage2_epochs=1)), "table5")
    result = train(cfg, data, progress=False)
    dropped = evaluate(result.model, data, "valid", frame_drop(0.5, cfg.train.seed), 2)
    assert result.metrics["valid"] == pytest.approx(dropped, nan_ok=True)
    assert result.metrics["valid"]["mae"] != pytest.approx(evaluate(result.model, data, "valid", None, 2)["mae"])


def test_robust_augment_changes_training_deterministically_and_resumes(store):
    data = load_data(store, DataConfig(), "cpu")
    short = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, stage2_epochs=1))
    off = train(short, data, progress=False)
    # off: the rates are never used, so no random draw moves and training is bit-identical
    rates_only = dataclasses.replace(short, train=dataclasses.replace(short.train, augment_rates=(0.9,)))
    assert _same_weights(off.model.state_dict(), train(rates_only, data, progress=False).model.state_dict())
    on_cfg = dataclasses.replace(short, train=dataclasses.replace(short.train, robust_augment=True,
                                                                   augment_rates=(0.3, 0.8)))
    assert to_dict(on_cfg)["train"]["robust_augment"] is True and fingerprint(on_cfg) != fingerprint(rates_only)
    snapshots = []
    on = train(on_cfg, data, progress=False, on_epoch=lambda s: snapshots.append(copy.deepcopy(s.to_dict())))
    assert not _same_weights(off.model.state_dict(), on.model.state_dict())
    assert [r["train_loss"] for r in on.state.history] != [r["train_loss"] for r in off.state.history]
    # resumed after stage I epoch 1: the same corruptions in the remaining epochs, the same model
    resumed = train(on_cfg, data, state=TrainState.from_dict(snapshots[0]), progress=False)
    assert _same_weights(on.model.state_dict(), resumed.model.state_dict()) and resumed.metrics == on.metrics
    with pytest.raises(ValueError, match=r"--train.augment_rates: 1.5 is not in \[0, 1\]"):
        TrainConfig(augment_rates=(0.1, 1.5))


def test_patience_stops_a_stage_early(store, monkeypatch):
    data = load_data(store, DataConfig(), "cpu")
    real, scores = loop.evaluate, itertools.count()

    def worsening(model, data, split, **kwargs):  # validation Corr falls every epoch after the first
        metrics = real(model, data, split, **kwargs)
        if split == "valid":
            metrics["corr"] = 1.0 - 0.1 * next(scores)
        return metrics

    monkeypatch.setattr(loop, "evaluate", worsening)
    cfg = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, stage1_epochs=6, stage2_epochs=1,
                                                               patience=1, select_metric="corr"))
    result = train(cfg, data, progress=False)
    stage1 = [r for r in result.state.history if r["stage"] == 1]
    assert len(stage1) == 2  # epoch 1 is the best, epoch 2 is one stale epoch: patience 1 ends the stage


def test_unknown_select_metric_fails_before_training(store):
    data = load_data(store, DataConfig(), "cpu")
    cfg = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, select_metric="accuracy"))
    epochs = []
    with pytest.raises(ValueError, match=r"--train.select_metric = accuracy: not a regression metric; choose from .*mae"):
        train(cfg, data, progress=False, on_epoch=epochs.append)
    assert epochs == []


def test_two_modality_store_trains(tmp_path):
    root = tiny_store(tmp_path / "ta", modalities=("text", "audio"))
    data = load_data(root, DataConfig(), "cpu")
    assert data.modalities == ("text", "audio")
    result = train(TINY, data, progress=False)
    assert np.isfinite(result.metrics["test"]["mae"]) and result.model.modalities == ("text", "audio")
    only = load_data(root, DataConfig(modalities=("audio",)), "cpu")
    assert only.modalities == ("audio",) and set(only.x) == {"audio"}


def test_predict_and_evaluate_with_transform(store):
    data = load_data(store, DataConfig(), "cpu")
    model = train(TINY, data, progress=False).model
    out = predict(model, data.batches("test", 3))
    assert out["pred"].shape == (8,) and out["trust"].shape == (8, 3) and out["fused"].shape == (8, 8)
    np.testing.assert_array_equal(out["y"], data.y[data.split_rows["test"]].numpy())
    plain = evaluate(model, data, "test")
    no_audio = evaluate(model, data, "test", transform=lambda b: b.without("audio"))
    assert plain.keys() == no_audio.keys() and plain != no_audio
    # other batch sizes change float summation order (~1e-9 in the predictions), which Corr of these
    # nearly constant predictions amplifies to ~1e-6: the metrics agree to 1e-5, not to the last bit
    assert evaluate(model, data, "test", batch_size=2) == pytest.approx(plain, rel=1e-5)


def test_bad_input_errors(tmp_path, store):
    with pytest.raises(StoreError, match="not a committed feature store"):
        load_data(tmp_path / "nowhere", DataConfig())
    other = tiny_store(tmp_path / "v2")
    meta = json.loads((other / "store.json").read_text())
    (other / "store.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(StoreError, match="schema version 99"):
        load_data(other, DataConfig())
    two = tiny_store(tmp_path / "two", modalities=("text", "audio"))
    with pytest.raises(StoreError, match=r"asks for vision, but the store has only text, audio"):
        load_data(two, DataConfig(modalities=("text", "vision")))
    labels = np.zeros(40)
    labels[[3, 30]] = [4.5, -7.0]
    wide = tiny_store(tmp_path / "wide", labels=labels)
    with pytest.raises(StoreError, match=r"2 labels outside.*rows \[3, 30\].*'u003' = 4.5") as err:
        load_data(wide, DataConfig())
    assert "--data.label_max" in str(err.value)
    assert load_data(wide, DataConfig(label_min=-8, label_max=8)).n("train") == 24
    # a split emptied after commit (the utterance table rewritten in place): named, with the other problems
    empty = tiny_store(tmp_path / "empty", labels=labels)
    table_file = empty / json.loads((empty / "store.json").read_text())["utterances"]
    table = pd.read_parquet(table_file)
    table.loc[table.split == "valid", "split"] = "train"
    table.to_parquet(table_file, index=False)
    # renamed to its new content hash, as a commit would: the edit is not mistaken for damage
    meta = json.loads((empty / "store.json").read_text())
    meta["utterances"] = f"utterances-{file_sha256(table_file)[:16]}.parquet"
    table_file.rename(empty / meta["utterances"])
    (empty / "store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError) as err:
        load_data(empty, DataConfig())
    assert "split 'valid' has no samples" in str(err.value) and "labels outside" in str(err.value)
    with pytest.raises(ValueError, match="--data.modalities: unknown modality 'video'"):
        DataConfig(modalities=("video",))
    with pytest.raises(ValueError, match=r"--train.lr = -1.0: must be > 0"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="resolved config"):
        train(RunConfig(), load_data(store, DataConfig()), progress=False)


def test_resolve_uses_paper_schedule_per_dataset():
    for name, (bs, e1, e2) in {"mosi": (64, 150, 150), "synthetic-mosei": (32, 100, 100),
                               "iemocap": (16, 150, 150), "sims": (32, 100, 100)}.items():
        t = resolve(RunConfig(), name).train
        assert (t.batch_size, t.stage1_epochs, t.stage2_epochs) == (bs, e1, e2), name
    kept = resolve(RunConfig(train=TrainConfig(batch_size=5)), "mosi").train
    assert kept.batch_size == 5 and kept.stage1_epochs == 150


def test_family_is_logged_overridable_and_warned_about(caplog):
    caplog.set_level(logging.INFO, logger="ebmc.train.config")
    assert resolve(RunConfig(), "ch-sims").train.family == "sims"
    assert "dataset family sims (dataset name 'ch-sims' contains 'sims')" in caplog.text
    assert "SIMS regression metrics" in caplog.text
    caplog.clear()
    t = resolve(RunConfig(), "mystore").train
    assert (t.family, t.batch_size, t.stage1_epochs) == ("other", 32, 100)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "contains none of mosei, mosi, iemocap, sims" in warning.message and "--train.family" in warning.message
    assert "batch 32, 100 + 100 epochs, MMSA regression metrics" in warning.message
    caplog.clear()
    t = resolve(RunConfig(train=TrainConfig(family="mosi")), "mystore").train
    assert (t.family, t.batch_size, t.stage1_epochs) == ("mosi", 64, 150)
    assert "dataset family mosi (--train.family)" in caplog.text
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.slow
def test_synthetic_mosi_fusion_beats_single_modalities(tmp_path):
    """Short CPU run on the MOSI-shaped synthetic store: Corr well above 0.5, fusion above each modality."""
    from ebmc.extract.importers.synthetic import make_synthetic
    root = make_synthetic(tmp_path / "mosi", like="mosi", seed=0)
    cfg = RunConfig(data=DataConfig(max_len_audio=100, max_len_vision=100),
                    model=ModelConfig(hidden_dim=32, max_steps=8, encoder_layers=1, encoder_heads=2, encoder_ff_mult=2),
                    train=TrainConfig(batch_size=64, stage1_epochs=8, stage2_epochs=4, lr=1e-3, seed=1111))
    corr = {}
    for mods in [("text", "audio", "vision"), ("text",), ("audio",), ("vision",)]:
        run_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, modalities=mods))
        corr[mods] = train(run_cfg, load_data(root, run_cfg.data), progress=False).metrics["test"]["corr"]
    fused = corr.pop(("text", "audio", "vision"))
    assert fused > 0.6, corr
    assert fused > max(corr.values()), (fused, corr)
