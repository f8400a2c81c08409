"""Tests of the speaker-independent split: whole speakers per split, deterministic, clear errors."""
import numpy as np
import pytest

from ebmc.extract.importers.speaker_split import SpeakerSplitConfig, speaker_split
from ebmc.store import StoreError


@pytest.mark.parametrize("seed", range(20))
def test_no_speaker_in_two_splits_and_counts_match(seed):
    rng = np.random.default_rng(seed)
    n_speakers = int(rng.integers(3, 12))
    speakers = [f"spk{int(s)}" for s in rng.integers(0, n_speakers, size=200)]
    distinct = set(speakers)
    valid = int(rng.integers(1, max(2, (len(distinct) - 1) // 2 + 1)))
    test = int(rng.integers(1, max(2, len(distinct) - valid)))
    if valid + test >= len(distinct):
        pytest.skip("draw left no speaker for train")
    split = speaker_split(speakers, SpeakerSplitConfig(valid=valid, test=test, seed=seed))
    splits_of = {}
    for s, part in zip(speakers, split):
        splits_of.setdefault(s, set()).add(part)
    assert all(len(parts) == 1 for parts in splits_of.values()), splits_of
    per_split = {p: {s for s, parts in splits_of.items() if p in parts} for p in ("train", "valid", "test")}
    assert len(per_split["valid"]) == valid
    assert len(per_split["test"]) == test
    assert len(per_split["train"]) == len(distinct) - valid - test


def test_deterministic_and_independent_of_row_order():
    speakers = [f"s{i % 7}" for i in range(70)]
    cfg = SpeakerSplitConfig(valid=2, test=2, seed=5)
    a = speaker_split(speakers, cfg)
    b = speaker_split(speakers, cfg)
    assert (a == b).all()
    perm = np.random.default_rng(0).permutation(len(speakers))
    c = speaker_split([speakers[i] for i in perm], cfg)
    assert dict(zip(speakers, a)) == dict(zip([speakers[i] for i in perm], c))


def test_seed_changes_the_draw():
    speakers = [f"s{i}" for i in range(12)]
    draws = {tuple(speaker_split(speakers, SpeakerSplitConfig(valid=2, test=2, seed=s))) for s in range(5)}
    assert len(draws) > 1


def test_problems_listed_at_once_with_rows():
    speakers = ["a", "", "b", "a", " "]
    with pytest.raises(StoreError) as err:
        speaker_split(speakers, SpeakerSplitConfig(valid=2, test=0, seed=0), "m.csv", rows=[2, 3, 4, 5, 6])
    text = str(err.value)
    assert len(err.value.problems) == 3
    assert "rows [3, 6]" in text  # the empty speakers, as manifest rows
    assert "must be at least 1" in text
    assert "2 distinct speakers" in text
