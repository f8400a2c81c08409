"""Tests of PyAV decoding: sample counts, spans, frame grids and every bad-input error, on real media."""
from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest

from ebmc.extract.extractors import ExtractionError, Segment
from ebmc.extract.media import SampledFrames, decode_audio
from media_fixtures import read_wav

SR = 16000


def seg(path, start=None, end=None) -> Segment:
    return Segment("utt1", Path(path), start, end, None)


def decode_frames(segment, fps, max_side):
    """All sampled frames of ``segment`` as a list, and their timestamps (K, 2)."""
    with SampledFrames(segment, fps, max_side) as frames:
        return list(frames), frames.timestamps


def test_audio_has_exact_length_and_lines_up_with_the_spoken_source(media):
    full = decode_audio(seg(media["talking"]), SR)
    assert full.shape == (3 * SR,) and full.dtype == np.float32
    speech, sr = read_wav(media["speech_wav"])
    ref = librosa.resample(speech, orig_sr=sr, target_sr=SR)[:SR]
    lag = np.argmax(np.correlate(full[:SR], ref, "full")) - (SR - 1)
    assert abs(lag) <= 2, f"decoded audio is shifted by {lag} samples against the source speech"


def test_audio_span_is_the_matching_slice_of_the_whole(media):
    full = decode_audio(seg(media["talking"]), SR)
    part = decode_audio(seg(media["talking"], 1.5, 2.5), SR)
    assert part.shape == (SR,)
    assert np.corrcoef(part, full[int(1.5 * SR):int(2.5 * SR)])[0, 1] > 0.999


def test_frames_follow_the_fps_grid_and_the_blank_span(media):
    frames, stamps = decode_frames(seg(media["blank_face"]), fps=10, max_side=128)
    assert len(frames) == 30 and frames[0].shape == (128, 128, 3)
    np.testing.assert_allclose(stamps[:, 0], np.arange(30) / 10)
    assert stamps[-1, 1] == pytest.approx(3.0)
    gray = [float(np.abs(f.astype(int) - 128).mean()) < 3 for f in frames]
    assert gray == [1.0 <= k / 10 < 2.0 for k in range(30)]


def test_span_frames_count_and_clip_to_span_end(media):
    frames, stamps = decode_frames(seg(media["talking"], 0.25, 1.0), fps=4, max_side=64)
    assert len(frames) == math.ceil(0.75 * 4) == 3
    np.testing.assert_allclose(stamps, [[0, 0.25], [0.25, 0.5], [0.5, 0.75]])


def test_seeking_gives_the_same_frames_as_decoding_from_the_start(pyfeat_data):
    video = pyfeat_data / "WolfgangLanger_Pexels.mp4"  # 19.7 s, 23.976 fps, h264
    from_start, _ = decode_frames(seg(video, 0.0, 7.0), fps=5, max_side=160)
    seeked, stamps = decode_frames(seg(video, 5.0, 7.0), fps=5, max_side=160)
    assert len(seeked) == 10 and stamps[-1, 1] == pytest.approx(2.0)
    for a, b in zip(seeked, from_start[25:]):
        np.testing.assert_array_equal(a, b)


def test_real_mov_audio_resamples_from_44k(pyfeat_data):
    audio = decode_audio(seg(pyfeat_data / "noface_face.mov", 0.5, 3.5), SR)
    assert audio.shape == (3 * SR,) and np.abs(audio).max() > 0.01


@pytest.mark.parametrize("name, start, end, decode, expect", [
    ("missing", None, None, "audio", "not found"),
    ("corrupt", None, None, "audio", "corrupt"),
    ("corrupt", None, None, "video", "corrupt"),
    ("truncated", None, None, "audio", "truncated"),
    ("truncated", None, None, "video", "truncated"),
    ("video_only", None, None, "audio", "no audio stream"),
    ("audio_only", None, None, "video", "no video stream"),
    ("talking", 2.0, 2.0, "audio", "not after its start"),
    ("talking", 2.0, 1.0, "video", "not after its start"),
    ("talking", 2.0, 3.5, "audio", "past the end"),
    ("talking", 3.2, 4.0, "video", "past the end"),
    ("talking", -1.0, 1.0, "audio", "before 0"),
])
def test_bad_input_raises_extraction_error_with_reason(media, tmp_path, name, start, end, decode, expect):
    path = tmp_path / "nope.mp4" if name == "missing" else media[name]
    with pytest.raises(ExtractionError) as err:
        if decode == "audio":
            decode_audio(seg(path, start, end), SR)
        else:
            decode_frames(seg(path, start, end), fps=10, max_side=128)
    assert expect in err.value.reason and "utt1" in err.value.reason and str(path) in err.value.reason


def test_audio_stream_starting_late_is_placed_on_the_media_timeline(pyfeat_data):
    mov = pyfeat_data / "face_noface.mov"  # audio stream covers 2.43-6.42 s of the 6.40 s video
    audio = decode_audio(seg(mov, 0.0, 5.0), SR)
    assert audio.shape == (5 * SR,)
    assert not audio[:int(2.42 * SR)].any() and np.abs(audio[int(2.5 * SR):]).max() > 0.01
    with pytest.raises(ExtractionError, match="past the end of the audio stream"):
        decode_audio(seg(mov, 6.0, 7.0), SR)



def live_frames_peak(frames) -> int:
    """Iterate ``frames`` like a streaming consumer (each frame dropped before the next) and return
    the most frames alive at once: what the decoder holds on to (PyAV's buffers escape tracemalloc)."""
    import weakref
    refs, peak = [], 0
    for rgb in frames:
        refs.append(weakref.ref(rgb))
        del rgb
        peak = max(peak, sum(r() is not None for r in refs))
    return peak


def test_frames_are_streamed_not_held(tmp_path):
    from media_fixtures import face_image, write_mp4
    video = write_mp4(tmp_path / "long.mp4", image=face_image(64), duration=20.0, fps=10)
    with SampledFrames(seg(video), fps=10, max_side=64) as frames:
        assert len(frames) == 200
        assert live_frames_peak(frames) <= 2  # the frame on screen (and the previous one while decoding)
