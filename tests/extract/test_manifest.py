"""Manifests: our CSV/Parquet format, MMSA label.csv, bare folders; every problem reported at once."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ebmc.extract.manifest import load_manifest
from ebmc.store import StoreError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GOOD = """utterance_id,video,start,end,transcript,transcript_file,label,split,speaker
a,clips/one.mp4,0,1.5,hello there,,0.5,train,007
b,clips/one.mp4,1.5,3,,texts/b.txt,-1,valid,007
c,clips/two.mp4,,,fine,,2.25,test,011
"""


def test_our_csv_gives_table_and_items_in_order(tmp_path):
    m = load_manifest(tmp_path, write(tmp_path / "m.csv", GOOD), dataset="mine")
    assert (m.dataset, m.task, m.label_columns, m.classes) == ("mine", "regression", ("label",), None)
    assert m.table["utterance_id"].tolist() == ["a", "b", "c"]
    assert m.table["label"].tolist() == [0.5, -1.0, 2.25]
    assert m.table["speaker"].tolist() == ["007", "007", "011"]  # text columns keep leading zeros
    a, b, c = m.items
    assert (a.path, a.start, a.end, a.transcript) == (tmp_path / "clips/one.mp4", 0.0, 1.5, "hello there")
    assert (b.transcript, b.transcript_file) == (None, tmp_path / "texts/b.txt")
    assert (c.start, c.end) == (None, None)
    assert m.source == {"format": "manifest", "file": "m.csv"}


def test_parquet_manifest_reads_like_csv(tmp_path):
    pd.read_csv(write(tmp_path / "m.csv", GOOD), dtype=str, keep_default_na=False).to_parquet(tmp_path / "m.parquet")
    m = load_manifest(tmp_path, tmp_path / "m.parquet")
    assert m.table["utterance_id"].tolist() == ["a", "b", "c"] and m.items[0].end == 1.5
    typed = pd.DataFrame({"utterance_id": ["a", "b"], "video": ["a.mp4", "b.mp4"], "start": [0.5, None],
                          "end": [2.0, None], "transcript": ["hi", None]})
    typed.to_parquet(tmp_path / "typed.parquet")
    a, b = load_manifest(tmp_path, tmp_path / "typed.parquet").items
    assert (a.start, a.end, a.transcript) == (0.5, 2.0, "hi") and (b.start, b.end, b.transcript) == (None, None, None)


def test_every_problem_is_reported_at_once(tmp_path):
    bad = """utterance_id,video,start,end,transcript,transcript_file,label,split
a,clips/one.mp4,2,1,hi,,0.5,train
a,../outside.mp4,0,1,hi,,1,train
c,/etc/passwd,x,,hi,,1,train
d,clips/d.mp4,,,hi,t.txt,1,train
e,,,,hi,,,valid
f,clips/f.mp4,,,,../../t.txt,0,tested
"""
    with pytest.raises(StoreError) as err:
        load_manifest(tmp_path, write(tmp_path / "m.csv", bad))
    text = str(err.value)
    for expected in ["row 0 ('a'): end 1.0 <= start 2.0", "row 1 ('a'): video '../outside.mp4' escapes",
                     "row 2 ('c'): video '/etc/passwd' escapes", "row 2 ('c'): start 'x' is not a number",
                     "rows [3] give both transcript and transcript_file", "row 4 ('e'): empty video path",
                     "row 5 ('f'): transcript_file '../../t.txt' escapes", "duplicate utterance ids",
                     "'label' is NaN or not numeric", "tested"]:
        assert expected in text, expected
    assert len(err.value.problems) >= 10


def test_missing_columns_are_named(tmp_path):
    with pytest.raises(StoreError) as err:
        load_manifest(tmp_path, write(tmp_path / "m.csv", "id,path\nx,y.mp4\n"))
    assert "missing column 'utterance_id'" in str(err.value) and "missing column 'video'" in str(err.value)


def test_class_names_make_classification_and_label_columns_multilabel(tmp_path):
    cls = "utterance_id,video,label,split\na,a.mp4,happy,train\nb,b.mp4,sad,valid\nc,c.mp4,angry,test\nd,d.mp4,sad,train\n"
    m = load_manifest(tmp_path, write(tmp_path / "c.csv", cls))
    assert (m.task, m.classes) == ("classification", ("angry", "happy", "sad"))
    assert m.table["label"].tolist() == [1, 2, 0, 2]
    multi = "utterance_id,video,label_happy,label_sad,split\na,a.mp4,1,0,train\nb,b.mp4,0,1,valid\nc,c.mp4,1,1,test\n"
    m = load_manifest(tmp_path, write(tmp_path / "ml.csv", multi))
    assert (m.task, m.label_columns) == ("multilabel", ("label_happy", "label_sad"))


def test_unlabelled_csv_gets_split_none(tmp_path):
    m = load_manifest(tmp_path, write(tmp_path / "u.csv", "utterance_id,video\na,a.mp4\nb,b.mp4\n"))
    assert m.task is None and m.table["split"].tolist() == ["none", "none"]


MMSA = """video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode
03bSnISJMiM,1,A LOT OF SAD PARTS,-0.8,,,,Negative,train
03bSnISJMiM,10,IT WAS GOOD,1.2,1.0,0.5,,Positive,valid
0h-zjBukYpk,0002,BAD MOVIE,-2.0,,,,Negative,test
"""


def test_mmsa_label_csv_is_found_and_mapped(tmp_path):
    write(tmp_path / "label.csv", MMSA)
    m = load_manifest(tmp_path)
    assert m.source == {"format": "mmsa", "file": "label.csv"} and m.task == "regression"
    assert m.table["utterance_id"].tolist() == ["03bSnISJMiM$_$1", "03bSnISJMiM$_$10", "0h-zjBukYpk$_$0002"]
    assert m.table["split"].tolist() == ["train", "valid", "test"]
    assert m.items[2].path == tmp_path / "Raw" / "0h-zjBukYpk" / "0002.mp4"
    assert m.items[1].transcript == "IT WAS GOOD"
    assert m.table["label_T"].iloc[1] == 1.0 and pd.isna(m.table["label_T"].iloc[0])
    assert m.table["annotation"].tolist() == ["Negative", "Positive", "Negative"]
    assert m.dataset == tmp_path.name


def test_mmsa_problems_are_reported(tmp_path):
    with pytest.raises(StoreError, match="missing MMSA column 'mode'"):
        load_manifest(tmp_path, write(tmp_path / "x" / "label.csv", "video_id,clip_id,text,label\nv,1,t,0\n"))


def test_bare_folder_with_sidecar_transcripts_is_unlabelled(tmp_path):
    for rel in ["b.mp4", "sub/a.MOV", ".cache/skip.mp4", "notes.txt"]:
        write(tmp_path / rel, "x")
    write(tmp_path / "sub" / "a.txt", "hello")
    m = load_manifest(tmp_path)
    assert m.table["utterance_id"].tolist() == ["b", "sub/a"]
    assert m.task is None and set(m.table["split"]) == {"none"} and m.source == {"format": "folder"}
    assert m.items[0].transcript_file is None and m.items[1].transcript_file == tmp_path / "sub" / "a.txt"


def test_empty_folder_and_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(StoreError, match="no videos found"):
        load_manifest(tmp_path)
    with pytest.raises(StoreError, match="manifest file not found"):
        load_manifest(tmp_path, tmp_path / "nope.csv")
    with pytest.raises(StoreError, match="videos folder not found"):
        load_manifest(tmp_path / "nope")


@pytest.mark.parametrize("column, known", [("strat", "start"), ("End", "end"), ("transcipt", "transcript")])
def test_unknown_column_that_looks_like_a_known_one_is_an_error(tmp_path, column, known):
    text = f"utterance_id,video,{column},label,split\na,one.mp4,1.0,0.5,train\n"
    with pytest.raises(StoreError, match=f"column '{column}' is not a manifest column but looks like '{known}'"):
        load_manifest(tmp_path, write(tmp_path / "m.csv", text), dataset="d")


def test_unlike_extra_columns_are_kept(tmp_path):
    m = load_manifest(tmp_path, write(tmp_path / "m.csv", GOOD.replace("speaker", "speaker_name")), dataset="d")
    assert "speaker_name" in m.table.columns


def test_infinite_labels_are_refused_with_their_rows(tmp_path):
    text = GOOD.replace(",0.5,train,", ",inf,train,").replace(",-1,valid,", ",-inf,valid,")
    with pytest.raises(StoreError, match=r"label column 'label' is infinite in 2 rows: rows \[0, 1\]"):
        load_manifest(tmp_path, write(tmp_path / "m.csv", text), dataset="d")
