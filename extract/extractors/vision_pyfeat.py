"""Vision extractor: py-feat's detector (20 AU intensities, 7 emotions, head pose) adapted to per-frame rows."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..media import SampledFrames
from ..types import Result, Segment
from .base import Extractor

if TYPE_CHECKING:  # a py-feat result table; pandas comes with py-feat
    import pandas as pd

# py-feat's result-table column names (feat.pretrained.AU_LANDMARK_MAP["Feat"],
# feat.utils.FEAT_EMOTION_COLUMNS, FEAT_FACEPOSE_COLUMNS_3D), copied so the adapter works
# without py-feat installed.
AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15",
       "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]
EMOTIONS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
POSE = ["Pitch", "Roll", "Yaw"]
COLUMNS = AUS + EMOTIONS + POSE + ["FaceScore"]
FEATURES = COLUMNS + ["face_presence"]
# Frames per Detector call: bounds memory on long spans while keeping batches for the network.
CHUNK_FRAMES = 64

INSTALL_HELP = (
    "py-feat backend: install py-feat 2.1.5 with a torchvision that matches your torch "
    "(pip install py-feat==2.1.5; on CPU-only torch this pulls a matching CUDA torch, see docs/extractors.md), "
    "then run `python -c \"import feat; feat.Detector()\"` once with network access so it downloads its "
    "weights from the Hugging Face hub into HF_HOME; or use --vision.backend blendshapes")


def table_to_result(table: pd.DataFrame, timestamps: np.ndarray, min_confidence: float) -> Result:
    """Adapt a py-feat result table to one row per sampled frame.

    ``table`` has a ``frame`` column (index into the K sampled frames) and the COLUMNS; frames
    with several faces keep the highest FaceScore; a frame with no row, a NaN FaceScore (py-feat's
    no-face row) or a score below ``min_confidence`` is a masked zero row.
    timestamps: (K, 2). Returns values (K, 32) named by FEATURES.
    """
    missing = [c for c in ["frame"] + COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"py-feat result table lacks columns {', '.join(missing)}: not a py-feat Detector output")
    k = len(timestamps)
    values = np.zeros((k, len(FEATURES)), np.float32)
    mask = np.zeros(k, bool)
    scored = table[table["FaceScore"].notna() & (table["FaceScore"] >= min_confidence)]
    best = scored.sort_values("FaceScore", ascending=False, kind="stable").drop_duplicates("frame")
    for frame, row in zip(best["frame"].to_numpy(int), best[COLUMNS].to_numpy(np.float32)):
        if not 0 <= frame < k:
            raise ValueError(f"py-feat result row for frame {frame} but only {k} frames were sampled")
        values[frame, :-1] = np.nan_to_num(row, nan=0.0)  # e.g. AUs py-feat leaves NaN
        values[frame, -1] = 1.0
        mask[frame] = True
    return Result(values=values, timestamps=timestamps, frame_mask=mask, status="ok" if mask.any() else "absent")


class PyFeatExtractor(Extractor):
    """py-feat Detector on the frames sampled at ``fps``: AU intensities, emotion probabilities,
    head pose (degrees), face score and presence per frame. Needs py-feat and its weights."""
    modality: ClassVar[str] = "vision"
    name: ClassVar[str] = "pyfeat-detector"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("py-feat", "torch", "av")
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "fps", "max_side", "min_confidence")

    def __init__(self, config):
        super().__init__(config)
        self.detector = None

    def feature_names(self) -> list[str]:
        return list(FEATURES)

    def setup(self) -> None:
        try:
            import feat
        except ImportError as e:
            raise RuntimeError(f"py-feat is not installed. {INSTALL_HELP}") from e
        try:
            self.detector = feat.Detector()
        except Exception as e:  # hub/network/file errors of several libraries: all mean "no weights"
            raise RuntimeError(f"py-feat could not load its model weights ({type(e).__name__}: {e}). "
                               f"{INSTALL_HELP}") from e

    def extract(self, segment: Segment) -> Result:
        import torch
        if self.detector is None:
            self.setup()
        parts: list[Result] = []  # per chunk: py-feat's wide tables are reduced as they come
        with SampledFrames(segment, self.config.fps, self.config.max_side) as frames:
            for chunk in frames.chunks(CHUNK_FRAMES):
                images = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2)  # (k, 3, H, W) uint8
                table = self.detector.detect(images, data_type="tensor", progress_bar=False,
                                             face_detection_threshold=self.config.min_confidence)
                done = sum(len(p.values) for p in parts)
                parts.append(table_to_result(table, frames.timestamps[done:done + len(chunk)],
                                             self.config.min_confidence))
        mask = np.concatenate([p.frame_mask for p in parts])
        return Result(values=np.concatenate([p.values for p in parts]), timestamps=frames.timestamps,
                      frame_mask=mask, status="ok" if mask.any() else "absent")
