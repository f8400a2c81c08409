"""ebmc-import mult: MulT regression and IEMOCAP multilabel pickles into a store, and bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from pickle_fixtures import mult_data, write_pickle

from ebmc.extract.importers.cli import main
from ebmc.extract.importers.mult import import_mult
from ebmc.store import StoreError, open_store


def test_regression_pickle(tmp_path):
    data = mult_data()
    summary = import_mult(write_pickle(tmp_path / "mosi_data.pkl", data), tmp_path / "mosi")
    store = open_store(tmp_path / "mosi")
    assert store.task == "regression" and summary["splits"] == {"train": 6, "valid": 3, "test": 4}
    test = store.split_indices("test")
    np.testing.assert_allclose(store.labels()[test], data["test"]["labels"][:, 0, 0])
    x, mask = store.features("audio").padded(test)
    np.testing.assert_array_equal(x, data["test"]["audio"])
    assert mask.all()
    assert store.utterances["utterance_id"].iloc[test[1]] == "testvid0_1"
    assert store.utterances["video_id"].iloc[test[1]] == "testvid0"
    assert {m: store.features(m).dim for m in store.modalities} == {"text": 300, "audio": 74, "vision": 35}


def test_iemocap_four_one_vs_rest_emotions(tmp_path, capsys):
    data = mult_data(iemocap=True)
    pkl = write_pickle(tmp_path / "iemocap_data.pkl", data)
    assert main(["mult", str(pkl), "--out", str(tmp_path / "iemocap")]) == 0
    assert "multilabel: label_neutral, label_happy, label_sad, label_angry" in capsys.readouterr().out
    store = open_store(tmp_path / "iemocap")
    assert store.task == "multilabel"
    y = store.labels()
    assert y.shape == (13, 4)
    np.testing.assert_array_equal(y[store.split_indices("valid")], data["valid"]["labels"].argmax(-1))


def test_bad_mult_inputs_are_listed_at_once(tmp_path):
    data = mult_data(iemocap=True)
    data["train"]["labels"][0, 2] = [1, 1]               # not one-hot
    data["valid"]["labels"] = data["valid"]["labels"][:, :3]  # 3 emotions in one split
    data["test"]["text"] = data["test"]["text"][:, :, :10]
    data["test"]["labels"][1, 0, 0] = np.nan
    del data["valid"]["vision"]
    with pytest.raises(StoreError) as err:
        import_mult(write_pickle(tmp_path / "bad.pkl", data), tmp_path / "out")
    text = str(err.value)
    for needle in ["[train]['labels']: IEMOCAP labels must be one-hot", "[valid]: missing key 'vision'",
                   "[test]['labels']: NaN/inf labels in 1 samples", "['text']: per-sample shape (T, d) differs",
                   "['labels']: shape differs across splits"]:
        assert needle in text, needle
