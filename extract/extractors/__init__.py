"""Per-modality feature extractors (text, audio, vision): the backends and ``make_extractor``, their registry.

Backends import their heavy libraries lazily; importing this package costs only numpy.
"""
from __future__ import annotations

from typing import Any

from ..types import ExtractionError, Result, Segment
from .base import Extractor
from .config import AudioConfig, TextConfig, VisionConfig

__all__ = ["ExtractionError", "Extractor", "Result", "Segment", "make_extractor",
           "AudioConfig", "TextConfig", "VisionConfig"]


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
        from .audio import audio_extractor
        return audio_extractor(config)
    if modality == "vision":
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
