"""Tests of `ebmc-import arrays`: manifests of .npy/.npz files -> feature stores, and every bad input."""
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebmc.extract.importers import cli
from ebmc.extract.importers.arrays import import_arrays
from ebmc.extract.importers.speaker_split import SpeakerSplitConfig
from ebmc.store import StoreError, open_store

EMOTIONS = ["neutral", "happy", "sad", "angry"]  # deliberately not in sorted order
SPLIT_OF = ["train"] * 4 + ["valid", "test"]


def make_dataset(folder: Path, n: int = 36, audio_d: int = 6, vision_d: int = 5, seq: bool = False,
                 seed: int = 0) -> pd.DataFrame:
    """Write per-utterance arrays under ``folder/feats`` and return the manifest (not yet saved).

    Labels cycle through EMOTIONS and splits through SPLIT_OF (so every class is in every split);
    audio carries a planted class signal so a model can learn it.
    """
    rng = np.random.default_rng(seed)
    (folder / "feats").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        uid = f"utt{i:03d}"
        k = i % len(EMOTIONS)
        audio = rng.normal(size=((3 + i % 4, audio_d) if seq else (audio_d,))).astype(np.float32)
        audio[..., k] += 3.0
        np.save(folder / "feats" / f"{uid}.audio.npy", audio)
        np.save(folder / "feats" / f"{uid}.vision.npy", rng.normal(size=(vision_d,)).astype(np.float32))
        rows.append({"utterance_id": uid, "split": SPLIT_OF[i % len(SPLIT_OF)], "label": EMOTIONS[k],
                     "speaker": f"spk{i % 9}", "transcript": f"utterance {i}",
                     "audio": f"feats/{uid}.audio.npy", "vision": f"feats/{uid}.vision.npy"})
    return pd.DataFrame(rows)


def save(manifest: pd.DataFrame, folder: Path) -> Path:
    path = folder / "manifest.csv"
    manifest.to_csv(path, index=False)
    return path


def problems_of(manifest_path: Path, out: Path, **kw) -> list[str]:
    with pytest.raises(StoreError) as err:
        import_arrays(manifest_path, out, **kw)
    return err.value.problems


def test_classification_two_modalities_vectors_keep_class_names(tmp_path):
    m = make_dataset(tmp_path)
    m.loc[5, "vision"] = ""  # vision absent for one utterance
    root = import_arrays(save(m, tmp_path), tmp_path / "store")
    store = open_store(root)
    assert store.task == "classification"
    assert store.classes == sorted(EMOTIONS)
    assert store.modalities == ("audio", "vision")
    names = np.asarray(store.classes)[store.labels()]
    assert names.tolist() == m["label"].tolist()
    table = store.utterances
    assert table["utterance_id"].tolist() == m["utterance_id"].tolist()
    assert table["split"].tolist() == m["split"].tolist()
    assert table["transcript"].tolist() == m["transcript"].tolist()
    assert "audio" not in table.columns  # file paths are not features
    audio, vision = store.features("audio"), store.features("vision")
    assert (audio.dim, vision.dim) == (6, 5)
    assert (audio.lengths == 1).all()  # a vector is a sequence of one step
    assert not vision.present[5] and vision.present.sum() == len(m) - 1
    assert table.loc[5, "vision_status"] == "absent"
    np.testing.assert_array_equal(audio.sequence(7)[0], np.load(tmp_path / "feats" / "utt007.audio.npy"))


def test_regression_inferred_and_sequences_round_trip(tmp_path):
    m = make_dataset(tmp_path, seq=True)
    m["label"] = [f"{v:.2f}" for v in np.linspace(-3, 3, len(m))]
    store = open_store(import_arrays(save(m, tmp_path), tmp_path / "store"))
    assert store.task == "regression" and store.classes is None
    np.testing.assert_allclose(store.labels(), np.linspace(-3, 3, len(m)), atol=0.006)
    for i in (0, 3, 17):
        want = np.load(tmp_path / m.loc[i, "audio"])
        np.testing.assert_array_equal(store.features("audio").sequence(i), want)


def test_integer_labels_need_task_and_sort_numerically(tmp_path):
    m = make_dataset(tmp_path)
    m["label"] = [str([2, 10, 7][i % 3]) for i in range(len(m))]
    path = save(m, tmp_path)
    problems = problems_of(path, tmp_path / "store")
    assert any("--task regression or --task classification" in p for p in problems)
    store = open_store(import_arrays(path, tmp_path / "store", task="classification"))
    assert store.classes == ["2", "7", "10"]
    assert np.asarray(store.classes)[store.labels()].tolist() == m["label"].tolist()
    store = open_store(import_arrays(path, tmp_path / "reg", task="regression"))
    assert store.labels().tolist() == [float(v) for v in m["label"]]


def test_multilabel_one_vs_rest_columns(tmp_path):
    m = make_dataset(tmp_path).drop(columns="label")
    for k, name in enumerate(EMOTIONS):
        m[f"label_{name}"] = [int(i % 4 == k) for i in range(len(m))]
    store = open_store(import_arrays(save(m, tmp_path), tmp_path / "store"))
    assert store.task == "multilabel"
    assert store.label_columns == [f"label_{e}" for e in EMOTIONS]
    np.testing.assert_array_equal(store.labels(), m[[f"label_{e}" for e in EMOTIONS]].to_numpy())


def test_npz_keys_and_missing_key(tmp_path):
    m = make_dataset(tmp_path)
    arrays = {f"{uid}/audio": np.load(tmp_path / p) for uid, p in zip(m["utterance_id"], m["audio"])}
    np.savez(tmp_path / "all.npz", **arrays)
    m["audio"] = "all.npz"
    store = open_store(import_arrays(save(m, tmp_path), tmp_path / "store"))
    np.testing.assert_array_equal(store.features("audio").sequence(4)[0], arrays["utt004/audio"])
    m.loc[2, "vision"] = "all.npz"  # holds no utt002/vision
    problems = problems_of(save(m, tmp_path), tmp_path / "store2")
    assert problems == [f"{tmp_path / 'manifest.csv'} row 4 (utterance 'utt002'): 'all.npz' has no array "
                        "'utt002/vision'; name each array <utterance_id>/<modality>"]


def _break(m: pd.DataFrame, folder: Path, case: str) -> tuple[pd.DataFrame, dict, str]:
    """Apply one bad input to a good manifest; return it, import kwargs and a pattern its error must match."""
    if case == "missing file":
        m.loc[3, "audio"] = "feats/nope.npy"
        return m, {}, r"row 5 \(utterance 'utt003'\): audio file 'feats/nope.npy' not found"
    if case == "dimension":
        np.save(folder / "feats" / "utt008.vision.npy", np.zeros(7, np.float32))
        return m, {}, r"row 10 \(utterance 'utt008'\): vision has dimension d=7, but \d+ other vision arrays have d=5"
    if case == "label does not parse":
        m["label"] = [f"{v:.1f}" for v in np.linspace(-1, 1, len(m))]
        m.loc[11, "label"] = "positive"
        return m, {"task": "regression"}, r"row 13 \(utterance 'utt011'\): label 'positive' is not a finite number"
    if case == "empty split":
        m["split"] = m["split"].replace("valid", "train")
        return m, {}, r"split 'valid' has no rows"
    if case == "class absent from train":
        m.loc[m["label"] == "sad", "split"] = "test"
        return m, {}, r"class 'sad' has no train rows"
    if case == "duplicate ids":
        m.loc[20, "utterance_id"] = "utt004"
        return m, {}, r"utterance id 'utt004' appears in rows \[6, 22\]"
    if case == "escaping path":
        m.loc[1, "vision"] = "../outside.npy"
        return m, {}, r"row 3 \(utterance 'utt001'\): vision path '../outside.npy' leaves the manifest's folder"
    if case == "absolute path":
        m.loc[1, "vision"] = str((folder / m.loc[1, "vision"]).resolve())
        return m, {}, r"row 3 \(utterance 'utt001'\): vision path .* leaves the manifest's folder"
    if case == "bad split value":
        m.loc[0, "split"] = "dev"
        return m, {}, r"split values \['dev'\] in rows \[2\]"
    if case == "bad shape":
        np.save(folder / "feats" / "utt009.audio.npy", np.zeros((2, 3, 6), np.float32))
        return m, {}, r"row 11 \(utterance 'utt009'\): audio array has shape \(2, 3, 6\)"
    if case == "unreadable file":
        (folder / "feats" / "utt012.audio.npy").write_text("not an array")
        return m, {}, r"row 14 \(utterance 'utt012'\): cannot read audio file 'feats/utt012.audio.npy'"
    if case == "unreadable npz":
        (folder / "feats" / "bad.npz").write_bytes(b"PK not a zip")
        m.loc[2, "audio"] = "feats/bad.npz"
        return m, {}, r"row 4 \(utterance 'utt002'\): cannot read audio file 'feats/bad.npz'"
    if case == "infinite label":
        m["label"] = [str(i / 10) for i in range(len(m))]
        m.loc[3, "label"] = "-inf"
        return m, {"task": "regression"}, r"row 5 \(utterance 'utt003'\): label '-inf' is not a finite number"
    if case == "no modality":
        m.loc[6, ["audio", "vision"]] = ""
        return m, {}, r"row 8 \(utterance 'utt006'\): no modality given"
    if case == "mixed labels":
        m.loc[0, "label"] = "1.5"
        return m, {}, r"labels mix numbers .* pass --task regression"
    if case == "multilabel not 0/1":
        m = m.drop(columns="label").assign(label_happy=[i % 2 for i in range(len(m))], label_sad=1)
        m.loc[4, "label_sad"] = 2
        return m, {}, r"row 6 \(utterance 'utt004'\): label_sad is '2', not 0 or 1"
    raise AssertionError(case)


CASES = ["missing file", "dimension", "label does not parse", "empty split", "class absent from train",
         "duplicate ids", "escaping path", "absolute path", "bad split value", "bad shape", "unreadable file",
         "unreadable npz", "infinite label", "no modality", "mixed labels", "multilabel not 0/1"]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_input_is_reported_with_its_row(tmp_path, case):
    m, kw, pattern = _break(make_dataset(tmp_path), tmp_path, case)
    problems = problems_of(save(m, tmp_path), tmp_path / "store", **kw)
    assert any(re.search(pattern, p) for p in problems), problems
    assert not (tmp_path / "store" / "store.json").exists()


def test_all_problems_listed_at_once(tmp_path):
    m = make_dataset(tmp_path)
    patterns = []
    for case in ["missing file", "dimension", "duplicate ids", "escaping path", "bad shape", "no modality"]:
        m, _, pattern = _break(m, tmp_path, case)
        patterns.append(pattern)
    problems = problems_of(save(m, tmp_path), tmp_path / "store")
    assert len(problems) == len(patterns), problems
    for pattern in patterns:
        assert any(re.search(pattern, p) for p in problems), (pattern, problems)


def test_nonfinite_values_reported_with_rows_then_replaced(tmp_path, caplog):
    m = make_dataset(tmp_path, seq=True)
    bad = np.load(tmp_path / "feats" / "utt010.audio.npy")
    bad[0, 0], bad[1, 2] = np.nan, -np.inf
    np.save(tmp_path / "feats" / "utt010.audio.npy", bad)
    with caplog.at_level(logging.WARNING):
        store = open_store(import_arrays(save(m, tmp_path), tmp_path / "store"))
    assert re.search(r"audio: 2 non-finite values .* in 1 rows, e.g. row 12 \(2\)", caplog.text), caplog.text
    audio = store.features("audio")
    assert audio.manifest["stats"]["nonfinite_replaced"] == 2
    got = audio.sequence(10)
    assert np.isfinite(got).all() and got[0, 0] == 0 and got[1, 2] == 0
    assert got[0, 1] == bad[0, 1]


def test_speaker_split_written_into_the_utterance_table(tmp_path):
    m = make_dataset(tmp_path).drop(columns="split")
    store = open_store(import_arrays(save(m, tmp_path), tmp_path / "store", split_by="speaker",
                                     split=SpeakerSplitConfig(valid=2, test=2, seed=7)))
    table = store.utterances
    per_speaker = table.groupby("speaker")["split"].nunique()
    assert (per_speaker == 1).all()
    speakers_in = table.groupby("split")["speaker"].nunique()
    assert (speakers_in["valid"], speakers_in["test"], speakers_in["train"]) == (2, 2, 5)
    assert store.meta["source"]["split"] == {"from": "speaker", "valid": 2, "test": 2, "seed": 7}


def test_fingerprint_follows_content_not_paths(tmp_path):
    m = make_dataset(tmp_path / "a")
    first = open_store(import_arrays(save(m, tmp_path / "a"), tmp_path / "s1")).fingerprints()
    # same content in another folder under other file names: same fingerprints
    make_dataset(tmp_path / "b")
    for p in (tmp_path / "b" / "feats").glob("*.npy"):
        p.rename(p.with_name("x_" + p.name))
    moved = m.assign(audio="feats/x_" + m["audio"].str[len("feats/"):], vision="feats/x_" + m["vision"].str[len("feats/"):])
    second = open_store(import_arrays(save(moved, tmp_path / "b"), tmp_path / "s2")).fingerprints()
    assert first == second
    arr = np.load(tmp_path / "b" / "feats" / "x_utt000.audio.npy")
    np.save(tmp_path / "b" / "feats" / "x_utt000.audio.npy", arr + 1)
    third = open_store(import_arrays(save(moved, tmp_path / "b"), tmp_path / "s3")).fingerprints()
    assert third["audio"] != first["audio"] and third["vision"] == first["vision"]


def test_cli_imports_and_reports_errors(tmp_path, capsys):
    m = make_dataset(tmp_path)
    path = save(m, tmp_path)
    assert cli.main(["arrays", "--manifest", str(path), "--out", str(tmp_path / "store"), "--dataset", "emo"]) == 0
    out = capsys.readouterr().out
    assert "imported 36 utterances" in out and "['angry', 'happy', 'neutral', 'sad']" in out
    assert open_store(tmp_path / "store").dataset == "emo"
    m.loc[0, "audio"] = "missing.npy"
    save(m, tmp_path)
    assert cli.main(["arrays", "--manifest", str(path), "--out", str(tmp_path / "bad")]) == 1
    assert "row 2 (utterance 'utt000'): audio file 'missing.npy' not found" in capsys.readouterr().err


def _doc_python_blocks() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "bring-your-own-features.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_in_memory_api_example_in_docs_runs(tmp_path, monkeypatch):
    blocks = _doc_python_blocks()
    assert blocks, "docs/bring-your-own-features.md has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "bring-your-own-features.md", "exec"), namespace)
    store = open_store(tmp_path / "features" / "my_emotions")
    assert store.task == "classification" and store.classes == ["angry", "happy", "neutral"]
    assert set(store.modalities) == {"audio", "vision"}


def test_imported_classification_trains_end_to_end_with_class_names(tmp_path):
    """Two modalities of utterance-level vectors -> store -> ebmc-train on CPU -> per-class F1 by name."""
    from ebmc.train.cli import main as train_main

    m = make_dataset(tmp_path, n=48)
    root = import_arrays(save(m, tmp_path), tmp_path / "emo")
    out = tmp_path / "runs"
    code = train_main([str(root), "--out", str(out), "--seeds", "1111", "--no-progress",
                       "--train.stage1_epochs", "2", "--train.stage2_epochs", "2", "--train.batch_size", "8",
                       "--train.device", "cpu", "--model.hidden_dim", "16", "--model.encoder_layers", "1"])
    assert code == 0
    metrics_files = sorted(out.rglob("metrics.json"))
    assert metrics_files, f"no metrics.json under {out}"
    keys: set[str] = set()

    def collect(node):
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(metrics_files[0].read_text()))
    assert {f"f1_{name}" for name in EMOTIONS} <= keys, sorted(keys)
    assert not {f"f1_{k}" for k in range(len(EMOTIONS))} & keys  # class indices never stand in for names
