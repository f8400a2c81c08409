"""ebmc-import csd: .csd files (the SDK's HDF5 layout) sliced per segment by interval, folds, round trips, bad inputs."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from ebmc.extract.exporters.cli import main as export_main
from ebmc.extract.importers.cli import main as import_main
from ebmc.extract.importers.csd import import_csd, load_folds
from ebmc.store import ModalityData, StoreError, open_store, write_store

MOSI = json.load(open(__import__("ebmc.extract.importers.csd", fromlist=["FOLDS_DIR"]).FOLDS_DIR / "cmu_mosi.json"))
VIDEOS = {"train": MOSI["train"][:2], "valid": MOSI["valid"][:1], "test": MOSI["test"][:1]}
META = ["root name", "computational sequence description", "computational sequence version", "alignment compatible",
        "dataset name", "dataset version", "creator", "contact", "featureset bib citation", "dataset bib citation"]


def write_raw_csd(path, root, entries):
    """A .csd written with h5py in the SDK's layout (root/data/<video>/{features,intervals}, root/metadata)."""
    with h5py.File(path, "w") as f:
        for vid, (iv, feats) in entries.items():
            f.create_dataset(f"{root}/data/{vid}/intervals", data=iv)
            f.create_dataset(f"{root}/data/{vid}/features", data=feats)
        for key in META:
            ds = f.create_dataset(f"{root}/metadata/{key}", (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = root if key == "root name" else "x"
    return path


def test_segments_take_every_overlapping_row(tmp_path, capfd):
    vid = VIDEOS["train"][0]
    labels = write_raw_csd(tmp_path / "labels.csd", "L",
                           {vid: (np.array([[0.0, 2.0], [2.0, 5.0], [9.0, 10.0]]), np.array([[1.5], [-2.0], [0.5]]))})
    audio_iv = np.stack([np.arange(0, 6, 0.5), np.arange(0.5, 6.5, 0.5)], 1)  # 12 rows of 0.5 s up to 6 s
    audio = write_raw_csd(tmp_path / "audio.csd", "A", {vid: (audio_iv, np.arange(24.0).reshape(12, 2))})
    words = write_raw_csd(tmp_path / "text.csd", "T", {vid: (np.array([[0.0, 1.0], [1.5, 2.5], [3.0, 4.0]]), np.eye(3))})
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"train": [vid], "valid": [], "test": []}))
    with pytest.raises(StoreError, match="split 'valid' has no utterances"):
        import_csd(labels, {"audio": audio, "text": words}, str(folds), tmp_path / "s")
    captured = capfd.readouterr()
    assert "<Status>" not in captured.out and "Computational Sequence Entries" not in captured.err  # mmsdk stays quiet
    store_dir = tmp_path / "s2"
    summary = _import_with_dummy_splits(tmp_path, labels, {"audio": audio, "text": words}, store_dir)
    store = open_store(store_dir)
    a, t = store.features("audio"), store.features("text")
    rows = store.utterances["utterance_id"].tolist().index(f"{vid}[1]")
    np.testing.assert_array_equal(a.sequence(rows), np.arange(24.0).reshape(12, 2)[4:10])  # [2, 5): rows 4..9
    np.testing.assert_array_equal(a.sequence(rows - 1), np.arange(24.0).reshape(12, 2)[:4])
    np.testing.assert_array_equal(t.sequence(rows), np.eye(3)[1:])  # the word [1.5, 2.5] overlaps both segments
    np.testing.assert_array_equal(t.sequence(rows - 1), np.eye(3)[:2])
    np.testing.assert_array_equal(a.sequence(rows, "intervals")[0], [2.0, 2.5])
    assert list(a.status[rows - 1:rows + 2]) == ["ok", "ok", "absent"]  # [9, 10] has no rows
    assert summary["absent"] == {"text": 3, "audio": 3}  # [9, 10] and the two dummy videos
    np.testing.assert_allclose(store.labels()[rows - 1:rows + 2], [1.5, -2.0, 0.5])


def _import_with_dummy_splits(tmp_path, labels, features, out):
    """Give the other folds one labelled video each so the store has train, valid and test."""
    entries = {vid: (np.array([[0.0, 1.0]]), np.array([[0.0]])) for vid in ("v_valid", "v_test")}
    with h5py.File(labels, "r") as f:
        root = next(iter(f))
        for vid in f[f"{root}/data"]:
            entries[vid] = (f[f"{root}/data/{vid}/intervals"][()], f[f"{root}/data/{vid}/features"][()])
    full = write_raw_csd(tmp_path / "labels_full.csd", "L", entries)
    folds = tmp_path / "folds3.json"
    folds.write_text(json.dumps({"train": [v for v in entries if not v.startswith("v_")], "valid": ["v_valid"], "test": ["v_test"]}))
    return import_csd(full, features, str(folds), out)


def _csd_like_store(root):
    """A ragged store with segment times, row intervals, one absent modality and MOSI video ids."""
    rng = np.random.default_rng(0)
    rows, seqs, ivs = [], {m: [] for m in ("text", "audio", "vision")}, {m: [] for m in ("text", "audio", "vision")}
    dims = {"text": 6, "audio": 4, "vision": 3}
    for split, vids in VIDEOS.items():
        for vid in vids:
            for s in range(2):
                start = 10.0 * s
                rows.append({"utterance_id": f"{vid}[{s}]", "video_id": vid, "clip_id": str(s), "split": split,
                             "start": start, "end": start + 5.0, "label": float(rng.uniform(-3, 3))})
                for m, d in dims.items():
                    n = int(rng.integers(2, 7))
                    if m == "vision" and split == "test" and s == 1:
                        seqs[m].append(None)
                        ivs[m].append(None)
                        continue
                    step = 5.0 / n
                    seqs[m].append(rng.normal(size=(n, d)).astype(np.float32))
                    ivs[m].append(np.stack([start + step * np.arange(n), start + step * np.arange(1, n + 1)], 1))
    features = {m: ModalityData(producer={"name": "t", "m": m}, sequences=seqs[m], extras={"intervals": ivs[m]}) for m in dims}
    write_store(root, dataset="mosi", task="regression", utterances=pd.DataFrame(rows), features=features)
    return open_store(root)


def _assert_same_store(a, b):
    assert a.utterances["utterance_id"].tolist() == b.utterances["utterance_id"].tolist()
    assert a.utterances["split"].tolist() == b.utterances["split"].tolist()
    np.testing.assert_allclose(a.labels(), b.labels(), rtol=1e-6)
    for m in a.modalities:
        fa, fb = a.features(m), b.features(m)
        assert list(fa.status) == list(fb.status), m
        np.testing.assert_array_equal(fa.lengths, fb.lengths)
        for i in range(a.n):
            np.testing.assert_allclose(fa.sequence(i), fb.sequence(i), rtol=1e-6, err_msg=f"{m} sample {i}")


def test_csd_round_trip_through_mmsdk_with_standard_folds(tmp_path, capsys):
    original = _csd_like_store(tmp_path / "store")
    assert export_main(["csd", str(tmp_path / "store"), "--out", str(tmp_path / "csd")]) == 0
    assert "<Status>" not in capsys.readouterr().out
    from mmsdk import mmdatasdk  # the files are real computational sequences with all metadata
    seq = mmdatasdk.computational_sequence(str(tmp_path / "csd" / "audio.csd"))
    assert "creator" in seq.metadata and len(seq.data) == 4
    seq.h5handle.close()
    capsys.readouterr()
    args = ["csd", "--labels", str(tmp_path / "csd" / "labels.csd"), "--folds", "mosi", "--out", str(tmp_path / "back"),
            "--features"] + [f"{m}={tmp_path / 'csd' / (m + '.csd')}" for m in ("text", "audio", "vision")]
    assert import_main(args) == 0
    assert "<Status>" not in capsys.readouterr().out
    _assert_same_store(original, open_store(tmp_path / "back"))


def test_store_without_times_round_trips_through_a_synthetic_timeline(tmp_path):
    from pickle_fixtures import mmsa_data, write_pickle
    assert import_main(["mmsa", str(write_pickle(tmp_path / "u.pkl", mmsa_data())), "--out", str(tmp_path / "store")]) == 0
    assert export_main(["csd", str(tmp_path / "store"), "--out", str(tmp_path / "csd")]) == 0
    d = tmp_path / "csd"
    import_csd(d / "labels.csd", {m: d / f"{m}.csd" for m in ("text", "audio", "vision")}, str(d / "folds.json"), tmp_path / "back")
    a, b = open_store(tmp_path / "store"), open_store(tmp_path / "back")
    order = [b.utterances["utterance_id"].tolist().index(f"{v}[{i}]") for v, i in
             zip(a.utterances["video_id"], a.utterances.groupby("video_id").cumcount())]
    np.testing.assert_allclose(b.labels()[order], a.labels())
    for m in a.modalities:
        for i, j in enumerate(order):
            np.testing.assert_array_equal(b.features(m).sequence(j), a.features(m).sequence(i), err_msg=f"{m} {i}")


def test_bad_csd_inputs_are_listed_at_once(tmp_path):
    vid = VIDEOS["train"][0]
    labels = write_raw_csd(tmp_path / "labels.csd", "L", {vid: (np.array([[0.0, 1.0]]), np.array([[np.nan]])),
                                                          "not_in_folds": (np.array([[0.0, 1.0]]), np.array([[1.0]]))})
    audio = write_raw_csd(tmp_path / "audio.csd", "A",
                          {vid: (np.zeros((2, 2)), np.zeros((2, 3))), "x": (np.zeros((1, 2)), np.zeros((1, 4)))})
    words = write_raw_csd(tmp_path / "words.csd", "W", {vid: (np.zeros((1, 2)), np.array([[b"hello"]]))})
    with pytest.raises(StoreError) as err:
        import_csd(labels, {"audio": audio, "text": words}, "mosi", tmp_path / "out")
    text = str(err.value)
    for needle in ["feature shape differs across videos", "non-numeric features", "1 labelled videos are in no fold",
                   "NaN/inf labels in segments [0]"]:
        assert needle in text, needle
    with pytest.raises(StoreError, match="no such .csd file"):
        import_csd(tmp_path / "missing.csd", {}, "mosi", tmp_path / "out")
    with pytest.raises(StoreError, match="no such file"):
        load_folds(str(tmp_path / "nofolds.json"))
    assert import_main(["csd", "--labels", str(labels), "--folds", "mosi", "--out", str(tmp_path / "o"),
                        "--features", f"audio={audio}", f"audio={audio}"]) == 1


def test_missing_mmsdk_breaks_only_the_csd_subcommand(monkeypatch, capsys, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "mmsdk", None)  # import mmsdk now raises ImportError
    monkeypatch.delitem(sys.modules, "ebmc.extract.importers.csd")
    assert import_main(["csd", "--labels", "x.csd", "--features", "audio=a.csd", "--folds", "mosi", "--out", str(tmp_path)]) == 2
    assert "missing mmsdk" in capsys.readouterr().err
    from pickle_fixtures import mult_data, write_pickle
    assert import_main(["mult", str(write_pickle(tmp_path / "m.pkl", mult_data())), "--out", str(tmp_path / "s")]) == 0
