"""Issue 14, finding 7: damage to a committed store is detected on open (or with --verify), naming the file."""
import json
import logging

import numpy as np
import pytest

from ebmc.extract.exporters.cli import main as export_main
from ebmc.store import ModalityData, StoreError, open_store, write_store
from ebmc.train.cli import main as train_main

from test_store import ragged, table


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "s"
    padded = np.random.default_rng(1).standard_normal((9, 6, 3)).astype(np.float32)
    write_store(root, dataset="d", task="regression", utterances=table(),
                features={"audio": ModalityData({"name": "a"}, sequences=ragged()),
                          "vision": ModalityData({"name": "v"}, values=padded, lengths=np.arange(9) % 6 + 1)})
    return root


def fs_file(root, modality, name):
    return next((root / modality).glob(f"*/{name}"))


def edit_npy(path, change):
    arr = np.load(path)
    change(arr)
    np.save(path, arr)  # same size and header: only the content differs


@pytest.mark.parametrize("modality, name, change", [
    ("audio", "offsets.npy", lambda a: a.__setitem__(4, a[4] + 2)),  # shifted: still rising
    ("audio", "offsets.npy", lambda a: a.__setitem__(slice(5, None), 10 ** 9)),  # would allocate TiBs
    ("audio", "status.npy", lambda a: a.__setitem__(3, 7)),  # unknown status code
    ("vision", "lengths.npy", lambda a: a.__setitem__(0, 1000)),
])
def test_damaged_index_arrays_fail_on_open_naming_the_file(store, modality, name, change):
    path = fs_file(store, modality, name)
    edit_npy(path, change)
    with pytest.raises(StoreError) as e:
        open_store(store)
    assert str(path) in str(e.value) and "rerun the ebmc-import or ebmc-extract" in str(e.value)


def test_index_structure_is_checked_without_checksums(store):
    path = fs_file(store, "audio", "offsets.npy")
    manifest = path.parent / "manifest.json"
    meta = json.loads(manifest.read_text())
    for spec in meta["arrays"].values():
        del spec["sha256"]
    manifest.write_text(json.dumps(meta))
    edit_npy(path, lambda a: a.__setitem__(slice(5, None), 10 ** 9))
    with pytest.raises(StoreError, match="offsets must rise from 0"):
        open_store(store)


def test_finite_garbage_in_values_is_found_by_verify_train_and_export(store, tmp_path, capsys):
    path = fs_file(store, "audio", "values.npy")
    edit_npy(path, lambda a: a.__setitem__(slice(None), 0.5))
    open_store(store)  # the cheap open does not hash the big files
    with pytest.raises(StoreError, match="content differs from its checksum"):
        open_store(store, verify=True)
    assert train_main([str(store), "--verify", "--out", str(tmp_path / "runs"), "--seeds", "1"]) == 2
    assert str(path) in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert export_main(["mmsa", str(store), "--out", str(tmp_path / "x.pkl")]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_truncated_npy_names_the_file(store):
    path = fs_file(store, "vision", "values.npy")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(StoreError, match=f"{path}: not a complete .npy file"):
        open_store(store)


@pytest.mark.parametrize("which", ["store.json", "manifest.json"])
def test_broken_json_names_the_file(store, which):
    path = store / which if which == "store.json" else fs_file(store, "audio", which)
    path.write_text(path.read_text()[:30])
    with pytest.raises(StoreError, match=f"{path}: unreadable"):
        open_store(store)


def test_flipped_utterance_table_names_the_file(store):
    path = next(store.glob("utterances-*.parquet"))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = bytes(b ^ 0xFF for b in raw[len(raw) // 2:len(raw) // 2 + 64])
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=f"{path}: content differs from the hash in its name"):
        open_store(store)


def test_a_store_without_checksums_opens_with_a_note(store, caplog):
    for manifest in store.glob("*/*/manifest.json"):
        meta = json.loads(manifest.read_text())
        for spec in meta["arrays"].values():
            del spec["sha256"]
        manifest.write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO):
        assert open_store(store, verify=True).n == 9
    assert "written without checksums" in caplog.text and "cannot check the content" in caplog.text
