"""Issue 14 findings on the store's inputs: unsafe dataset names (6) and infinite labels (8)."""
import json

import numpy as np
import pytest

from ebmc.extract.cli import main as extract_main
from ebmc.store import ModalityData, StoreError, open_store, write_store

from test_store import ragged, table


@pytest.mark.parametrize("name", ["../../X", "..", "a/b", ".hidden", "", "x" * 200, "a b"])
def test_unsafe_dataset_names_are_refused_before_writing(tmp_path, name):
    out = tmp_path / "out"
    with pytest.raises(StoreError, match="not a single folder name"):
        write_store(out, dataset=name, task="regression", utterances=table(),
                    features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
    assert not (out / "audio").exists()


def test_extract_refuses_an_escaping_dataset_name(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    assert extract_main([str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--dataset", "../../X",
                         "--modalities", "audio"]) == 2
    assert "not a single folder name" in capsys.readouterr().err
    assert not (tmp_path / "X").exists() and not (tmp_path / "out").exists()


def test_a_store_whose_dataset_name_escapes_does_not_open(tmp_path):
    write_store(tmp_path, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
    meta = json.loads((tmp_path / "store.json").read_text())
    meta["dataset"] = "../../X"
    (tmp_path / "store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="store.json.*not a single folder name"):
        open_store(tmp_path)


def test_infinite_labels_are_refused_with_their_rows(tmp_path):
    t = table()
    t.loc[[2, 5], "label"] = [np.inf, -np.inf]
    with pytest.raises(StoreError, match=r"infinite in 2 rows: rows \[2, 5\]"):
        write_store(tmp_path, dataset="d", task="regression", utterances=t,
                    features={"audio": ModalityData({"name": "a"}, sequences=ragged())})
