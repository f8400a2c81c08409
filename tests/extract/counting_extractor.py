"""A fake extractor for pipeline tests: real Segment -> Result contract, counts every call, no heavy libraries.

Its output is a pure function of the bytes it reads (or the transcript) and its config, so tests
can check which utterances were extracted again and that stored rows belong to the right utterance.
Media files are plain bytes: b"BAD..." fails, b"NOFACE..." is absent, anything else gives
``len(bytes) % 7 + 2`` rows of ``[len(bytes), config.scale * row]``.
"""
from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np

from ebmc.extract import pipeline, workers
from ebmc.extract.extractors.base import Extractor
from ebmc.extract.types import ExtractionError, Result, Segment
from ebmc.store.fingerprint import setting

CALLS: collections.Counter = collections.Counter()  # modality -> extract() calls in this process
EXTRACTED: list[tuple[str, str]] = []  # (modality, utterance_id) in call order


@dataclasses.dataclass(frozen=True)
class CountingConfig:
    scale: float = 1.0
    batch_size: int = setting(4, "utterances per batch", run_only=True)
    delay: float = setting(0.0, "seconds per utterance", run_only=True)  # seconds per utterance, for kill -9 tests


class CountingExtractor(Extractor):
    name = "counting"
    version = 1

    def __init__(self, modality: str, config: CountingConfig):
        super().__init__(config)
        self.modality = modality

    def feature_names(self) -> list[str]:
        return ["size", "row"]

    def input_paths(self, segment: Segment):
        return [] if self.modality == "text" else [segment.path]

    def extract(self, segment: Segment) -> Result:
        CALLS[self.modality] += 1
        EXTRACTED.append((self.modality, segment.utterance_id))
        time.sleep(self.config.delay)
        if self.modality == "text":
            words = segment.transcript.split()
            if not words:
                raise ExtractionError(f"{segment.utterance_id}: empty transcript")
            t = len(words)
            values = np.stack([np.full(t, len(segment.transcript)), self.config.scale * np.arange(t)], 1)
            return Result(values, np.stack([np.arange(t), np.arange(t) + 1.0], 1),
                          extras={"token_ids": np.array([len(w) for w in words], np.int64)})
        data = segment.path.read_bytes()
        if data.startswith(b"BAD"):
            raise ExtractionError(f"{segment.where()}: corrupt media")
        t = len(data) % 7 + 2
        values = np.stack([np.full(t, len(data)), self.config.scale * np.arange(t)], 1)
        stamps = np.stack([np.arange(t) * 0.1, np.arange(t) * 0.1 + 0.1], 1)
        if data.startswith(b"NOFACE"):
            return Result(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, bool), status="absent")
        mask = np.arange(t) % 2 == 0 if self.modality == "vision" else None
        return Result(values, stamps, mask)


def make_counting(modality: str, config: CountingConfig) -> CountingExtractor:
    return CountingExtractor(modality, config)


def install(monkeypatch=None) -> None:
    """Make the pipeline build CountingExtractors (in this process; run with workers=1)."""
    for module in (pipeline, workers):
        if monkeypatch is None:
            module.make_extractor = make_counting
        else:
            monkeypatch.setattr(module, "make_extractor", make_counting)
    CALLS.clear()
    EXTRACTED.clear()


def expected_values(data: bytes, scale: float = 1.0) -> np.ndarray:
    """What CountingExtractor stores for a media file with these bytes."""
    t = len(data) % 7 + 2
    return np.stack([np.full(t, len(data)), scale * np.arange(t)], 1).astype(np.float32)


def init_worker(*args) -> None:
    """A worker initializer for spawned workers (set ``workers._init_worker`` to it in the parent):
    installs the counting extractor in the worker, then runs the real initializer."""
    install()
    workers._init_worker(*args)
