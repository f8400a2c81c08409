"""Vision extractor: MediaPipe face-mesh landmarks turned into per-frame geometric descriptors, head pose and face presence."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import ClassVar, Iterator

import numpy as np

from ..media import SampledFrames
from ..types import Result, Segment
from .base import Extractor

log = logging.getLogger(__name__)


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Route what native code writes to file descriptor 2 inside the block into logging.

    MediaPipe's graph threads print absl/TFLite notices straight to fd 2, a few per face mesh, so per
    utterance: they would bury the progress bar. They are logged at debug level; error and fatal
    lines (absl's ``E``/``F`` prefixes) at warning level, so nothing is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                log.log(logging.WARNING if line[:1] in ("E", "F") else logging.DEBUG, "mediapipe: %s", line)

# MediaPipe face-mesh landmark indices (canonical 468-point mesh + 10 iris points with
# refine_landmarks). "right"/"left" are the subject's.
EYE_OUTER_R, EYE_INNER_R, EYE_TOP_R, EYE_BOTTOM_R = 33, 133, 159, 145
EYE_OUTER_L, EYE_INNER_L, EYE_TOP_L, EYE_BOTTOM_L = 263, 362, 386, 374
BROW_INNER_R, BROW_OUTER_R, BROW_INNER_L, BROW_OUTER_L = 107, 70, 336, 300
CHEEK_R, CHEEK_L = 50, 280
MOUTH_R, MOUTH_L, LIP_INNER_TOP, LIP_INNER_BOTTOM = 61, 291, 13, 14
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10
IRIS_R, IRIS_L = 468, 473

FEATURES = (
    "brow_raise_inner",   # AU1: inner brow height above the inner eye corner
    "brow_raise_outer",   # AU2: outer brow height above the outer eye corner
    "brow_gap",           # AU4 draws the brows together: distance between inner brow ends
    "eye_aperture_r",     # AU5/AU7/AU43: upper-to-lower lid distance
    "eye_aperture_l",
    "cheek_lid_gap",      # AU6 shortens it: cheek point to lower lid distance
    "lip_corner_height",  # AU12 (+) / AU15 (-): mouth corners above the inner-lip midpoint
    "lip_stretch",        # AU20: mouth width
    "mouth_open",         # AU25: inner lip distance
    "jaw_drop",           # AU26: nose tip to chin distance
    "gaze_x",             # iris position across the eye, 0 = centred, + = toward the subject's left
    "gaze_y",             # iris position relative to the eye-corner line, + = down
    "head_pitch",         # radians, + = chin down
    "head_yaw",           # radians, + = face turned toward the image's right
    "head_roll",          # radians, + = clockwise in the image
    "face_presence",      # 1 = a face was found, 0 = masked frame (all other values 0)
)


def face_frame(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Face-aligned frame of landmarks ``p`` (478, 3) in pixels.

    Returns (rotation (3, 3) whose rows are the face's x (toward subject's left eye), y (toward
    the chin) and z axes in image coordinates, origin (3,) = midpoint of the outer eye corners,
    inter-ocular distance in pixels).
    """
    x = p[EYE_OUTER_L] - p[EYE_OUTER_R]
    iod = float(np.linalg.norm(x))
    x = x / iod
    down = p[CHIN] - p[FOREHEAD]
    y = down - down.dot(x) * x
    y = y / np.linalg.norm(y)
    z = np.cross(x, y)
    return np.stack([x, y, z]), (p[EYE_OUTER_L] + p[EYE_OUTER_R]) / 2, iod


def descriptors(points: np.ndarray) -> np.ndarray:
    """The FEATURES of one face: ``points`` (478, 3) in pixels -> (len(FEATURES),) float32.

    Distances are in units of the inter-ocular (outer eye corner) distance and measured in the
    face-aligned frame, so head rotation and distance to the camera cancel out to first order.
    """
    rot, origin, iod = face_frame(points)
    q = (points - origin) @ rot.T / iod  # aligned coordinates: x toward left eye, y down
    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(q[a] - q[b]))
    lip_mid = (q[LIP_INNER_TOP] + q[LIP_INNER_BOTTOM]) / 2
    eye_w_r, eye_w_l = dist(EYE_OUTER_R, EYE_INNER_R), dist(EYE_OUTER_L, EYE_INNER_L)
    gaze_x = ((q[IRIS_R, 0] - (q[EYE_OUTER_R, 0] + q[EYE_INNER_R, 0]) / 2) / eye_w_r
              + (q[IRIS_L, 0] - (q[EYE_OUTER_L, 0] + q[EYE_INNER_L, 0]) / 2) / eye_w_l) / 2
    gaze_y = ((q[IRIS_R, 1] - (q[EYE_OUTER_R, 1] + q[EYE_INNER_R, 1]) / 2) / eye_w_r
              + (q[IRIS_L, 1] - (q[EYE_OUTER_L, 1] + q[EYE_INNER_L, 1]) / 2) / eye_w_l) / 2
    return np.array([
        ((q[EYE_INNER_R, 1] - q[BROW_INNER_R, 1]) + (q[EYE_INNER_L, 1] - q[BROW_INNER_L, 1])) / 2,
        ((q[EYE_OUTER_R, 1] - q[BROW_OUTER_R, 1]) + (q[EYE_OUTER_L, 1] - q[BROW_OUTER_L, 1])) / 2,
        dist(BROW_INNER_R, BROW_INNER_L),
        dist(EYE_TOP_R, EYE_BOTTOM_R),
        dist(EYE_TOP_L, EYE_BOTTOM_L),
        (dist(CHEEK_R, EYE_BOTTOM_R) + dist(CHEEK_L, EYE_BOTTOM_L)) / 2,
        lip_mid[1] - (q[MOUTH_R, 1] + q[MOUTH_L, 1]) / 2,
        dist(MOUTH_R, MOUTH_L),
        dist(LIP_INNER_TOP, LIP_INNER_BOTTOM),
        dist(NOSE_TIP, CHIN),
        gaze_x,
        gaze_y,
        # Euler angles with roll outermost (face-to-camera = Rz(roll) Ry(yaw) Rx(pitch)), so a
        # rotation in the image plane changes roll alone; image z points away from the camera.
        np.arctan2(-rot[1, 2], rot[2, 2]),
        np.arcsin(np.clip(rot[0, 2], -1.0, 1.0)),
        np.arctan2(rot[0, 1], rot[0, 0]),
        1.0,
    ], dtype=np.float32)


class LandmarksExtractor(Extractor):
    """Landmark features from MediaPipe face mesh (478 points, refine_landmarks), one row per
    sampled frame: values (T, 16) named by ``FEATURES``. These are geometric stand-ins for action
    units, not AU intensities. A frame without a face is a zero row with frame_mask False; no
    face in any frame gives status 'absent'. The mesh is rebuilt per utterance, so its tracking
    never carries over between utterances and results do not depend on processing order.
    """
    modality: ClassVar[str] = "vision"
    name: ClassVar[str] = "mediapipe-face-mesh-landmark-features"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("mediapipe", "av")
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "fps", "max_side", "min_confidence")

    def feature_names(self) -> list[str]:
        return list(FEATURES)

    def setup(self) -> None:
        import mediapipe  # noqa: F401  (fail at setup, not at the first utterance)

    def _mesh(self):
        import mediapipe as mp
        return mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                               min_detection_confidence=self.config.min_confidence,
                                               min_tracking_confidence=self.config.min_confidence)

    def extract(self, segment: Segment) -> Result:
        with SampledFrames(segment, self.config.fps, self.config.max_side) as frames, \
                native_stderr_to_log(), self._mesh() as mesh:
            values = np.zeros((len(frames), len(FEATURES)), np.float32)
            mask = np.zeros(len(frames), bool)
            for k, rgb in enumerate(frames):
                found = mesh.process(rgb).multi_face_landmarks
                if not found:
                    continue
                h, w = rgb.shape[:2]
                lm = found[0].landmark
                # MediaPipe's x, y are fractions of width/height and z is on the x scale
                pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float64)
                values[k] = descriptors(pts)
                mask[k] = True
        return Result(values=values, timestamps=frames.timestamps, frame_mask=mask,
                      status="ok" if mask.any() else "absent")
