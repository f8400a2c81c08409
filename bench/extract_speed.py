"""Benchmark of ebmc-extract: utterances/s and real-time factor per modality and overall, with 1 and 2 workers; peak memory on long videos.

    python bench/extract_speed.py [--n 60] [--workers 1 2] [--work DIR] [--json FILE] [--asr]
    python bench/extract_speed.py --long [--long-minutes 1 5] [--work DIR] [--json FILE]

Generates ``--n`` talking-face clips (espeak-ng speech over scikit-image's astronaut, 640x360,
25 fps, h264 + AAC, built with tests/extract/media_fixtures.py), then extracts them with the
default settings (MiniLM text, openSMILE eGeMAPSv02 LLD audio, blendshapes vision at 10 fps) into a
fresh store per worker count: each modality alone (vision also with the landmarks backend, row
"vision-lm"), then all three at defaults as ebmc-extract runs them.

``--long`` instead generates one 640x360 video per ``--long-minutes`` length and extracts its
whole span as one utterance with each vision backend at defaults, each run in a fresh process
whose peak resident memory (ru_maxrss) is reported, with the growth per minute of video between
the shortest and the longest length (what a longer video would add).
Times are wall-clock, including model loading and worker start (library imports, paid once
per process, are timed apart); real-time factor = seconds of media / seconds of extraction;
"cpu s" is the CPU time spent (main process and workers), which other load on the machine does
not inflate. It measures, it asserts nothing.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "extract"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

WORDS = ("the movie was really great and I loved every minute of it but the ending felt "
         "rushed and honestly a little disappointing so overall I would say it was fine").split()


def make_dataset(folder: Path, n: int) -> tuple[Path, float]:
    """``n`` clips and a manifest in ``folder``; returns (manifest, total seconds of media)."""
    from media_fixtures import espeak_wav, face_image, read_wav, write_mp4
    folder.mkdir(parents=True, exist_ok=True)
    canvas = np.full((360, 640, 3), 40, np.uint8)
    canvas[:, 140:500] = face_image(360)
    rng = np.random.default_rng(0)
    rows, total = [], 0.0
    for k in range(n):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(6, 16))))
        speech, sr = read_wav(espeak_wav(text, folder / "tmp.wav"))
        duration = round(speech.size / sr + 0.3, 2)
        write_mp4(folder / f"u{k:03d}.mp4", image=canvas, duration=duration, audio=speech, sample_rate=sr)
        rows.append({"utterance_id": f"u{k:03d}", "video": f"u{k:03d}.mp4", "transcript": text,
                     "label": float(rng.uniform(-3, 3)), "split": ("train", "valid", "test")[k % 3]})
        total += duration
    (folder / "tmp.wav").unlink()
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", total


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker pools)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench(videos: Path, manifest_file: Path, out: Path, workers: int, media_s: float) -> dict:
    """Seconds, utterances/s and real-time factor: each modality alone (own fresh store), then
    all three together as ``ebmc-extract`` runs them (text in the main process overlapping the
    audio/vision workers), plus the commit."""
    from ebmc.extract import cache, pipeline
    from ebmc.extract.cli import CONFIGS
    from ebmc.extract.manifest import load_manifest

    from ebmc.extract.extractors import VisionConfig

    manifest = load_manifest(videos, manifest_file)
    rows = {}
    runs = [*((m, {m: CONFIGS[m]()}) for m in CONFIGS), ("vision-lm", {"vision": VisionConfig(backend="landmarks")}),
            ("all", {m: cls() for m, cls in CONFIGS.items()})]
    for name, configs in runs:
        root = out / name / manifest.dataset
        hasher = cache.MediaHasher(root)
        start, cpu = time.perf_counter(), cpu_seconds()
        reports = pipeline.extract(manifest, root, configs, workers=workers, hasher=hasher)
        rows[name] = {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu,
                      "failed": sum(r.failed for r in reports.values())}
    start, cpu = time.perf_counter(), cpu_seconds()
    pipeline.commit(manifest, out / "all" / manifest.dataset, {m: cls() for m, cls in CONFIGS.items()}, hasher)
    rows["commit"] = {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu, "failed": 0}
    rows["overall"] = {k: rows["all"][k] + rows["commit"][k] for k in ("seconds", "cpu_seconds", "failed")}
    return add_rates(rows, len(manifest.items), media_s)


def add_rates(rows: dict, n: int, media_s: float) -> dict:
    """Utterances/s and real-time factor of each timed row."""
    for r in rows.values():
        r["utt_per_s"] = n / r["seconds"]
        r["realtime_x"] = media_s / r["seconds"]
    return rows


def _vision_peak(video: str, backend: str) -> tuple[int, float, int]:
    """In a fresh process: (frames, seconds, peak resident MiB) of extracting all of ``video``."""
    from ebmc.extract.extractors import Segment, VisionConfig, make_extractor
    ex = make_extractor("vision", VisionConfig(backend=backend))
    ex.setup()
    start = time.perf_counter()
    result = ex.extract(Segment("long", Path(video), None, None, None))
    return len(result.values), time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def bench_long(work: Path, minutes: list[float]) -> dict:
    """Peak memory of one worker extracting one long 640x360 video per length, per vision backend."""
    import concurrent.futures as cf
    import multiprocessing
    from media_fixtures import face_image, write_mp4
    canvas = np.full((360, 640, 3), 40, np.uint8)
    canvas[:, 140:500] = face_image(360)
    rows = {}
    for length in minutes:
        start = time.perf_counter()
        video = write_mp4(work / f"long-{length:g}min.mp4", image=canvas, duration=length * 60, fps=25)
        print(f"generated a {length:g}-minute 640x360 video in {time.perf_counter() - start:.1f} s")
        for backend in ("blendshapes", "landmarks"):
            with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                frames, seconds, peak = pool.submit(_vision_peak, str(video), backend).result()
            rows[f"{backend} {length:g} min"] = {"backend": backend, "minutes": length, "frames": frames,
                                                 "seconds": seconds, "peak_mib": peak}
            print(f"{backend:12s} {length:6g} min {frames:7d} frames {seconds:8.1f} s  peak {peak:6d} MiB")
    for backend in ("blendshapes", "landmarks"):
        ends = [r for r in rows.values() if r["backend"] == backend]
        lo, hi = min(ends, key=lambda r: r["minutes"]), max(ends, key=lambda r: r["minutes"])
        if hi["minutes"] > lo["minutes"]:
            slope = (hi["peak_mib"] - lo["peak_mib"]) / (hi["minutes"] - lo["minutes"])
            print(f"{backend}: peak grows {slope:+.2f} MiB per minute of video; at 60 min: "
                  f"{hi['peak_mib'] + slope * (60 - hi['minutes']):.0f} MiB (extrapolated)")
    return rows
def bench_asr(videos: Path, manifest_file: Path, out: Path, workers: int, media_s: float) -> dict:
    """With speech recognition (--asr): the manifest without its transcript column, so text comes
    from ASR; ASR alone, then all three modalities at defaults with ASR, plus the commit."""
    from ebmc.extract import cache, pipeline
    from ebmc.extract.asr import AsrConfig, word_error_rate
    from ebmc.extract.cli import CONFIGS
    from ebmc.extract.manifest import load_manifest
    from ebmc.store import open_store

    bare = manifest_file.with_name("manifest-asr.csv")
    pd.read_csv(manifest_file).drop(columns="transcript").to_csv(bare, index=False)
    manifest = load_manifest(videos, bare)
    rows = {}
    for name, mods in (("asr", []), ("all+asr", list(CONFIGS))):
        root = out / name / manifest.dataset
        hasher = cache.MediaHasher(root)
        start, cpu = time.perf_counter(), cpu_seconds()
        reports = pipeline.extract(manifest, root, {m: CONFIGS[m]() for m in mods}, workers=workers, hasher=hasher,
                                   asr=AsrConfig())
        rows[name] = {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu,
                      "failed": sum(r.failed for r in reports.values())}
    start, cpu = time.perf_counter(), cpu_seconds()
    pipeline.commit(manifest, out / "all+asr" / manifest.dataset, {m: cls() for m, cls in CONFIGS.items()}, hasher, AsrConfig())
    rows["commit"] = {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu, "failed": 0}
    rows["overall+asr"] = {k: rows["all+asr"][k] + rows["commit"][k] for k in ("seconds", "cpu_seconds", "failed")}
    spoken = pd.read_csv(manifest_file)["transcript"]
    heard = open_store(out / "all+asr" / manifest.dataset).utterances["transcript"].fillna("")
    print(f"workers {workers}: ASR word error rate over the {len(spoken)} clips: mean "
          f"{np.mean([word_error_rate(a, b) for a, b in zip(spoken, heard)]):.1%}")
    return add_rates(rows, len(manifest.items), media_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60, help="utterances to generate")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    p.add_argument("--work", type=Path, help="folder for media and stores (default: a temp folder, deleted)")
    p.add_argument("--json", type=Path, help="also write the numbers to this file")
    p.add_argument("--long", action="store_true", help="measure peak memory on long videos instead")
    p.add_argument("--long-minutes", type=float, nargs="+", default=[1.0, 5.0], help="long video lengths (minutes)")
    p.add_argument("--asr", action="store_true", help="only the runs with speech recognition (text from ASR, no "
                   "transcripts): ASR alone and all three modalities, and the ASR share of that run")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ebmc-bench-"))
    load = os.getloadavg()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.long:
        try:
            work.mkdir(parents=True, exist_ok=True)
            rows = bench_long(work, args.long_minutes)
            print(f"machine: {machine}; load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f}")
            if args.json:
                args.json.write_text(json.dumps({"machine": machine, "load_average": [load[0], os.getloadavg()[0]],
                                                 "long": rows}, indent=2))
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        start = time.perf_counter()
        manifest, media_s = make_dataset(work / "videos", args.n)
        print(f"generated {args.n} clips, {media_s:.1f} s of media, in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        for lib in ("av", "mediapipe", "opensmile", "torch", "transformers"):
            importlib.import_module(lib)
        imports = time.perf_counter() - start
        print(f"library imports: {imports:.1f} s, paid once per process (here before the timed rows)")
        results = {}
        for w in args.workers:
            shutil.rmtree(work / f"features-{w}", ignore_errors=True)
            results[w] = (bench_asr if args.asr else bench)(work / "videos", manifest, work / f"features-{w}", w, media_s)
        print(f"\nmachine: {machine}")
        print(f"load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} (other processes share the CPUs above 0)")
        print(f"{'workers':>7s}  {'stage':9s} {'seconds':>8s} {'utt/s':>7s} {'x real time':>11s} {'cpu s':>7s} {'failed':>6s}")
        for w, rows in results.items():
            for stage, r in rows.items():
                print(f"{w:7d}  {stage:9s} {r['seconds']:8.2f} {r['utt_per_s']:7.2f} {r['realtime_x']:11.1f} "
                      f"{r['cpu_seconds']:7.1f} {r['failed']:6d}")
            if args.asr:
                print(f"{w:7d}  ASR share of all+asr: {rows['asr']['seconds'] / rows['all+asr']['seconds']:.0%} of the "
                      f"time, {rows['asr']['cpu_seconds'] / rows['all+asr']['cpu_seconds']:.0%} of the CPU")
        if args.json:
            args.json.write_text(json.dumps({"machine": machine, "n": args.n, "media_seconds": media_s,
                                             "imports_seconds": imports, "load_average": [load[0], os.getloadavg()[0]],
                                             "results": results}, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
