"""Vision extractor: reads OpenFace 2.0 FeatureExtraction CSVs (AU intensity/presence, head pose, gaze) onto the sampling grid."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..media import resolve_span
from ..types import ExtractionError, Result, Segment
from .base import Extractor

if TYPE_CHECKING:  # pandas loads only when a CSV is read
    import pandas as pd

AU_R = [f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]
AU_C = [f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)]
POSE = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z"]
COLUMNS = AU_R + AU_C + POSE + GAZE
FEATURES = COLUMNS + ["face_presence"]


def read_openface_csv(path: Path) -> pd.DataFrame:
    """An OpenFace FeatureExtraction CSV as a DataFrame (its headers carry leading spaces)."""
    import pandas as pd
    return pd.read_csv(path, skipinitialspace=True)


def table_to_result(table: pd.DataFrame, start: float, end: float, fps: float, min_confidence: float, where: str) -> Result:
    """Sample an OpenFace table at ``fps`` inside [start, end) seconds of its ``timestamp`` column.

    Each grid time takes the nearest row within one OpenFace frame; a grid time with no such row,
    or whose row has success 0 or confidence below ``min_confidence``, becomes a masked zero row.
    Returns values (K, 48) named by FEATURES, timestamps (K, 2) relative to ``start``.
    """
    missing = [c for c in ["timestamp", "confidence", "success"] + COLUMNS if c not in table.columns]
    if missing:
        raise ExtractionError(f"{where}: OpenFace CSV lacks columns {', '.join(missing)}; rerun OpenFace 2.0 "
                              f"FeatureExtraction with -aus -pose -gaze")
    times = table["timestamp"].to_numpy(np.float64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    period = float(np.median(np.diff(times))) if times.size > 1 else 1.0 / fps
    n = max(1, int(np.ceil((end - start) * fps - 1e-9)))
    grid = start + np.arange(n) / fps
    pos = np.clip(np.searchsorted(times, grid), 1, max(times.size - 1, 1))
    nearest = np.where(np.abs(times[pos - 1] - grid) <= np.abs(times[np.minimum(pos, times.size - 1)] - grid),
                       pos - 1, np.minimum(pos, times.size - 1))
    rows = order[nearest]
    ok = np.abs(times[nearest] - grid) <= period * 1.01
    ok &= table["success"].to_numpy()[rows] == 1
    ok &= table["confidence"].to_numpy(np.float64)[rows] >= min_confidence
    values = np.zeros((n, len(FEATURES)), np.float32)
    values[ok, :-1] = table[COLUMNS].to_numpy(np.float32)[rows[ok]]
    values[ok, -1] = 1.0
    rel = grid - start
    stamps = np.stack([rel, np.minimum(rel + 1 / fps, end - start)], axis=1)
    return Result(values=values, timestamps=stamps, frame_mask=ok, status="ok" if ok.any() else "absent")


class OpenFaceExtractor(Extractor):
    """OpenFace 2.0 features from ``<openface_dir>/<video stem>.csv``: 17 AU intensities, 18 AU
    presences, head pose (translation mm, rotation rad), both eyes' gaze vectors, face presence.
    Reads existing CSVs; it never runs OpenFace."""
    modality: ClassVar[str] = "vision"
    name: ClassVar[str] = "openface2-csv"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("pandas",)
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "fps", "min_confidence")

    def feature_names(self) -> list[str]:
        return list(FEATURES)

    def csv_path(self, segment: Segment) -> Path:
        if segment.path is None:
            raise ExtractionError(f"{segment.utterance_id}: no video path, so no OpenFace CSV name to look up")
        return Path(self.config.openface_dir) / f"{Path(segment.path).stem}.csv"

    def input_paths(self, segment: Segment) -> list[Path]:
        """The CSV alone determines the output; the video's bytes are never read."""
        return [self.csv_path(segment)]

    def extract(self, segment: Segment) -> Result:
        csv = self.csv_path(segment)
        where = f"{segment.where()} OpenFace CSV {csv}"
        if not csv.is_file():
            raise ExtractionError(f"{where}: file not found; run OpenFace 2.0 FeatureExtraction -f <video> "
                                  f"-out_dir {self.config.openface_dir} (CSV named after the video file)")
        try:
            table = read_openface_csv(csv)
        except Exception as e:  # pandas raises several parser error types for a broken CSV
            raise ExtractionError(f"{where}: unreadable CSV ({type(e).__name__}: {e}); rerun OpenFace") from e
        if table.empty or "timestamp" not in table.columns:
            raise ExtractionError(f"{where}: no rows or no timestamp column; rerun OpenFace FeatureExtraction")
        times = table["timestamp"].to_numpy(np.float64)
        period = float(np.median(np.diff(np.sort(times)))) if len(times) > 1 else 0.0
        start, end = resolve_span(segment, float(times.max()) + period, "OpenFace")
        return table_to_result(table, start, end, self.config.fps, self.config.min_confidence, where)
