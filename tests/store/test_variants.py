"""Feature-set variants (e.g. word-aligned sets): committed beside the default sets, read by name, checked alike."""
import numpy as np
import pytest

from ebmc.store import ModalityData, StoreError, commit_store, open_store, write_feature_set, write_store
from test_store import ragged, table


def test_a_variant_is_read_in_place_of_the_default_sets(tmp_path):
    ids = table()["utterance_id"].tolist()
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "frames"}, sequences=ragged())})
    with pytest.raises(StoreError, match=r"no feature-set variant 'aligned' \(variants: none\)"):
        open_store(tmp_path, features="aligned")  # an older store: no variants
    default = open_store(tmp_path).fingerprints()
    words = write_feature_set(tmp_path, "audio", ids, ModalityData({"name": "words"}, sequences=ragged(d=4, seed=5)))
    commit_store(tmp_path, dataset="d", task="regression", utterances=table(), feature_sets=default,
                 variants={"aligned": {"audio": words}})
    plain, aligned = open_store(tmp_path), open_store(tmp_path, features="aligned")
    assert plain.fingerprints() == default and plain.variant is None
    assert aligned.fingerprints() == {"audio": words} and aligned.variant == "aligned"
    np.testing.assert_array_equal(aligned.features("audio").sequence(2), ragged(d=4, seed=5)[2])
    assert aligned.labels().tolist() == plain.labels().tolist()
    with pytest.raises(StoreError, match=r"no feature-set variant 'other' \(variants: aligned\)"):
        open_store(tmp_path, features="other")


def test_a_variant_of_other_utterances_is_refused(tmp_path):
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "frames"}, sequences=ragged())})
    other = write_feature_set(tmp_path, "audio", [f"x{i}" for i in range(9)], ModalityData({"name": "w"}, sequences=ragged()))
    with pytest.raises(StoreError, match="another utterance list"):
        commit_store(tmp_path, dataset="d", task="regression", utterances=table(),
                     feature_sets=open_store(tmp_path).fingerprints(), variants={"aligned": {"audio": other}})
