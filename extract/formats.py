"""MMSA and CMU-SDK (CSD) format facts shared by the importers and the exporters: keys, id syntax, mmsdk output."""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterator

log = logging.getLogger(__name__)

# MMSA pickles
REQUIRED_KEYS = ("id", "raw_text", "text", "audio", "vision", "regression_labels")
# MMSA key -> utterance-table column, for per-sample values kept beside the main label
EXTRA_COLUMNS = {"classification_labels": "classification_label", "regression_labels_T": "label_text",
                 "regression_labels_A": "label_audio", "regression_labels_V": "label_vision"}
LENGTH_KEYS = {"audio": "audio_lengths", "vision": "vision_lengths"}
TEXT_BERT_PARTS = ("token_ids", "attention_mask", "segment_ids")  # the 3 rows of text_bert, in order
ID_SEPARATOR = "$_$"  # MMSA ids are "<video id>$_$<clip id>"


def video_of(utterance_id: str) -> str:
    """The video part of an utterance id: before MMSA's ``$_$`` and before a segment index ``[k]`` (MulT, CSD)."""
    return utterance_id.split(ID_SEPARATOR)[0].split("[")[0]


@contextlib.contextmanager
def quiet_sdk() -> Iterator[io.StringIO]:
    """Keep mmsdk's coloured logs (stdout) and progress bars (stderr) out of our output; they go to
    the debug log instead."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        if buffer.getvalue():
            log.debug("mmsdk: %s", buffer.getvalue().strip())
