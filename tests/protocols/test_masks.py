"""Deterministic drop masks: rates, reproducibility, independence of batching, kept text ends."""
import numpy as np
import pytest
import torch

from ebmc.train.protocols.masks import end_steps, frame_drop_mask, modality_drop_mask, uniforms


def _valid(B=200, T=200):
    return torch.ones(B, T, dtype=torch.bool), torch.arange(B)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drop_fraction_matches_rate(rate):
    valid, rows = _valid()
    drop = frame_drop_mask(valid, rows, "audio", rate, seed=3)
    # 40000 Bernoulli draws: the std of the fraction is <= 0.0025, so 0.015 is six sigma
    assert abs(drop.float().mean().item() - rate) < 0.015


def test_same_seed_same_mask_other_seed_or_modality_differs():
    valid, rows = _valid(50, 40)
    a = frame_drop_mask(valid, rows, "vision", 0.5, seed=7)
    assert torch.equal(a, frame_drop_mask(valid, rows, "vision", 0.5, seed=7))
    assert not torch.equal(a, frame_drop_mask(valid, rows, "vision", 0.5, seed=8))
    assert not torch.equal(a, frame_drop_mask(valid, rows, "audio", 0.5, seed=7))


def test_mask_depends_on_sample_not_on_batch_or_padding():
    valid, rows = _valid(30, 25)
    whole = frame_drop_mask(valid, rows, "text", 0.4, seed=1)
    pick = torch.tensor([17, 3, 29])
    part = frame_drop_mask(valid[pick, :12], rows[pick], "text", 0.4, seed=1)
    # text ends move with the cut, so compare the interior steps only
    assert torch.equal(part[:, 1:11], whole[pick, 1:11])
    assert np.array_equal(uniforms(0, 1, rows[pick], "audio", 12), uniforms(0, 1, rows, "audio", 25)[pick, :12])


def test_masks_are_nested_across_rates():
    valid, rows = _valid(40, 40)
    low = frame_drop_mask(valid, rows, "audio", 0.3, seed=2)
    high = frame_drop_mask(valid, rows, "audio", 0.6, seed=2)
    assert (low & ~high).sum() == 0 and high.sum() > low.sum()


def test_only_valid_steps_drop_and_text_keeps_its_ends():
    B, T = 16, 30
    lengths = torch.randint(2, T + 1, (B,))
    valid = torch.arange(T)[None, :] < lengths[:, None]
    valid[0] = False  # an absent text
    drop = frame_drop_mask(valid, torch.arange(B), "text", 1.0, seed=0, keep_ends=True)
    assert not (drop & ~valid).any()
    ends = end_steps(valid)
    assert not (drop & ends).any()
    assert torch.equal(drop | ends, valid)  # at rate 1 everything else goes
    assert ends[1:].sum(1).tolist() == [1 if L == 1 else 2 for L in lengths[1:].tolist()]
    assert frame_drop_mask(valid, torch.arange(B), "text", 0.0, seed=0).sum() == 0


def test_modality_drop_rate_and_at_least_one_kept():
    n = 3000
    present = {m: torch.ones(n, dtype=torch.bool) for m in ("text", "audio", "vision")}
    present["vision"][:1000] = False
    rows = torch.arange(n)
    drop = modality_drop_mask(present, rows, 0.3, seed=4)
    kept = torch.stack([present[m] & ~drop[m] for m in present], 1)
    assert kept.any(1).all()
    assert not (drop["vision"][:1000]).any()  # an absent modality is never "dropped"
    # rescues (all present dropped) are rare at 0.3: the measured rate stays close
    frac = sum(drop[m].sum() for m in present).item() / sum(present[m].sum() for m in present).item()
    assert abs(frac - 0.3) < 0.03
    full = modality_drop_mask(present, rows, 1.0, seed=4)
    assert (torch.stack([present[m] & ~full[m] for m in present], 1).sum(1) == 1).all()
    again = modality_drop_mask(present, rows, 0.3, seed=4)
    assert all(torch.equal(drop[m], again[m]) for m in present)
    other = modality_drop_mask(present, rows, 0.3, seed=5)
    assert not all(torch.equal(drop[m], other[m]) for m in present)


def test_rate_outside_unit_interval_is_an_error():
    valid, rows = _valid(2, 2)
    with pytest.raises(ValueError, match="drop rate"):
        frame_drop_mask(valid, rows, "audio", 1.5, seed=0)
