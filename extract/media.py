"""Decoding media with PyAV (bundled FFmpeg): an utterance's audio as mono samples, its video as frames at a fixed rate."""
from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

from .extractors.base import ExtractionError, Segment

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


def decode_frames(segment: Segment, fps: float, max_side: int) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames sampled at ``fps`` inside the segment's span, and their timestamps.

    Returns (frames, timestamps): K arrays (H, W, 3) uint8 with max(H, W) <= max_side, and (K, 2)
    float64 [start, end] seconds relative to the span start; frame k shows the picture on screen at
    span time k / fps. Raises ExtractionError for a missing, corrupt or truncated file, no video
    stream or a bad span.
    """
    with _open(segment) as container:
        if not container.streams.video:
            raise ExtractionError(f"{segment.where()}: the file has no video stream; the vision modality needs one")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = _stream_duration(container, stream)
        start, end = resolve_span(segment, declared, "video")
        n = max(1, math.ceil((end - start) * fps - 1e-9))
        grid = start + np.arange(n) / fps
        frames: list[np.ndarray] = []
        size = None
        prev, prev_rgb = None, None

        def rgb(frame: av.VideoFrame) -> np.ndarray:
            nonlocal size
            if size is None:
                size = _scaled_size(frame.width, frame.height, max_side)
            return frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()

        last_time = None
        try:
            if start > 1.0:
                container.seek(int(start * av.time_base))  # to the keyframe at or before start
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                last_time = t
                # Grid points before this frame show the previous frame (or this one, if none yet).
                while len(frames) < n and t > grid[len(frames)] + 1e-6:
                    if prev_rgb is None:
                        prev_rgb = rgb(prev if prev is not None else frame)
                    frames.append(prev_rgb)
                if len(frames) >= n:
                    break
                prev, prev_rgb = frame, None
        except av.FFmpegError as e:
            raise ExtractionError(f"{segment.where()}: video stream is corrupt or truncated (FFmpeg: {e}); "
                                  f"re-encode or re-download the file") from e
        frame_period = 1.0 / float(stream.average_rate) if stream.average_rate else 0.1
        if len(frames) < n:
            if prev is None or end > last_time + frame_period + SPAN_TOLERANCE_S:
                got = 0.0 if last_time is None else last_time - start
                raise ExtractionError(f"{segment.where()}: decoded video only up to {max(got, 0):.3f} s of a "
                                      f"{end - start:.3f} s span (stream declares {declared} s): the file is "
                                      f"truncated or corrupt; re-encode or re-download it")
            last_rgb = rgb(prev)  # the last frame stays on screen until the span ends
            frames.extend([last_rgb] * (n - len(frames)))
    rel = np.arange(n) / fps
    timestamps = np.stack([rel, np.minimum(rel + 1 / fps, end - start)], axis=1)
    return frames, timestamps
