"""ebmc-import mmsa: MMSA pickles into a store, lengths, token ids, non-finite counts, and every bad input."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pickle_fixtures import mmsa_data, write_pickle

from ebmc.extract.importers.cli import main
from ebmc.extract.importers.mmsa import import_mmsa
from ebmc.store import StoreError, open_store


def test_unaligned_import_keeps_lengths_token_ids_and_counts_nonfinite(tmp_path):
    data = mmsa_data()
    summary = import_mmsa(write_pickle(tmp_path / "u.pkl", data), tmp_path / "mosi")
    store = open_store(tmp_path / "mosi")
    assert summary["splits"] == {"train": 6, "valid": 3, "test": 4}
    assert summary["nonfinite_replaced"] == {"text": 0, "audio": 9, "vision": 0}  # 3 per split
    table = store.utterances
    test = store.split_indices("test")
    part = data["test"]
    assert table["utterance_id"].iloc[test].tolist() == list(part["id"])
    assert table["video_id"].iloc[test[0]] == part["id"][0].split("$_$")[0]
    assert table["clip_id"].iloc[test[1]] == "2"
    assert table["transcript"].iloc[test].tolist() == list(part["raw_text"])
    np.testing.assert_array_equal(store.labels()[test], part["regression_labels"])
    text, audio = store.features("text"), store.features("audio")
    np.testing.assert_array_equal(text.lengths[test], part["text_bert"][:, 1].sum(1))
    np.testing.assert_array_equal(audio.lengths[test], part["audio_lengths"])
    np.testing.assert_array_equal(text.array("token_ids")[test], part["text_bert"][:, 0])
    assert text.producer["lengths_from"] == "text_bert attention mask"
    assert audio.producer["lengths_from"] == "audio_lengths"
    x, mask = audio.padded(test)
    assert np.isfinite(x).all() and x[-1, 0, 0] == 0.0
    assert mask.sum() == sum(part["audio_lengths"])


def test_aligned_lengths_come_from_the_text_mask_and_sims_labels_are_kept(tmp_path):
    data = mmsa_data(aligned=True, sims=True)
    import_mmsa(write_pickle(tmp_path / "a.pkl", data), tmp_path / "sims")
    store = open_store(tmp_path / "sims")
    mask_len = np.concatenate([data[s]["text_bert"][:, 1].sum(1) for s in ("train", "valid", "test")])
    np.testing.assert_array_equal(store.features("vision").lengths, mask_len)
    assert "aligned" in store.features("audio").producer["lengths_from"]
    np.testing.assert_allclose(store.utterances["label_audio"].iloc[:6], data["train"]["regression_labels_A"])
    assert set(store.utterances["classification_label"]) <= {0, 1, 2}


def test_sha256_is_verified_when_given(tmp_path):
    pkl = write_pickle(tmp_path / "u.pkl", mmsa_data())
    good = hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert import_mmsa(pkl, tmp_path / "ok", sha256=good)["sha256_verified"]
    with pytest.raises(StoreError, match="SHA-256"):
        import_mmsa(pkl, tmp_path / "bad", sha256="0" * 64)
    assert not (tmp_path / "bad").exists()


def test_fingerprint_follows_the_file_content_not_its_path(tmp_path):
    a = write_pickle(tmp_path / "a.pkl", mmsa_data(seed=1))
    b = write_pickle(tmp_path / "b.pkl", mmsa_data(seed=1))
    c = write_pickle(tmp_path / "c.pkl", mmsa_data(seed=2))
    fingerprints = [import_mmsa(p, tmp_path / p.stem) and open_store(tmp_path / p.stem).fingerprints() for p in (a, b, c)]
    assert fingerprints[0] == fingerprints[1]
    assert all(fingerprints[0][m] != fingerprints[2][m] for m in fingerprints[0])


def test_every_bad_input_is_listed_at_once(tmp_path):
    data = mmsa_data()
    del data["valid"]
    del data["train"]["raw_text"]
    data["test"]["audio"] = data["test"]["audio"][:, :, :3]             # dim differs across splits
    data["test"]["vision"] = data["test"]["vision"].astype(np.float64)   # dtype differs across splits
    data["train"]["audio_lengths"][2] = 99                                # beyond the padded size 10
    data["train"]["regression_labels"][1] = np.nan
    data["test"]["id"][3] = data["train"]["id"][0]                        # duplicate id
    data["test"]["text"] = data["test"]["text"][:3]                       # 3 rows for 4 ids
    with pytest.raises(StoreError) as err:
        import_mmsa(write_pickle(tmp_path / "bad.pkl", data), tmp_path / "out")
    text = str(err.value)
    for needle in ["missing split 'valid'", "[train]: missing key 'raw_text'", "['audio']: per-sample shape differs",
                   "['vision']: dtype differs", "['audio_lengths']: 1 lengths beyond the padded size 10",
                   "['regression_labels']: 1 NaN/inf labels", "already used in train sample 0",
                   "[test]['text']: shape (3, 8, 12), but there are 4 ids"]:
        assert needle in text, needle
    assert len(err.value.problems) >= 8
    assert not (tmp_path / "out" / "store.json").exists()


def test_cli_prints_summary_and_errors(tmp_path, capsys):
    mmsa_pkl = write_pickle(tmp_path / "unaligned_50.pkl", mmsa_data())
    assert main(["mmsa", str(mmsa_pkl), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "imported 13 utterances" in out and "9 non-finite values" in out
    write_pickle(tmp_path / "x.pkl", {"train": {}})
    assert main(["mmsa", str(tmp_path / "x.pkl"), "--out", str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err
    assert "missing split 'valid'" in err and "missing key 'id'" in err
