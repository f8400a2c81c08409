"""The feature store: round trips, commit semantics, schema checks and bad input."""
import json

import numpy as np
import pandas as pd
import pytest

from ebmc.store import ModalityData, StoreError, open_store, write_feature_set, write_store
from ebmc.store import atomic


def table(n=9, **cols):
    t = pd.DataFrame({"utterance_id": [f"u{i}" for i in range(n)],
                      "split": (["train", "valid", "test"] * n)[:n],
                      "label": np.linspace(-3, 3, n).astype(np.float32)})
    for k, v in cols.items():
        t[k] = v
    return t


def ragged(n=9, d=4, seed=0, absent=()):
    rng = np.random.default_rng(seed)
    return [None if i in absent else rng.standard_normal((i + 1, d)).astype(np.float32) for i in range(n)]


def test_ragged_and_padded_round_trip(tmp_path):
    seqs = ragged(absent=(4,))
    padded = np.random.default_rng(1).standard_normal((9, 6, 3)).astype(np.float32)
    lengths = np.arange(9) % 6 + 1
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=seqs),
                          "vision": ModalityData({"name": "v"}, values=padded, lengths=lengths)})
    s = open_store(tmp_path)
    assert s.modalities == ("audio", "vision")
    a, v = s.features("audio"), s.features("vision")
    for i in range(9):
        if i == 4:
            assert not a.present[i] and a.lengths[i] == 0 and a.status[i] == "absent"
        else:
            np.testing.assert_array_equal(a.sequence(i), seqs[i])
    np.testing.assert_array_equal(np.asarray(v.array("values")), padded)  # padded layout is exact
    x, mask = a.padded([8, 4, 0])
    assert x.shape == (3, 9, 4) and mask.sum(1).tolist() == [9, 0, 1]
    np.testing.assert_array_equal(x[0], seqs[8])
    xv, mv = v.padded([2, 0], max_len=2)
    np.testing.assert_array_equal(xv[0], padded[2, :2])
    assert mv.tolist() == [[True, True], [True, False]]
    u = s.utterances
    assert u["audio_status"].tolist()[4] == "absent" and u["audio_length"].tolist()[8] == 9
    assert s.labels().dtype == np.float32 and len(s.split_indices("train")) == 3


def test_nonfinite_values_are_replaced_and_counted(tmp_path):
    seqs = ragged()
    seqs[2][0, 0] = -np.inf
    seqs[3][1, 2] = np.nan
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=seqs)})
    fs = open_store(tmp_path).features("audio")
    assert fs.manifest["stats"]["nonfinite_replaced"] == 2
    assert np.isfinite(np.asarray(fs.array("values"))).all()


def test_every_problem_listed_at_once(tmp_path):
    t = table()
    t.loc[1, "utterance_id"] = "u0"
    t.loc[2, "label"] = np.nan
    t.loc[3, "split"] = "dev"
    with pytest.raises(StoreError) as err:
        write_store(tmp_path, dataset="d", task="regression", utterances=t,
                    features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
    text = str(err.value)
    assert "duplicate" in text and "'u0'" in text
    assert "NaN" in text and "rows [2]" in text
    assert "'dev'" in text
    assert len(err.value.problems) == 3
    assert not (tmp_path / "store.json").exists()


def test_shape_and_length_problems(tmp_path):
    seqs = ragged()
    seqs[5] = np.zeros((3, 7), np.float32)
    with pytest.raises(StoreError, match=r"dimension differs.*samples \[5\]"):
        write_feature_set(tmp_path, "audio", table()["utterance_id"], ModalityData({"n": 1}, sequences=seqs))
    with pytest.raises(StoreError, match=r"lengths beyond the padded size 4.*\[1\]"):
        write_feature_set(tmp_path, "audio", table()["utterance_id"],
                          ModalityData({"n": 2}, values=np.zeros((9, 4, 2)), lengths=np.array([1, 5] + [1] * 7)))


def test_missing_split_is_an_error(tmp_path):
    t = table()
    t["split"] = "train"
    with pytest.raises(StoreError, match="split 'valid' has no utterances"):
        write_store(tmp_path, dataset="d", task="regression", utterances=t,
                    features={"audio": ModalityData({"name": "a"}, sequences=ragged())})


def test_interrupted_commit_leaves_previous_state_readable(tmp_path, monkeypatch):
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=ragged(seed=0))})
    before = open_store(tmp_path).features("audio").fingerprint

    real = atomic.write_json

    def killed(path, obj):  # the process dies while writing store.json (the commit point)
        if str(path).endswith("store.json"):
            raise KeyboardInterrupt("killed")
        real(path, obj)

    monkeypatch.setattr(atomic, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                    features={"audio": ModalityData({"name": "b"}, sequences=ragged(seed=1))})
    monkeypatch.setattr(atomic, "write_json", real)
    s = open_store(tmp_path)
    assert s.features("audio").fingerprint == before
    np.testing.assert_array_equal(s.features("audio").sequence(3), ragged(seed=0)[3])


def test_half_written_feature_set_and_store_are_refused(tmp_path):
    with pytest.raises(StoreError, match="not a committed feature store"):
        open_store(tmp_path)
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
    fs_dir = open_store(tmp_path).features("audio").folder
    (fs_dir / "manifest.json").unlink()  # as if the writer died before its commit point
    with pytest.raises(StoreError, match="never committed"):
        open_store(tmp_path)


def test_other_schema_version_has_a_fix(tmp_path):
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
    meta = json.loads((tmp_path / "store.json").read_text())
    meta["schema_version"] = 2
    (tmp_path / "store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="schema version 2.*reads version 1.*re-create"):
        open_store(tmp_path)


def test_same_content_reuses_the_feature_set(tmp_path):
    ids = table()["utterance_id"]
    fp1 = write_feature_set(tmp_path, "audio", ids, ModalityData({"name": "a"}, sequences=ragged()))
    fp2 = write_feature_set(tmp_path, "audio", ids, ModalityData({"name": "a"}, sequences=ragged()))
    fp3 = write_feature_set(tmp_path, "audio", ids[:-1].tolist() + ["other"], ModalityData({"name": "a"}, sequences=ragged()))
    assert fp1 == fp2 != fp3


def test_classification_and_multilabel_labels(tmp_path):
    t = table()
    t["label"] = [0, 1, 2] * 3
    write_store(tmp_path / "c", dataset="c", task="classification", utterances=t, classes=["neg", "neu", "pos"],
                features={"text": ModalityData({"n": 1}, sequences=ragged())})
    s = open_store(tmp_path / "c")
    assert s.classes == ["neg", "neu", "pos"] and s.labels().dtype == np.int64
    t["label"] = [0, 1, 3] * 3
    with pytest.raises(StoreError, match="outside the class indices 0..2"):
        write_store(tmp_path / "c2", dataset="c", task="classification", utterances=t, classes=["a", "b", "c"],
                    features={"text": ModalityData({"n": 1}, sequences=ragged())})
    t = table().drop(columns="label")
    t["label_happy"], t["label_sad"] = [0, 1, 1] * 3, [1, 0, 0] * 3
    write_store(tmp_path / "m", dataset="m", task="multilabel", utterances=t, label_columns=["label_happy", "label_sad"],
                features={"text": ModalityData({"n": 1}, sequences=ragged())})
    assert open_store(tmp_path / "m").labels().shape == (9, 2)
