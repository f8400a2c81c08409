"""Hub model ids for --text.model, resolved from a local Hugging Face cache folder built here (no network)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebmc.extract import cli
from ebmc.extract.extractors import Segment, TextConfig, make_extractor
from ebmc.extract.extractors.hub import is_hub_id, snapshot_revision
from ebmc.store import StoreError, fingerprint, open_store

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hub_cache(tmp_path, tiny_bert, monkeypatch) -> Path:
    """A hub cache holding 'ebmc-test/tiny-bert' at two commits: main -> COMMIT, tag v0 -> OTHER."""
    import huggingface_hub.constants
    cache = tmp_path / "hub"
    repo = cache / "models--ebmc-test--tiny-bert"
    for commit in (COMMIT, OTHER):
        shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "refs" / "v0").write_text(OTHER)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_hub_ids_and_paths_are_told_apart():
    assert is_hub_id("bert-base-uncased") and is_hub_id("google-bert/bert-base-uncased@v1.0")
    assert not is_hub_id("/models/bert") and not is_hub_id("../bert") and not is_hub_id("a/b/c")


@pytest.mark.parametrize("model, commit", [("ebmc-test/tiny-bert", COMMIT), ("ebmc-test/tiny-bert@main", COMMIT),
                                           ("ebmc-test/tiny-bert@v0", OTHER), (f"ebmc-test/tiny-bert@{OTHER}", OTHER)])
def test_hub_id_resolves_to_the_cached_commit(hub_cache, tiny_bert, model, commit):
    ex = make_extractor("text", TextConfig(model=model))
    assert ex.producer()["config"]["model"] == f"ebmc-test/tiny-bert@{commit}"
    assert ex.info()["model_path"].endswith(commit)
    local = make_extractor("text", TextConfig(model=str(tiny_bert)))
    seg = Segment("u", None, None, None, "a short sentence")
    np.testing.assert_array_equal(ex.extract(seg).values, local.extract(seg).values)


def test_revisions_give_different_fingerprints(hub_cache):
    main, v0 = (make_extractor("text", TextConfig(model=m)) for m in ("ebmc-test/tiny-bert", "ebmc-test/tiny-bert@v0"))
    assert fingerprint(main.producer()) != fingerprint(v0.producer())
    assert str(hub_cache) not in repr(main.producer())


def test_missing_hub_model_says_how_to_get_it(hub_cache):
    with pytest.raises(StoreError, match=r"not in the local Hugging Face cache.*hf download ebmc-test/absent --revision v2"):
        make_extractor("text", TextConfig(model="ebmc-test/absent@v2"))
    with pytest.raises(StoreError, match="revision 'v9'"):
        make_extractor("text", TextConfig(model="ebmc-test/tiny-bert@v9"))


def test_snapshot_revision_only_for_cache_snapshots(tmp_path):
    assert snapshot_revision(tmp_path / "models--bert-base-uncased" / "snapshots" / COMMIT) == f"bert-base-uncased@{COMMIT}"
    assert snapshot_revision(tmp_path / "snapshots" / "main") is None and snapshot_revision(tmp_path) is None


def test_cli_extracts_text_with_a_hub_id_offline(hub_cache, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not read for text")
    pd.DataFrame([{"utterance_id": "a", "video": "a.mp4", "transcript": "hello there"}]).to_csv(tmp_path / "m.csv", index=False)
    argv = [str(videos), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f"), "--modalities", "text",
            "--text.model", "ebmc-test/tiny-bert@v0"]
    assert cli.main(argv) == 0
    text = open_store(tmp_path / "f" / "videos").features("text")
    assert text.producer["config"]["model"] == f"ebmc-test/tiny-bert@{OTHER}" and text.dim == 32
    assert cli.main(argv[:-1] + ["ebmc-test/absent"]) == 2
    assert "hf download ebmc-test/absent" in capsys.readouterr().err
