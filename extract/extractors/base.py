"""The extractor base class: batches of Segments in, Results (or ExtractionErrors) out, plus tool versions."""
from __future__ import annotations

import dataclasses
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from ebmc.store.fingerprint import semantic_dict

from ..types import ExtractionError, Result, Segment

log = logging.getLogger(__name__)


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
