"""Speech recognition inside ebmc-extract: a bare folder end to end, a labelled manifest without transcripts through
ebmc-train, aligned sets, reruns that transcribe nothing, workers and shards, kill -9 during ASR."""
from __future__ import annotations

import pickle
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from ebmc.extract import cli
from ebmc.extract.exporters.mmsa import export_mmsa
from ebmc.store import open_store
from ebmc.extract.asr import word_error_rate
from kill import kill_9_when_cached
from test_asr import SPOKEN

pytestmark = pytest.mark.slow  # real models on real clips: ~1 min each on 2 cores


def _music_clip(path, media):
    """The talking clip's face over two tones: audio present, no speech."""
    from media_fixtures import face_image, write_mp4
    t = np.arange(3 * 16000) / 16000
    tones = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.2 * np.sin(2 * np.pi * 660 * t))
    return write_mp4(path, image=face_image(), duration=3.0, audio=tones.astype(np.float32), sample_rate=16000)


@pytest.fixture
def videos(tmp_path, media):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(media["talking"], folder / "talking.mp4")
    _music_clip(folder / "music.mp4", media)
    return folder


def test_bare_folder_yields_all_three_modalities(videos, tmp_path, capsys):
    argv = [str(videos), "--out", str(tmp_path / "f"), "--align", "words"]
    assert cli.main(argv) == 0
    store = open_store(tmp_path / "f" / "videos")
    assert store.modalities == ("text", "audio", "vision")
    table = store.utterances.set_index("utterance_id")
    assert table.loc["talking", "transcript_source"] == "asr" and table.loc["music", "transcript_source"] == "no speech"
    assert word_error_rate(SPOKEN, table.loc["talking", "transcript"]) <= 0.2
    assert table.loc["music", "text_status"] == "absent" and table.loc["music", "audio_status"] == "ok"
    text = store.features("text")
    stamps = text.sequence(1, "timestamps")  # the words' ASR times on their tokens; NaN on [CLS]/[SEP]
    assert np.isnan(stamps[0]).all() and np.isfinite(stamps[1:-1]).all()
    assert store.meta["source"]["asr"]["model_content"].startswith("sha256:") and "asr" in text.producer

    aligned = open_store(tmp_path / "f" / "videos", features="aligned")
    n_words = len(table.loc["talking", "transcript"].split())
    for m in aligned.modalities:
        fs = aligned.features(m)
        assert fs.status.tolist() == ["absent", "ok"] and fs.lengths[1] == n_words, m
        assert fs.sequence(1, "frame_mask").all()
    np.testing.assert_array_equal(aligned.features("audio").sequence(1, "timestamps"),
                                  aligned.features("vision").sequence(1, "timestamps"))

    capsys.readouterr()
    assert cli.main(argv) == 0  # a rerun transcribes nothing
    out = capsys.readouterr().out
    assert "asr    2 utterances: 2 cached, 0 new" in out and "text   2 utterances: 2 cached, 0 new" in out
    assert open_store(tmp_path / "f" / "videos").fingerprints() == store.fingerprints()


def test_labelled_manifest_without_transcripts_extracts_and_trains(videos, tmp_path):
    from ebmc.train.cli import main as train
    rows = [("a", "talking.mp4", None, None, 1.5, "train"), ("b", "talking.mp4", 0.0, 2.0, 0.5, "train"),
            ("c", "music.mp4", None, None, -1.0, "train"), ("d", "talking.mp4", 0.5, 3.0, -0.5, "valid"),
            ("e", "talking.mp4", 0.2, 2.8, 2.0, "test")]
    pd.DataFrame(rows, columns=["utterance_id", "video", "start", "end", "label", "split"]).to_csv(tmp_path / "m.csv", index=False)
    base = [str(videos), "--manifest", str(tmp_path / "m.csv"), "--align", "words"]
    assert cli.main(base + ["--out", str(tmp_path / "f"), "--workers", "2"]) == 0
    store = open_store(tmp_path / "f" / "videos")
    assert store.features("text").status.tolist() == ["ok", "ok", "absent", "ok", "ok"]
    assert store.task == "regression"

    # shards fill one cache, the commit assembles the same store as one run with 2 workers
    for shard in ("0/2", "1/2"):
        assert cli.main(base + ["--out", str(tmp_path / "s"), "--shard", shard]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "s"), "--commit"]) == 0
    sharded = open_store(tmp_path / "s" / "videos")
    assert sharded.fingerprints() == store.fingerprints()
    assert (open_store(tmp_path / "s" / "videos", "aligned").fingerprints()
            == open_store(tmp_path / "f" / "videos", "aligned").fingerprints())

    tiny = ["--model.hidden_dim", "8", "--model.max_steps", "4", "--model.encoder_layers", "1", "--model.encoder_heads", "2",
            "--model.encoder_ff_mult", "1", "--train.batch_size", "4", "--train.stage1_epochs", "1",
            "--train.stage2_epochs", "1", "--no-progress"]
    for features in ("", "aligned"):
        out = tmp_path / f"runs{features}"
        assert train([str(tmp_path / "f" / "videos"), "--out", str(out), "--data.features", features, *tiny]) == 0
        assert list(out.rglob("history.csv")), features

    export_mmsa(tmp_path / "f" / "videos", tmp_path / "aligned.pkl", aligned=True)
    with open(tmp_path / "aligned.pkl", "rb") as f:
        data = pickle.load(f)
    for split in ("train", "valid", "test"):
        steps = {data[split][m].shape[1] for m in ("text", "audio", "vision")}
        assert len(steps) == 1, split  # aligned: one step per word in every modality


SENTENCES = ("the weather was lovely this morning", "my brother bought a new red bicycle", "we watched a long film last night",
             "please close the window before you leave", "the children played football in the park",
             "she reads the newspaper every day", "our train was late again today", "he cooked pasta for the whole family")


def test_kill_9_during_asr_loses_only_the_utterance_in_flight(tmp_path, capsys):
    from media_fixtures import espeak_wav, read_wav, write_mp4
    videos = tmp_path / "videos"
    videos.mkdir()
    for k, text in enumerate(SENTENCES):
        speech, sr = read_wav(espeak_wav(text, tmp_path / "speech.wav"))
        write_mp4(videos / f"u{k}.mp4", image=None, duration=speech.size / sr + 0.2, audio=speech, sample_rate=sr)
    argv = [str(videos), "--out", str(tmp_path / "f"), "--modalities", "text", "--workers", "1"]
    run = "import sys; from ebmc.extract.cli import main; sys.exit(main(sys.argv[1:]))"
    asr_cache = tmp_path / "f" / "videos" / ".cache" / "asr"
    done = kill_9_when_cached([sys.executable, "-c", run, *argv], asr_cache, 2)
    assert 2 <= done < len(SENTENCES), "the run must be killed while transcribing"
    for entry in asr_cache.rglob("*.npz"):  # every transcript that exists is complete
        with np.load(entry) as z:
            assert len(z["values"]) >= 4

    capsys.readouterr()
    assert cli.main(argv) == 0  # the rerun transcribes only what the killed run had not finished
    out = capsys.readouterr().out
    n = len(SENTENCES)
    assert f"asr    {n} utterances: {done} cached, {n - done} new, 0 failed" in out
    store = open_store(tmp_path / "f" / "videos")
    assert store.features("text").status.tolist() == ["ok"] * n
    heard = store.utterances.set_index("utterance_id").transcript
    assert np.mean([word_error_rate(text, heard[f"u{k}"]) for k, text in enumerate(SENTENCES)]) <= 0.2
    assert not list((tmp_path / "f" / "videos").rglob(".tmp-*"))
