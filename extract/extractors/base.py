"""The extractor contract: Segment in, Result (or ExtractionError) out, plus the backend factory."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ebmc.store.fingerprint import semantic_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """One utterance's input: a span of a media file and/or a transcript."""
    utterance_id: str
    path: Path | None          # media file (None for text-only)
    start: float | None        # seconds; None = from the beginning
    end: float | None          # seconds; None = to the end
    transcript: str | None

    def where(self) -> str:
        """Where this segment comes from, for error messages: 'utt (file [start-end])'."""
        span = f" [{'0' if self.start is None else f'{self.start:g}'}-{'end' if self.end is None else f'{self.end:g}'} s]"
        return f"{self.utterance_id} ({self.path}{span})" if self.path else self.utterance_id


@dataclass
class Result:
    """One utterance's features.

    values: (T, d) float32; timestamps: (T, 2) float64 [start, end] seconds relative to the segment
    start; frame_mask: (T,) bool, False = a frame without a face (kept as a row, masked);
    extras: per-row arrays, each with first dim T (e.g. token_ids (T,), word_ids (T,));
    status: "ok", or "absent" when the modality is missing for the whole utterance (no face at all).
    """
    values: np.ndarray
    timestamps: np.ndarray
    frame_mask: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    status: str = "ok"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        t = self.values.shape[0]
        problems = []
        if self.values.ndim != 2:
            problems.append(f"values must be (T, d), got shape {self.values.shape}")
        if self.timestamps.shape != (t, 2):
            problems.append(f"timestamps must be ({t}, 2), got {self.timestamps.shape}")
        if self.frame_mask is not None:
            self.frame_mask = np.asarray(self.frame_mask, dtype=bool)
            if self.frame_mask.shape != (t,):
                problems.append(f"frame_mask must be ({t},), got {self.frame_mask.shape}")
        for name, arr in self.extras.items():
            if np.shape(arr)[:1] != (t,):
                problems.append(f"extras[{name!r}] must have {t} rows, got shape {np.shape(arr)}")
        if self.status not in ("ok", "absent"):
            problems.append(f"status must be 'ok' or 'absent', got {self.status!r}")
        if problems:  # a bug in an extractor, not bad input: fail loudly
            raise ValueError("invalid extractor Result: " + "; ".join(problems))


class ExtractionError(Exception):
    """One utterance could not be extracted; the pipeline records ``reason`` and goes on.

    ``reason`` says what is wrong with which input and, where possible, how to fix it.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def tool_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (distribution names), for the producer record."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class Extractor:
    """Base class of the per-modality extractors.

    Subclasses set ``modality``, ``name``, ``version`` (EXTRACTOR_VERSION: bump it whenever the
    code changes what is computed), ``TOOLS`` (packages whose versions enter the fingerprint)
    and ``feature_names``; implement ``setup`` (load models once per worker process) and
    ``extract``.
    """
    modality: ClassVar[str]
    name: ClassVar[str]
    version: ClassVar[int]
    TOOLS: ClassVar[tuple[str, ...]] = ()
    # Config fields this backend reads; None = all semantic fields. Settings of other backends
    # sharing the config class must not change this backend's fingerprint.
    CONFIG_FIELDS: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: Any):
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{type(self).__name__} needs a config dataclass, got {type(config).__name__}")
        self.config = config

    def feature_names(self) -> list[str]:
        """Names of the d value columns, in order."""
        raise NotImplementedError

    def producer(self) -> dict:
        """What makes this extractor's output: enters the feature set's fingerprint."""
        config = semantic_dict(self.config)
        if self.CONFIG_FIELDS is not None:
            config = {k: v for k, v in config.items() if k in self.CONFIG_FIELDS}
        return {"name": self.name, "version": self.version, "config": config,
                "tools": tool_versions(*self.TOOLS), "feature_names": self.feature_names()}

    def info(self) -> dict:
        """Machine-local facts kept in the feature set's manifest but not fingerprinted (paths)."""
        return {}

    def input_paths(self, segment: Segment) -> list[Path]:
        """Files whose bytes (with the span) determine this segment's output: the pipeline's input key."""
        return [segment.path] if segment.path is not None else []

    def setup(self) -> None:
        """Load models; called once per worker process before the first ``extract``."""

    def extract(self, segment: Segment) -> Result:
        raise NotImplementedError

    def extract_batch(self, segments: list[Segment]) -> list[Result | ExtractionError]:
        """Extract several segments; a failing one becomes its ExtractionError in the list."""
        out: list[Result | ExtractionError] = []
        for seg in segments:
            try:
                out.append(self.extract(seg))
            except ExtractionError as e:
                log.debug("extraction failed for %s: %s", seg.utterance_id, e.reason)
                out.append(e)
        return out


def make_extractor(modality: str, config: Any) -> Extractor:
    """The extractor for ``modality`` and ``config.backend`` (text has one backend)."""
    # Imports stay inside the branches: each backend pulls heavy libraries only when chosen.
    if modality == "asr":  # speech recognition runs as a job like the extractors (ebmc.extract.asr)
        from ..asr import WhisperAsr
        return WhisperAsr(config)
    if modality == "text":
        from .text import TransformerTextExtractor
        return TransformerTextExtractor(config)
    if modality == "audio":
        if config.backend == "opensmile":
            from .audio import OpenSmileExtractor
            return OpenSmileExtractor(config)
        if config.backend == "librosa":
            from .audio import LibrosaExtractor
            return LibrosaExtractor(config)
    elif modality == "vision":
        if config.backend == "blendshapes":
            from .vision_blendshapes import BlendshapesExtractor
            return BlendshapesExtractor(config)
        if config.backend == "landmarks":
            from .vision_landmarks import LandmarksExtractor
            return LandmarksExtractor(config)
        if config.backend == "pyfeat":
            from .vision_pyfeat import PyFeatExtractor
            return PyFeatExtractor(config)
        if config.backend == "openface":
            from .vision_openface import OpenFaceExtractor
            return OpenFaceExtractor(config)
    else:
        raise ValueError(f"unknown modality {modality!r}; use 'text', 'audio' or 'vision'")
    raise ValueError(f"unknown {modality} backend {config.backend!r}; see --{modality}.backend --help")
