"""Audio extractors: openSMILE descriptors (eGeMAPSv02 / ComParE_2016, LLD or functionals) and librosa MFCC + pyin f0 + energy."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..media import check_not_silent, decode_audio
from ..types import Result, Segment
from .base import Extractor
from .config import AudioConfig


class AudioExtractor(Extractor):
    """An acoustic extractor: the segment's mono samples at ``config.sample_rate``, rejected when
    silent, to features. ``from_samples`` lets speech recognition share one decode."""

    def extract(self, segment: Segment) -> Result:
        return self.from_samples(segment, decode_audio(segment, self.config.sample_rate))

    def from_samples(self, segment: Segment, samples: np.ndarray) -> Result:
        """Features of ``samples`` (N,) float32, the segment decoded at ``config.sample_rate``."""
        if not self.ready():
            self.setup()
        check_not_silent(samples, segment, self.config.silence_dbfs)
        return self.features(samples)

    def ready(self) -> bool:
        return True

    def features(self, samples: np.ndarray) -> Result:
        raise NotImplementedError


class OpenSmileExtractor(AudioExtractor):
    """openSMILE features: LLD (a row per 10 ms frame; timestamps are openSMILE's frame windows,
    20 ms for eGeMAPSv02 and 60 ms for ComParE_2016) or functionals (one row for the whole span)."""
    modality: ClassVar[str] = "audio"
    name: ClassVar[str] = "opensmile"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("opensmile", "av")
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "feature_set", "level", "sample_rate", "silence_dbfs")

    def __init__(self, config):
        super().__init__(config)
        self.smile = None

    def _smile(self):
        import opensmile
        level = {"lld": opensmile.FeatureLevel.LowLevelDescriptors,
                 "functionals": opensmile.FeatureLevel.Functionals}[self.config.level]
        return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, self.config.feature_set),
                               feature_level=level)

    def feature_names(self) -> list[str]:
        return list((self.smile or self._smile()).feature_names)

    def setup(self) -> None:
        self.smile = self._smile()

    def ready(self) -> bool:
        return self.smile is not None

    def features(self, samples: np.ndarray) -> Result:
        df = self.smile.process_signal(samples, self.config.sample_rate)  # index (start, end) timedeltas
        starts = df.index.get_level_values("start").total_seconds().to_numpy()
        ends = df.index.get_level_values("end").total_seconds().to_numpy()
        return Result(values=df.to_numpy(np.float32), timestamps=np.stack([starts, ends], axis=1))


class LibrosaExtractor(AudioExtractor):
    """librosa frames every ``hop_ms``: n_mfcc MFCCs, log RMS energy, pyin f0 (Hz, 0 when unvoiced),
    voiced flag and voicing probability. Frame k is centred at k * hop; its timestamps are the
    ``win_ms`` window around that centre, clipped to the span."""
    modality: ClassVar[str] = "audio"
    name: ClassVar[str] = "librosa"
    version: ClassVar[int] = 1
    TOOLS: ClassVar[tuple[str, ...]] = ("librosa", "av")
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ("backend", "sample_rate", "n_mfcc", "hop_ms", "win_ms",
                                                "fmin", "fmax", "silence_dbfs")

    def feature_names(self) -> list[str]:
        return [f"mfcc{i}" for i in range(self.config.n_mfcc)] + ["log_rms", "f0_hz", "voiced", "voiced_prob"]

    def setup(self) -> None:
        import librosa
        # numba compiles pyin's kernels on first use; pay that once per worker, not per utterance
        librosa.pyin(np.zeros(4096, np.float32), fmin=self.config.fmin, fmax=self.config.fmax,
                     sr=self.config.sample_rate, frame_length=self._pyin_frame())

    def _pyin_frame(self) -> int:
        # pyin needs two periods of fmin inside a frame; next power of two for the FFT
        need = 2 * self.config.sample_rate / self.config.fmin
        return int(2 ** np.ceil(np.log2(need)))

    def features(self, y: np.ndarray) -> Result:
        import librosa
        c = self.config
        sr = c.sample_rate
        hop = int(round(c.hop_ms * sr / 1000))
        win = int(round(c.win_ms * sr / 1000))
        n_fft = int(2 ** np.ceil(np.log2(win)))
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=c.n_mfcc, n_fft=n_fft, win_length=win,
                                    hop_length=hop)                                     # (n_mfcc, T)
        rms = librosa.feature.rms(y=y, frame_length=win, hop_length=hop)              # (1, T)
        f0, voiced, prob = librosa.pyin(y, fmin=c.fmin, fmax=c.fmax, sr=sr,
                                        frame_length=self._pyin_frame(), hop_length=hop)  # (T,) each
        t = min(mfcc.shape[1], rms.shape[1], f0.shape[0])  # all centred frames: 1 + N // hop
        values = np.concatenate([mfcc[:, :t], np.log(rms[:, :t] + 1e-8),
                                 np.nan_to_num(f0[:t], nan=0.0)[None], voiced[None, :t].astype(np.float32),
                                 prob[None, :t]], axis=0).T
        centre = np.arange(t) * hop / sr
        duration = y.size / sr
        stamps = np.stack([np.clip(centre - win / 2 / sr, 0, duration),
                           np.clip(centre + win / 2 / sr, 0, duration)], axis=1)
        return Result(values=values, timestamps=stamps)


def audio_extractor(config: AudioConfig) -> AudioExtractor:
    """The backend ``config.backend`` names: ``make_extractor``'s audio branch, and the
    ASR job's acoustic features from its own decode (which cannot go through the registry that makes it)."""
    if config.backend == "opensmile":
        return OpenSmileExtractor(config)
    if config.backend == "librosa":
        return LibrosaExtractor(config)
    raise ValueError(f"unknown audio backend {config.backend!r}; see --audio.backend --help")
