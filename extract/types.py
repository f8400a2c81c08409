"""What extractors take and give: Segment in, Result (or ExtractionError) out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ebmc.store.errors import EbmcError


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


class ExtractionError(EbmcError):
    """One utterance could not be extracted; the pipeline records ``reason`` and goes on.

    ``reason`` says what is wrong with which input and, where possible, how to fix it.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
