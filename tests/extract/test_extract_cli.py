"""ebmc-extract's command line: flags from the config dataclasses, exit codes, summaries, failure table, shards."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebmc.extract import cli, pipeline, workers
from ebmc.extract.extractors.config import AudioConfig, TextConfig, VisionConfig
from ebmc.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
import counting_extractor as ce  # noqa: E402


@pytest.fixture
def fake(monkeypatch):
    """The CLI's real configs, a counting extractor behind them."""
    def make(modality, config):
        return ce.CountingExtractor(modality, ce.CountingConfig())
    for module in (pipeline, workers):
        monkeypatch.setattr(module, "make_extractor", make)
    ce.CALLS.clear()


def dataset(tmp: Path, bad: bool) -> Path:
    videos = tmp / "videos"
    videos.mkdir()
    rows = []
    for k, split in enumerate(["train", "valid", "test", "train"]):
        data = b"BAD" if bad and k == 2 else b"clip number %d" % k
        (videos / f"c{k}.mp4").write_bytes(data)
        rows.append({"utterance_id": f"c{k}", "video": f"c{k}.mp4", "transcript": f"words of clip {k}",
                     "label": k - 1.5, "split": split})
    pd.DataFrame(rows).to_csv(tmp / "m.csv", index=False)
    return videos


def test_flags_come_from_the_config_dataclasses():
    args = cli.build_parser().parse_args(["v", "--out", "o", "--text.model", "/models/bert", "--audio.backend",
                                          "librosa", "--vision.fps", "5", "--modalities", "text", "audio", "vision"])
    configs = cli.build_configs(args)
    assert configs["text"] == TextConfig(model="/models/bert")
    assert configs["audio"] == AudioConfig(backend="librosa")
    assert configs["vision"] == VisionConfig(fps=5.0)
    only = cli.build_configs(cli.build_parser().parse_args(["v", "--out", "o", "--modalities", "audio"]))
    assert list(only) == ["audio"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["v", "--out", "o", "--shard", "4/4"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["v", "--out", "o", "--shard", "0/2", "--commit"])


def test_clean_run_exits_0_and_rerun_is_all_cached(tmp_path, fake, capsys):
    videos = dataset(tmp_path, bad=False)
    argv = [str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "audio  4 utterances: 0 cached, 4 new, 0 failed" in out and "committed" in out
    assert cli.main(argv) == 0
    assert "vision 4 utterances: 4 cached, 0 new, 0 failed" in capsys.readouterr().out
    assert ce.CALLS == {"text": 4, "audio": 4, "vision": 4}


def test_failures_give_exit_1_a_table_and_a_committed_store(tmp_path, fake, capsys):
    videos = dataset(tmp_path, bad=True)
    code = cli.main([str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f"),
                     "--modalities", "audio", "vision", "--dataset", "mine"])
    out = capsys.readouterr().out
    assert code == 1
    assert "2 failed:" in out and "modality" in out and "reason" in out
    assert [line.split()[:3] for line in out.splitlines() if "corrupt media" in line] == [
        ["audio", "c2.mp4", "c2"], ["vision", "c2.mp4", "c2"]]
    store = open_store(tmp_path / "f" / "mine")
    assert store.modalities == ("audio", "vision")
    assert store.features("audio").status.tolist() == ["ok", "ok", "failed", "ok"]


def test_bad_manifest_exits_2_before_extracting(tmp_path, fake, capsys):
    videos = dataset(tmp_path, bad=False)
    (tmp_path / "m.csv").write_text("utterance_id,video,end\na,../x.mp4,0\n")
    assert cli.main([str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "escapes the videos root" in err and "end 0.0 <= start 0.0" in err
    assert sum(ce.CALLS.values()) == 0
    assert cli.main([str(videos), "--out", str(tmp_path / "f"), "--vision.fps", "-1"]) == 2
    assert "--vision.fps=-1.0 must be > 0" in capsys.readouterr().err


def test_an_extractor_that_cannot_start_exits_2(tmp_path, fake, monkeypatch, capsys):
    def no_model(self):
        raise ce.ExtractionError("model folder /models/bert not found; give an existing --text.model")
    monkeypatch.setattr(ce.CountingExtractor, "setup", no_model)
    videos = dataset(tmp_path, bad=False)
    assert cli.main([str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f")]) == 2
    assert "the text extractor could not start: model folder /models/bert not found" in capsys.readouterr().err


def test_shards_then_commit(tmp_path, fake, capsys):
    videos = dataset(tmp_path, bad=False)
    base = [str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f")]
    assert cli.main(base + ["--shard", "1/2"]) == 0
    assert "shard 1/2 done" in capsys.readouterr().out
    assert cli.main(base + ["--commit"]) == 2
    assert "2 of 4 utterances are not extracted yet" in capsys.readouterr().err
    assert cli.main(base + ["--shard", "0/2"]) == 0
    assert cli.main(base + ["--commit"]) == 0
    store = open_store(tmp_path / "f" / "videos")
    np.testing.assert_array_equal(store.features("audio").sequence(3), ce.expected_values(b"clip number 3"))


def test_real_extractors_end_to_end(tmp_path, capsys):
    """The defaults (MiniLM text, openSMILE audio, blendshapes vision) on generated talking-face clips, 2 workers."""
    if shutil.which("espeak-ng") is None:
        from media_fixtures import skip_or_fail
        skip_or_fail("espeak-ng not installed (apt-get install espeak-ng)")
    from media_fixtures import build_media
    media = build_media(tmp_path / "videos")
    rows = [{"utterance_id": "talking", "video": "talking.mp4", "transcript": "hello this is a test"},
            {"utterance_id": "blank", "video": "blank_face.mp4", "transcript": "a face that goes away"},
            {"utterance_id": "span", "video": "talking.mp4", "start": 0.5, "end": 2.0, "transcript": "part of it"},
            {"utterance_id": "broken", "video": "corrupt.mp4", "transcript": "nothing to see"}]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    argv = [str(media["talking"].parent), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f"), "--workers", "2"]
    assert cli.main(argv) == 1
    store = open_store(tmp_path / "f" / "videos")
    audio, vision, text = (store.features(m) for m in ("audio", "vision", "text"))
    assert audio.status.tolist() == vision.status.tolist() == ["ok", "ok", "ok", "failed"]
    assert text.status.tolist() == ["ok"] * 4
    assert abs(audio.lengths[0] - 300) <= 5 and abs(audio.lengths[2] - 150) <= 5  # 10 ms hops over 3 s and 1.5 s
    assert vision.lengths[:3].tolist() == [30, 30, 15]  # 10 fps
    assert vision.dim == 52 + 3 + 1 and "/" not in vision.producer["config"]["model"]  # its sha256, not its path
    assert not vision.sequence(1, "frame_mask")[12:18].any() and vision.sequence(1, "frame_mask")[:8].all()
    assert text.has("token_ids") and text.has("word_ids") and text.dim == 384
    assert (Path(text.info["model_path"]) / "config.json").is_file()  # what the [UNK] protocol re-loads
    capsys.readouterr()
    assert cli.main(argv) == 1
    assert "audio  4 utterances: 3 cached, 0 new, 1 failed" in capsys.readouterr().out
    # one process, no pool: the same rows in the same (manifest) order
    assert cli.main(argv[:-4] + ["--out", str(tmp_path / "serial"), "--modalities", "audio", "vision"]) == 1
    serial = open_store(tmp_path / "serial" / "videos")
    for m in ("audio", "vision"):
        np.testing.assert_array_equal(serial.features(m).array("values"), store.features(m).array("values"))
