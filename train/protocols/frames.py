"""Intra-modality missingness: deterministic frame/token drops for testing (Table 5) and random drops for training.

A dropped step keeps its place in the sequence and in the mask, with its features set to zero
(LNLN protocol): the model is not told which steps were lost. Text keeps its first and last
valid token. Text mode ``zero`` zeroes the dropped token features (the authors' code); ``unk``
replaces the dropped token ids by [UNK] and re-encodes the whole sentence through the text model
that made the features, so the context of every token changes as it would with real missing words.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ebmc.store import StoreError

from ..batch import Batch
from .masks import end_steps, frame_drop_mask
from .missing import Transform

log = logging.getLogger(__name__)

#: (token ids (B, T) long, attention (B, T) bool) -> token features (B, T, D) float
Reencoder = Callable[[Tensor, Tensor], Tensor]


def _zero_steps(batch: Batch, modality: str, drop: Tensor) -> Batch:
    x = dict(batch.x)
    x[modality] = batch.x[modality].masked_fill(drop[..., None], 0.0)
    return dataclasses.replace(batch, x=x)


def frame_drop(rate: float, seed: int, text_mode: str = "zero", reencode: Reencoder | None = None) -> Transform:
    """Transform dropping each valid step of every modality with probability ``rate``.

    Masks come from ``masks.frame_drop_mask`` (deterministic per store row, modality, rate, seed).
    ``text_mode="unk"`` needs ``reencode`` (see ``text_reencoder``) and batches with token_ids.
    """
    if text_mode not in ("zero", "unk"):
        raise ValueError(f"text_mode must be 'zero' or 'unk', got {text_mode!r}")
    if text_mode == "unk" and reencode is None:
        raise ValueError("text_mode 'unk' needs a reencoder: build one with text_reencoder(info)")

    def apply(batch: Batch) -> Batch:
        for m in batch.modalities:
            drop = frame_drop_mask(batch.mask[m], batch.index, m, rate, seed, keep_ends=(m == "text"))
            if m == "text" and text_mode == "unk":
                batch = _unk_text(batch, drop, reencode)
            else:
                batch = _zero_steps(batch, m, drop)
        return batch
    return apply


def _unk_text(batch: Batch, drop: Tensor, reencode: Reencoder) -> Batch:
    if batch.token_ids is None:
        raise StoreError("frame_drop with text_drop_mode 'unk' needs the text token ids, but the batch has none",
                         ["store the text features with a 'token_ids' extra (ebmc-extract does; MMSA pickles "
                          "with text_bert do), or use --protocol.text_drop_mode zero"])
    ids = batch.token_ids.masked_fill(drop, reencode.unk_id)  # type: ignore[attr-defined]
    valid = batch.mask["text"]
    feats = reencode(ids, valid).to(batch.x["text"].dtype)
    if feats.shape != batch.x["text"].shape:
        raise StoreError("re-encoded text features do not match the stored ones",
                         [f"text model gives {tuple(feats.shape)}, the store holds {tuple(batch.x['text'].shape)}: "
                          "the text model (model_path/layer) must be the one that made these features"])
    x = dict(batch.x)
    # absent texts stay absent: no valid step, so nothing to re-encode
    x["text"] = torch.where(valid[..., None], feats, torch.zeros_like(feats))
    return dataclasses.replace(batch, x=x)


class _TextModel:
    """A Hugging Face encoder run on token ids; ``unk_id`` is its tokenizer's [UNK]."""

    def __init__(self, model, unk_id: int, layer: int, device: str):
        self.model, self.unk_id, self.layer, self.device = model, unk_id, layer, device

    @torch.no_grad()
    def __call__(self, ids: Tensor, attention: Tensor) -> Tensor:
        out = self.model(input_ids=ids.to(self.device), attention_mask=attention.long().to(self.device),
                         output_hidden_states=True)
        return out.hidden_states[self.layer].to(ids.device)


def text_reencoder(info: dict, device: str = "cpu") -> _TextModel:
    """Load the text model recorded in a text feature set's ``info`` (``model_path``: a local folder
    saved with save_pretrained, tokenizer included; optional ``layer``, default -1 = last).

    ``info`` is the machine-local, unfingerprinted part of the manifest (``FeatureSet.info``);
    ``--protocol.text_model`` overrides its path. Imports transformers here only: it is an
    extraction library and ``ebmc.train`` must not need it for anything but this protocol.
    """
    path = info.get("model_path")
    problems = []
    if not path:
        problems.append("the text feature set records no text model (no model_path in its manifest's info, "
                        "e.g. imported features): pass --protocol.text_model PATH (the local model that made "
                        "them), or use --protocol.text_drop_mode zero")
    elif not Path(path).is_dir():
        problems.append(f"text model folder {path} does not exist here; pass --protocol.text_model PATH, "
                        "or use --protocol.text_drop_mode zero")
    if problems:
        raise StoreError("frame_drop with text_drop_mode 'unk' cannot load the text model", problems)
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise StoreError("frame_drop with text_drop_mode 'unk' needs transformers",
                         ["pip install 'ebmc[extract]', or use --protocol.text_drop_mode zero"]) from e
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.unk_token_id is None:
        raise StoreError(f"the tokenizer in {path} has no unknown token", ["use --protocol.text_drop_mode zero"])
    model = AutoModel.from_pretrained(path).to(device).eval()
    log.info("unk text mode: re-encoding through %s (layer %s)", path, info.get("layer", -1))
    return _TextModel(model, int(tokenizer.unk_token_id), int(info.get("layer", -1)), device)


def random_frame_drop(rates: Sequence[float], generator: torch.Generator | None = None,
                      scheme: str = "rates") -> Transform:
    """Training augmentation (``TrainConfig.robust_augment``), a fresh corruption every step drawn
    from ``generator`` (the run's), so a seed reproduces it. Each valid step is dropped with the
    sample's rate (text keeps its ends; zero mode).

    scheme "rates" (ours): each (sample, modality) draws its rate from ``rates``.
    scheme "lnln" (LNLN; the paper's Table 5 models): each sample draws one rate for all its
    modalities, 0 with probability 0.5, else uniform on [0, 1].
    """
    if scheme not in ("rates", "lnln"):
        raise ValueError(f"augmentation scheme must be 'rates' or 'lnln', got {scheme!r}")
    choices = torch.tensor(list(rates), dtype=torch.float32)

    def apply(batch: Batch) -> Batch:
        lnln_rate = None
        if scheme == "lnln":
            clean = torch.rand(batch.size, generator=generator) < 0.5
            lnln_rate = torch.where(clean, 0.0, torch.rand(batch.size, generator=generator))
        for m in batch.modalities:
            valid = batch.mask[m]
            B, T = valid.shape
            rate = lnln_rate if lnln_rate is not None else choices[torch.randint(len(choices), (B,), generator=generator)]
            rate = rate.to(valid.device)
            u = torch.rand(B, T, generator=generator).to(valid.device)
            drop = valid & (u < rate[:, None])
            if m == "text":
                drop &= ~end_steps(valid)
            batch = _zero_steps(batch, m, drop)
        return batch
    return apply
