"""Per-modality feature extractors (text, audio, vision): the Segment -> Result contract and its backends.

Backends import their heavy libraries lazily; importing this package costs only numpy.
"""
from .base import ExtractionError, Extractor, Result, Segment, make_extractor
from .config import AudioConfig, TextConfig, VisionConfig

__all__ = ["ExtractionError", "Extractor", "Result", "Segment", "make_extractor",
           "AudioConfig", "TextConfig", "VisionConfig"]
