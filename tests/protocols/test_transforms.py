"""Missing-modality, random-missing and frame-drop transforms: what is absent or dropped cannot change the output."""
import dataclasses

import pytest
import torch

from ebmc.train.protocols.frames import frame_drop, random_frame_drop
from ebmc.train.protocols.masks import end_steps
from ebmc.train.protocols.missing import condition_name, conditions, keep_only, random_missing

from .helpers import make_batch, predict, small_model


def _perturb(batch, where: dict):
    """A copy whose features are replaced by noise where ``where[m]`` (B, T) is True."""
    x = {m: torch.where(where[m][..., None], torch.randn_like(v) * 5, v) if m in where else v
         for m, v in batch.x.items()}
    return dataclasses.replace(batch, x=x)


def test_conditions_are_every_nonempty_proper_subset():
    got = conditions(("vision", "text", "audio"))
    assert [condition_name(c) for c in got] == ["text", "audio", "vision", "text+audio", "text+vision", "audio+vision"]
    assert conditions(("text", "vision")) == [("text",), ("vision",)]
    assert conditions(("audio",)) == []


def test_removed_modality_cannot_change_the_output():
    model, batch = small_model(), make_batch()
    only = keep_only(("text", "vision"))
    removed = only(batch)
    assert not removed.present["audio"].any() and not removed.mask["audio"].any()
    noisy = _perturb(batch, {"audio": torch.ones_like(batch.mask["audio"])})
    assert torch.equal(predict(model, only(noisy)), predict(model, removed))
    # the same noise on a kept modality does change it: the check can fail
    loud = _perturb(batch, {"text": batch.mask["text"]})
    assert not torch.allclose(predict(model, only(loud)), predict(model, removed))


def test_randomly_missing_modalities_cannot_change_the_output():
    model, batch = small_model(), make_batch(B=40)
    t = random_missing(0.5, seed=3)
    out = t(batch)
    gone = {m: ~out.present[m] for m in batch.modalities}
    assert 0 < sum(g.sum() for g in gone.values()) < 3 * 40
    assert torch.stack([out.present[m] for m in batch.modalities], 1).any(1).all()
    noisy = _perturb(batch, {m: g[:, None].expand_as(batch.mask[m]) for m, g in gone.items()})
    assert torch.equal(predict(model, t(noisy)), predict(model, out))


def test_dropped_frames_are_zero_and_cannot_change_the_output():
    model, batch = small_model(), make_batch(B=16, T=24)
    t = frame_drop(0.5, seed=11)
    out = t(batch)
    dropped = {m: batch.mask[m] & (out.x[m] == 0).all(-1) for m in batch.modalities}
    for m in batch.modalities:
        assert torch.equal(out.mask[m], batch.mask[m])  # the model is not told what was lost
        kept = batch.mask[m] & ~dropped[m]
        assert torch.equal(out.x[m][kept], batch.x[m][kept])
        frac = dropped[m].sum().item() / batch.mask[m].sum().item()
        assert 0.3 < frac < 0.7
    assert not (dropped["text"] & end_steps(batch.mask["text"])).any()
    noisy = _perturb(batch, dropped)
    assert torch.equal(t(noisy).x["audio"], out.x["audio"])
    assert torch.equal(predict(model, t(noisy)), predict(model, out))
    kept_noise = _perturb(batch, {m: batch.mask[m] & ~dropped[m] for m in batch.modalities})
    assert not torch.allclose(predict(model, t(kept_noise)), predict(model, out))
    assert torch.equal(frame_drop(0.0, seed=11)(batch).x["vision"], batch.x["vision"])


def test_training_augmentation_drops_at_the_drawn_rates():
    batch = make_batch(B=64, T=200)
    g = torch.Generator().manual_seed(0)
    out = random_frame_drop((0.5,), generator=g)(batch)
    for m in batch.modalities:
        dropped = batch.mask[m] & (out.x[m] == 0).all(-1)
        assert abs(dropped.sum().item() / batch.mask[m].sum().item() - 0.5) < 0.05
    assert not (batch.mask["text"] & (out.x["text"] == 0).all(-1) & end_steps(batch.mask["text"])).any()
    none = random_frame_drop((0.0,), generator=g)(batch)
    assert all(torch.equal(none.x[m], batch.x[m]) for m in batch.modalities)


def test_unk_mode_needs_a_reencoder():
    with pytest.raises(ValueError, match="reencoder"):
        frame_drop(0.2, seed=0, text_mode="unk")


def test_lnln_augmentation_keeps_half_the_samples_clean_and_drops_the_rest_uniformly():
    """LNLN (Table 5 training): per sample one rate for every modality, 0 with prob. 0.5, else U[0, 1]."""
    batch = make_batch(B=400, T=300)
    out = random_frame_drop((0.5,), generator=torch.Generator().manual_seed(0), scheme="lnln")(batch)
    dropped = {m: (batch.mask[m] & (out.x[m] == 0).all(-1)).sum(1) / batch.mask[m].sum(1).clamp(min=1)
               for m in ("audio", "vision")}
    clean = dropped["audio"] == 0
    # a tiny drawn rate can drop nothing in one short sequence and a frame in the other: nearly all agree
    assert 0.4 < clean.float().mean() < 0.6 and (clean == (dropped["vision"] == 0)).float().mean() > 0.95
    rates = dropped["audio"][~clean]
    # the same rate drives both modalities of a sample; the rates spread over [0, 1] (uniform: mean 0.5)
    assert torch.corrcoef(torch.stack([rates, dropped["vision"][~clean]]))[0, 1] > 0.8
    assert abs(rates.mean().item() - 0.5) < 0.06 and rates.min() < 0.1 and rates.max() > 0.9
    with pytest.raises(ValueError, match="'rates' or 'lnln'"):
        random_frame_drop((0.5,), scheme="lnl")
