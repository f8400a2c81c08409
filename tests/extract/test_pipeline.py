"""The extraction pipeline with a counting extractor: cache, resume, invalidation, shards, order, failures, kill -9."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebmc.extract import pipeline
from ebmc.extract.manifest import load_manifest
from ebmc.store import StoreError, open_store

sys.path.insert(0, str(Path(__file__).parent))
import counting_extractor as ce  # noqa: E402
from kill import kill_9_when_cached  # noqa: E402

FILES = {"u0": b"alpha video", "u1": b"bravo video bytes", "u2": b"charlie", "u3": b"BAD file",
         "u4": b"NOFACE here", "u5": None, "u6": b"alpha video", "u7": b"golf golf golf golf"}
TEXT = {"u0": "hello there", "u1": "a b c", "u2": "", "u3": "x", "u4": "fine words", "u5": "ok",
        "u6": "hello there", "u7": "one two three four"}
SPLIT = ["train", "train", "train", "valid", "valid", "test", "test", "train"]
MODS = ("text", "audio", "vision")


def make_dataset(tmp: Path) -> Path:
    videos = tmp / "videos"
    (videos / "clips").mkdir(parents=True)
    rows = []
    for k, (uid, data) in enumerate(FILES.items()):
        if data is not None:
            (videos / "clips" / f"{uid}.mp4").write_bytes(data)
        rows.append({"utterance_id": uid, "video": f"clips/{uid}.mp4", "transcript": TEXT[uid],
                     "label": k / 4 - 1, "split": SPLIT[k]})
    pd.DataFrame(rows).to_csv(tmp / "manifest.csv", index=False)
    return videos


def configs(scale: float = 1.0, **kw) -> dict:
    return {m: ce.CountingConfig(scale=scale, **kw) for m in MODS}


@pytest.fixture
def data(tmp_path, monkeypatch):
    ce.install(monkeypatch)
    videos = make_dataset(tmp_path)
    return tmp_path, load_manifest(videos, tmp_path / "manifest.csv", dataset="toy")


def test_first_run_commits_manifest_order_with_failures_marked(data):
    tmp, man = data
    root, reports = pipeline.run(man, tmp / "features", configs())
    # u6 has u0's bytes and transcript: one extraction serves both; u2's empty transcript and
    # u5's missing file fail before any extractor runs
    assert ce.CALLS == {"text": 6, "audio": 6, "vision": 6}
    store = open_store(root)
    assert store.utterances["utterance_id"].tolist() == list(FILES)
    audio, vision, text = store.features("audio"), store.features("vision"), store.features("text")
    assert audio.status.tolist() == ["ok", "ok", "ok", "failed", "absent", "failed", "ok", "ok"]
    assert text.status.tolist() == ["ok", "ok", "failed", "ok", "ok", "ok", "ok", "ok"]
    for i, (uid, raw) in enumerate(FILES.items()):
        if audio.status[i] == "ok":
            np.testing.assert_array_equal(audio.sequence(i), ce.expected_values(raw))
            assert audio.sequence(i, "timestamps").shape == (len(raw) % 7 + 2, 2)
    np.testing.assert_array_equal(vision.sequence(1, "frame_mask"), np.arange(len(FILES["u1"]) % 7 + 2) % 2 == 0)
    assert text.sequence(7, "token_ids").tolist() == [3, 3, 5, 4]
    fails = {(m, uid): reason for m, r in reports.items() for _, uid, reason in r.failures}
    assert set(fails) == {("text", "u2"), ("audio", "u3"), ("audio", "u5"), ("vision", "u3"), ("vision", "u5")}
    assert "not found" in fails[("audio", "u5")] and "corrupt" in fails[("audio", "u3")]
    assert reports["audio"].new == 6 and reports["audio"].absent == 1 and reports["audio"].cached == 0
    assert store.utterances["audio_status"].tolist() == audio.status.tolist()


def test_rerun_extracts_nothing_and_keeps_the_store(data):
    tmp, man = data
    root, _ = pipeline.run(man, tmp / "features", configs())
    before = open_store(root).fingerprints()
    ce.CALLS.clear()
    _, reports = pipeline.run(man, tmp / "features", configs())
    # u3's corrupt-media failure is as final as a result until its bytes change
    assert sum(ce.CALLS.values()) == 0
    assert open_store(root).fingerprints() == before
    assert reports["audio"].cached == 6 and reports["audio"].new == 0 and reports["audio"].failed == 2
    assert "corrupt" in dict((u, r) for _, u, r in reports["audio"].failures)["u3"]


def test_a_crash_fails_one_utterance_and_is_retried_next_run(data, monkeypatch):
    tmp, man = data
    real = ce.CountingExtractor.extract

    def crash_on_u1(self, segment):
        if segment.utterance_id == "u1" and self.modality == "audio":
            raise RuntimeError("native library fell over")
        return real(self, segment)

    monkeypatch.setattr(ce.CountingExtractor, "extract", crash_on_u1)
    root, reports = pipeline.run(man, tmp / "features", configs())
    reason = dict((u, r) for _, u, r in reports["audio"].failures)["u1"]
    assert "unexpected RuntimeError: native library fell over" in reason
    assert open_store(root).features("audio").status[1] == "failed"
    monkeypatch.setattr(ce.CountingExtractor, "extract", real)
    ce.EXTRACTED.clear()
    root, reports = pipeline.run(man, tmp / "features", configs())
    assert ce.EXTRACTED == [("audio", "u1")]
    assert open_store(root).features("audio").status[1] == "ok"


def test_changed_media_or_transcript_reextracts_only_that_input(data):
    tmp, man = data
    pipeline.run(man, tmp / "features", configs())
    (man.root / "clips" / "u1.mp4").write_bytes(b"bravo video bytes, edited")
    ce.CALLS.clear()
    ce.EXTRACTED.clear()
    root, _ = pipeline.run(man, tmp / "features", configs())
    assert sorted(ce.EXTRACTED) == [("audio", "u1"), ("vision", "u1")]
    np.testing.assert_array_equal(open_store(root).features("audio").sequence(1),
                                  ce.expected_values(b"bravo video bytes, edited"))
    table = pd.read_csv(tmp / "manifest.csv", keep_default_na=False)
    table.loc[table.utterance_id == "u7", "transcript"] = "now five words in here"
    table.to_csv(tmp / "manifest.csv", index=False)
    ce.EXTRACTED.clear()
    pipeline.run(load_manifest(man.root, tmp / "manifest.csv", dataset="toy"), tmp / "features", configs())
    assert ce.EXTRACTED == [("text", "u7")]


def test_changing_one_modality_setting_reextracts_only_that_modality(data):
    tmp, man = data
    pipeline.run(man, tmp / "features", configs())
    ce.CALLS.clear()
    cfg = configs()
    cfg["vision"] = ce.CountingConfig(scale=2.0)
    root, _ = pipeline.run(man, tmp / "features", cfg)
    assert ce.CALLS == {"vision": 6}
    np.testing.assert_array_equal(open_store(root).features("vision").sequence(0), ce.expected_values(FILES["u0"], 2.0))
    # run-only settings (batch size, delay) are not part of the key: nothing new
    ce.CALLS.clear()
    pipeline.run(man, tmp / "features", {m: ce.CountingConfig(scale=c.scale, batch_size=1) for m, c in cfg.items()})
    assert sum(ce.CALLS.values()) == 0


def test_shards_fill_the_cache_and_commit_in_manifest_order(data):
    tmp, man = data
    out = tmp / "features"
    _, r1 = pipeline.run(man, out, configs(), shard=(1, 2))  # the second half finishes first
    assert not (out / "toy" / "store.json").exists()
    assert r1["audio"].total == 4 and ce.CALLS["audio"] == 3  # u4, u6, u7 (u5 missing)
    with pytest.raises(StoreError) as err:
        pipeline.run(man, out, configs(), commit_only=True)
    # u0 is already there: u6 in shard 1 has the same bytes and transcript
    assert "3 of 8 utterances are not extracted yet" in str(err.value) and "u1" in str(err.value)
    pipeline.run(man, out, configs(), shard=(0, 2))
    ce.CALLS.clear()
    root, reports = pipeline.run(man, out, configs(), commit_only=True)
    assert sum(ce.CALLS.values()) == 0
    store = open_store(root)
    assert store.utterances["utterance_id"].tolist() == list(FILES)
    np.testing.assert_array_equal(store.features("audio").sequence(0), ce.expected_values(FILES["u0"]))
    np.testing.assert_array_equal(store.features("audio").sequence(7), ce.expected_values(FILES["u7"]))
    assert reports["audio"].failed == 2 and reports["audio"].cached == 6
    # the sharded store equals a single run's store
    single, _ = pipeline.run(man, tmp / "single", configs())
    assert open_store(single).fingerprints() == store.fingerprints()


def test_shard_rows_cover_the_manifest_once(data):
    tmp, man = data
    rows = [i for k in range(3) for i in pipeline.shard_rows(10, (k, 3))]
    assert rows == list(range(10))
    with pytest.raises(StoreError, match="0 <= i < N"):
        pipeline.run(man, tmp / "features", configs(), shard=(3, 3))


KILL_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import counting_extractor as ce
from ebmc.extract import pipeline
from ebmc.extract.manifest import load_manifest
ce.install()
man = load_manifest({videos!r})
pipeline.run(man, {out!r}, {{m: ce.CountingConfig(delay=0.15) for m in ("audio",)}})
"""


def test_kill_9_then_rerun_finishes_without_redoing_work(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    n = 30
    for k in range(n):
        (videos / f"v{k:02d}.mp4").write_bytes(b"clip %d " % k * (k + 1))
    out = tmp_path / "features"
    script = KILL_SCRIPT.format(here=str(Path(__file__).parent), videos=str(videos), out=str(out))
    cache_root = out / videos.name / ".cache" / "audio"
    done = kill_9_when_cached([sys.executable, "-c", script], cache_root, 5, timeout=60)
    assert 5 <= done < n, "the run must be killed in the middle"
    for f in cache_root.rglob("*.npz"):  # every entry that exists is complete
        with np.load(f) as z:
            assert z["values"].shape[1] == 2
    ce.install(monkeypatch)
    man = load_manifest(videos)
    root, reports = pipeline.run(man, out, {"audio": ce.CountingConfig(delay=0.0)})
    assert reports["audio"].cached == done and reports["audio"].new == n - done == ce.CALLS["audio"]
    assert open_store(root).features("audio").status.tolist() == ["ok"] * n
    assert not list((out / videos.name).rglob(".tmp-*"))
