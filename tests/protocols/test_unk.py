"""Text mode ``unk``: dropped token ids become [UNK] and the sentence is re-encoded by the producer's text model."""
import dataclasses

import pytest
import torch

from ebmc.store import StoreError
from ebmc.train.protocols.frames import frame_drop, text_reencoder
from ebmc.train.protocols.masks import frame_drop_mask

from .helpers import make_batch

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast
    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=64)
    BertModel(cfg).eval().save_pretrained(folder)
    return folder


def _text_batch(encoder, B=6, T=12):
    batch = make_batch(B=B, T=T, dims={"text": 8, "audio": 3})
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, len(WORDS), (B, T), generator=g) * batch.mask["text"]
    x = dict(batch.x, text=encoder(ids, batch.mask["text"]) * batch.mask["text"][..., None])
    return dataclasses.replace(batch, x=x, token_ids=ids)


def test_unk_replaces_dropped_ids_and_reencodes(tiny_bert):
    enc = text_reencoder({"model_path": str(tiny_bert)})
    assert enc.unk_id == WORDS.index("[UNK]")
    batch = _text_batch(enc)
    # rate 0 re-encodes the same ids: the stored features come back
    same = frame_drop(0.0, seed=0, text_mode="unk", reencode=enc)(batch)
    assert torch.allclose(same.x["text"], batch.x["text"], atol=1e-5)
    out = frame_drop(0.5, seed=0, text_mode="unk", reencode=enc)(batch)
    drop = frame_drop_mask(batch.mask["text"], batch.index, "text", 0.5, 0, keep_ends=True)
    assert drop.any()
    expected = enc(batch.token_ids.masked_fill(drop, enc.unk_id), batch.mask["text"]) * batch.mask["text"][..., None]
    assert torch.allclose(out.x["text"], expected, atol=1e-6)
    # context changes: even kept tokens get new features, unlike zero mode
    kept = batch.mask["text"] & ~drop
    assert not torch.allclose(out.x["text"][kept], batch.x["text"][kept])
    assert torch.equal(out.x["audio"][~frame_drop_mask(batch.mask["audio"], batch.index, "audio", 0.5, 0)],
                       batch.x["audio"][~frame_drop_mask(batch.mask["audio"], batch.index, "audio", 0.5, 0)])


def test_unk_without_token_ids_is_a_clear_error(tiny_bert):
    enc = text_reencoder({"model_path": str(tiny_bert)})
    batch = dataclasses.replace(_text_batch(enc), token_ids=None)
    with pytest.raises(StoreError, match="token ids") as err:
        frame_drop(0.3, seed=0, text_mode="unk", reencode=enc)(batch)
    assert "text_drop_mode zero" in str(err.value)


def test_unk_without_a_text_model_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError) as err:
        text_reencoder({})
    assert "model_path" in str(err.value)
    with pytest.raises(StoreError, match="does not exist"):
        text_reencoder({"model_path": str(tmp_path / "gone")})
