"""Issue 14, finding 3: a damaged cache entry is set aside and extracted again, not a traceback on every run."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from ebmc.extract import pipeline
from ebmc.extract.manifest import load_manifest
from ebmc.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
import counting_extractor as ce  # noqa: E402


@pytest.fixture
def extracted(tmp_path, monkeypatch):
    ce.install(monkeypatch)
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(4):
        (videos / f"v{k}.mp4").write_bytes(b"clip %d " % k * (k + 1))
    (videos / "v9.mp4").write_bytes(b"BAD media")  # a final failure: cached as .failed.json
    man = load_manifest(videos)
    root, _ = pipeline.run(man, tmp_path / "features", {"audio": ce.CountingConfig()})
    ce.CALLS.clear()
    return man, tmp_path / "features", root


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_result_is_set_aside_and_extracted_again(extracted, damage, caplog):
    man, out, root = extracted
    entry = sorted((root / ".cache" / "audio").rglob("*.npz"))[0]
    raw = entry.read_bytes()
    entry.write_bytes({"truncate": raw[:len(raw) // 2], "garbage": b"x" * len(raw), "empty": b""}[damage])
    with caplog.at_level(logging.WARNING):
        root, reports = pipeline.run(man, out, {"audio": ce.CountingConfig()})
    assert reports["audio"].new == 1 == ce.CALLS["audio"] and reports["audio"].cached == 3
    assert entry.exists() and entry.with_name(entry.name + ".damaged").exists()
    assert sum("unreadable cache entry" in r.message for r in caplog.records) == 1  # logged once
    assert open_store(root).features("audio").status.tolist() == ["ok"] * 4 + ["failed"]
    ce.CALLS.clear()
    pipeline.run(man, out, {"audio": ce.CountingConfig()})  # repaired: nothing left to do
    assert ce.CALLS["audio"] == 0


def test_corrupt_failure_record_is_set_aside_and_extracted_again(extracted):
    man, out, root = extracted
    record = next((root / ".cache" / "audio").rglob("*.failed.json"))
    record.write_text("{not json")
    root, reports = pipeline.run(man, out, {"audio": ce.CountingConfig()})
    assert ce.CALLS["audio"] == 1 and record.exists()  # extracted again: fails again, recorded anew
    assert "corrupt media" in reports["audio"].failures[0][2]
