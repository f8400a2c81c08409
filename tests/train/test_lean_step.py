"""The lean training step: no host synchronisation on the accelerator layout, and the same losses and metrics as the reference path."""
import dataclasses

import pytest
import torch

from ebmc.train import loop
from ebmc.train.config import DataConfig, RunConfig, TrainConfig
from ebmc.train.data import load_data
from ebmc.train.model import ModelConfig, encoder
from ebmc.train.syncs import SyncCounter

CFG = RunConfig(data=DataConfig(max_len_audio=30, max_len_vision=30),
                model=ModelConfig(hidden_dim=8, max_steps=4, encoder_layers=1, encoder_heads=2, encoder_ff_mult=1),
                train=TrainConfig(batch_size=16, stage1_epochs=2, stage2_epochs=2, seed=7, robust_augment=True))
# Fast (accelerator layout, one-pass evaluation) against reference (CPU packing, small evaluation
# batches): float32 sums in another order, compounded over a few Adam steps.
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ebmc.extract.importers.synthetic import make_synthetic
    store = make_synthetic(tmp_path_factory.mktemp("syn") / "mosi", like="mosi", seed=0, n_train=48)
    return load_data(store, CFG.data, "cpu")


def test_counter_sees_every_kind_of_host_sync():
    x, mask = torch.randn(4, 3), torch.tensor([True, False, True, True])
    with SyncCounter() as counter:
        x.sum().item()
        bool(x[0, 0] > 0)
        x[mask]
        x.nonzero()
        x[torch.tensor([0, 2])]                                       # integer indices: no sync
        torch.repeat_interleave(torch.arange(4), torch.tensor([1, 2, 0, 1]))
    assert [s.op for s in counter.device_syncs()] == [
        "aten::_local_scalar_dense", "aten::_local_scalar_dense", "aten::index", "aten::nonzero",
        "aten::repeat_interleave"]
    assert all(__file__ in s.where for s in counter.syncs)


def test_training_steps_of_both_stages_never_wait_for_the_device(data, monkeypatch):
    """Forward (EMC double backward and IMTD teacher included), backward, clip and Adam step of
    stage I and stage II in the layout accelerators use: no host synchronisation in any step; the
    epoch reads its summed losses once, at its end."""
    monkeypatch.setattr(encoder, "packs", lambda device: False)
    model = loop.build_model(CFG, data)
    teacher = model.make_teacher()
    generator = torch.Generator().manual_seed(0)
    steps = -(-data.n("train") // CFG.train.batch_size)
    for stage in (1, 2):
        optimizer = loop._optimizer(model, CFG, stage)
        with SyncCounter() as counter:
            terms = loop._train_epoch(model, data, CFG, stage, optimizer, teacher if stage == 2 else None, generator)
        assert counter.device_syncs() == [], f"stage {stage}: {counter.device_syncs()}"
        # what was left out are host-side reads only: Adam's step counters and the CPU dropout seeds
        assert len(counter.syncs) >= steps
        assert terms["loss"] > 0 and (stage == 1 or terms["emc"] > 0 and terms["imtd"] > 0)


def test_cpu_packing_does_synchronise_so_the_check_is_not_vacuous(data):
    model = loop.build_model(CFG, data)
    with SyncCounter() as counter:
        model(next(data.batches("train", 16)), 1)
    assert {s.op for s in counter.device_syncs()} == {"aten::nonzero"}


def test_fast_path_equals_reference_path(data, monkeypatch):
    """Same seed, no dropout (whose masks follow the layout's shape): the accelerator layout with
    one-pass evaluation trains to the same per-epoch losses and metrics as CPU packing evaluated
    in batches of 5, within RTOL / ATOL."""
    cfg = dataclasses.replace(CFG, model=dataclasses.replace(CFG.model, dropout=0.0))
    results = {}
    for name, packed, eval_batch in (("reference", True, 5), ("fast", False, 4096)):
        monkeypatch.setattr(encoder, "packs", lambda device, packed=packed: packed)
        run_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_batch_size=eval_batch))
        results[name] = loop.train(run_cfg, data, progress=False)
    ref, fast = results["reference"], results["fast"]
    for a, b in zip(ref.state.history, fast.state.history, strict=True):
        for key in a:
            if key != "seconds":
                assert b[key] == pytest.approx(a[key], rel=RTOL, abs=ATOL), key
    for split in ("valid", "test"):
        for key, value in ref.metrics[split].items():
            assert fast.metrics[split][key] == pytest.approx(value, rel=RTOL, abs=ATOL), (split, key)
