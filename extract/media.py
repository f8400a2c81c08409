"""Decoding media with PyAV (bundled FFmpeg): an utterance's audio as mono samples, its video as frames at a fixed rate."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .types import ExtractionError, Segment

# Spans may overshoot a stream's end by this much (container and stream durations disagree by a
# frame or an AAC packet); the overshoot is cut off. Beyond it the span is an error.
SPAN_TOLERANCE_S = 0.1


def _open(segment: Segment) -> av.container.InputContainer:
    path = segment.path
    if path is None:
        raise ExtractionError(f"{segment.utterance_id}: no media file given (the manifest row has no video path)")
    if not Path(path).is_file():
        raise ExtractionError(f"{segment.where()}: media file not found; check the manifest path and the videos root")
    try:
        return av.open(str(path))
    except av.FFmpegError as e:
        raise ExtractionError(f"{segment.where()}: cannot open media, file is corrupt, truncated or not a "
                              f"media file (FFmpeg: {e}); re-encode or re-download it") from e


def _stream_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def resolve_span(segment: Segment, duration: float | None, kind: str) -> tuple[float, float]:
    """(start, end) seconds of ``segment`` inside a stream of ``duration`` seconds (None = unknown).

    Raises ExtractionError for end <= start, a negative start, or a span past the stream's end
    (beyond SPAN_TOLERANCE_S; a smaller overshoot is cut to the stream's end).
    """
    start = 0.0 if segment.start is None else float(segment.start)
    end = segment.end
    if end is None:
        if duration is None:
            raise ExtractionError(f"{segment.where()}: the {kind} stream declares no duration; give the "
                                  f"utterance an explicit end time in the manifest")
        end = duration
    end = float(end)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ExtractionError(f"{segment.where()}: span start/end must be finite numbers")
    if start < 0:
        raise ExtractionError(f"{segment.where()}: span starts before 0 s ({start:g}); fix the manifest's start")
    if end <= start:
        raise ExtractionError(f"{segment.where()}: span end ({end:g} s) is not after its start ({start:g} s); "
                              f"fix the manifest's start/end")
    if duration is not None:
        if start >= duration or end > duration + SPAN_TOLERANCE_S:
            raise ExtractionError(f"{segment.where()}: span {start:g}-{end:g} s is past the end of the {kind} "
                                  f"stream ({duration:.3f} s); fix the manifest's start/end")
        end = min(end, duration)
    return start, end


def decode_audio(segment: Segment, sample_rate: int) -> np.ndarray:
    """The segment's audio as mono float32 samples in [-1, 1] at ``sample_rate``: shape (N,).

    Sample 0 is the span start; span time before the audio stream's first sample (a stream that
    starts late on the media timeline) is zeros. Raises ExtractionError for a missing, corrupt or truncated file,
    no audio stream or a bad span.
    """
    with _open(segment) as container:
        if not container.streams.audio:
            raise ExtractionError(f"{segment.where()}: the file has no audio stream; the audio modality needs one")
        stream = container.streams.audio[0]
        declared = _stream_duration(container, stream)
        # A stream may begin later on the media timeline than the video (start_time > 0).
        offset = max(0.0, float(stream.start_time * stream.time_base)) if stream.start_time is not None else 0.0
        stream_end = None if declared is None else offset + declared
        start, end = resolve_span(segment, stream_end, "audio")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        try:
            if start > 1.0:  # seek lands on a packet at or before start; the exact cut comes below
                container.seek(int((start - 0.5) * av.time_base))
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                if frame.time is not None and frame.time > end:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as e:
            raise ExtractionError(f"{segment.where()}: audio stream is corrupt or truncated (FFmpeg: {e}); "
                                  f"re-encode or re-download the file") from e
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    # Sample i plays at first_time + i / rate (AAC priming is already dropped by the decoder);
    # span time before the stream's first sample is silence, as a player renders it.
    first = first_time or 0.0
    got = np.zeros(max(0, round((end - start) * sample_rate)), np.float32)
    src_lo = round((start - first) * sample_rate)
    dst_lo = max(0, -src_lo)
    piece = samples[max(0, src_lo):max(0, src_lo) + got.size - dst_lo]
    got[dst_lo:dst_lo + piece.size] = piece
    decoded_until = first + samples.size / sample_rate
    if decoded_until < end - SPAN_TOLERANCE_S:
        raise ExtractionError(f"{segment.where()}: audio decodes only up to {decoded_until:.3f} s but the span "
                              f"ends at {end:.3f} s (stream declares {stream_end} s): the file is truncated "
                              f"or corrupt; re-encode or re-download it")
    return got


def check_not_silent(samples: np.ndarray, segment: Segment, threshold_dbfs: float) -> None:
    """Raise ExtractionError when the peak level of ``samples`` (N,) stays below ``threshold_dbfs``."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    level = 20 * math.log10(peak) if peak > 0 else -math.inf
    if level < threshold_dbfs:
        raise ExtractionError(f"{segment.where()}: audio is silent (peak {level:.1f} dBFS, threshold "
                              f"{threshold_dbfs:g} dBFS, --audio.silence_dbfs); check the recording or the span")


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # even sizes keep swscale's chroma handling exact
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


class SampledFrames:
    """A segment's video frames sampled at ``fps``, decoded one at a time while they are iterated.

    Nothing but the decoder's own buffers and the frame on screen is held, so memory does not grow
    with the span's length (a one-hour interview costs what a clip costs). Opening raises
    ExtractionError for a missing or corrupt file, no video stream or a bad span; iterating, for a
    corrupt or truncated stream. Use it as a context manager (``with SampledFrames(...) as
    frames``) and iterate it once: K arrays (H, W, 3) uint8 with
    max(H, W) <= max_side; frame k shows the picture on screen at span time k / fps.
    ``timestamps`` (K, 2) float64 are [start, end] seconds relative to the span start.
    """

    def __init__(self, segment: Segment, fps: float, max_side: int):
        self.segment, self.max_side = segment, max_side
        self._container = _open(segment)
        try:
            if not self._container.streams.video:
                raise ExtractionError(f"{segment.where()}: the file has no video stream; the vision modality needs one")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            self._declared = _stream_duration(self._container, self._stream)
            self.start, self.end = resolve_span(segment, self._declared, "video")
        except BaseException:
            self._container.close()
            raise
        n = max(1, math.ceil((self.end - self.start) * fps - 1e-9))
        self._grid = self.start + np.arange(n) / fps
        rel = np.arange(n) / fps
        self.timestamps = np.stack([rel, np.minimum(rel + 1 / fps, self.end - self.start)], axis=1)
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self._grid)

    def __enter__(self) -> SampledFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self._size is None:
            self._size = _scaled_size(frame.width, frame.height, self.max_side)
        return frame.reformat(width=self._size[0], height=self._size[1], format="rgb24").to_ndarray()

    def __iter__(self) -> Iterator[np.ndarray]:
        """The K frames in order. Raises ExtractionError for a corrupt or truncated stream."""
        segment, grid, n = self.segment, self._grid, len(self._grid)
        sent = 0
        prev, prev_rgb = None, None
        last_time = None
        try:
            if self.start > 1.0:
                self._container.seek(int(self.start * av.time_base))  # to the keyframe at or before start
            for frame in self._container.decode(self._stream):
                t = float(frame.time) if frame.time is not None else 0.0
                last_time = t
                # Grid points before this frame show the previous frame (or this one, if none yet).
                while sent < n and t > grid[sent] + 1e-6:
                    if prev_rgb is None:
                        prev_rgb = self._rgb(prev if prev is not None else frame)
                    sent += 1
                    yield prev_rgb
                if sent >= n:
                    return
                prev, prev_rgb = frame, None
        except av.FFmpegError as e:
            raise ExtractionError(f"{segment.where()}: video stream is corrupt or truncated (FFmpeg: {e}); "
                                  f"re-encode or re-download the file") from e
        frame_period = 1.0 / float(self._stream.average_rate) if self._stream.average_rate else 0.1
        if prev is None or self.end > last_time + frame_period + SPAN_TOLERANCE_S:
            got = 0.0 if last_time is None else last_time - self.start
            raise ExtractionError(f"{segment.where()}: decoded video only up to {max(got, 0):.3f} s of a "
                                  f"{self.end - self.start:.3f} s span (stream declares {self._declared} s): the "
                                  f"file is truncated or corrupt; re-encode or re-download it")
        last_rgb = self._rgb(prev)  # the last frame stays on screen until the span ends
        for _ in range(n - sent):
            yield last_rgb

    def chunks(self, size: int) -> Iterator[list[np.ndarray]]:
        """The frames in lists of at most ``size`` (for backends that detect in batches)."""
        chunk: list[np.ndarray] = []
        for rgb in self:
            chunk.append(rgb)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

