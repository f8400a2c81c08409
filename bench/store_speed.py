"""Benchmark: open a MOSEI-shaped feature store and read one epoch, against pickle.load of the equal MMSA pickle.

Not a test: it measures and prints a markdown table, it asserts nothing. Each measurement runs in
a fresh Python process, so its peak resident memory (ru_maxrss) is its own; the traced peak
(tracemalloc) counts Python/numpy allocations, not memory-mapped pages.

    python bench/store_speed.py                    # MOSEI splits scaled to 2000 train utterances
    python bench/store_speed.py --n-train 16326    # the real MOSEI size (~9 GB of pickle on disk)
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

MODALITIES = ("text", "audio", "vision")
PHASES = ("store-open", "store-epoch", "pickle-open", "pickle-epoch")


def _store_epoch(root: Path, batch_size: int, epoch: bool) -> int:
    from ebmc.store import open_store  # imported before the clock starts (see measure)

    store = open_store(root)
    train = store.split_indices("train")
    labels = store.labels()
    if not epoch:
        return len(train)
    order = np.random.default_rng(0).permutation(train)
    touched = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for m in MODALITIES:
            x, mask = store.features(m).padded(idx)
            touched += x.nbytes
        labels[idx]
    return touched


def _pickle_epoch(path: Path, batch_size: int, epoch: bool) -> int:
    with open(path, "rb") as f:
        data = pickle.load(f)
    train = data["train"]
    if not epoch:
        return len(train["id"])
    order = np.random.default_rng(0).permutation(len(train["id"]))
    touched = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for m in MODALITIES:
            touched += np.asarray(train[m][idx], dtype=np.float32).nbytes
        train["regression_labels"][idx]
    return touched


def measure(phase: str, store: Path, pkl: Path, batch_size: int) -> dict:
    """Run one phase in this process; return seconds, traced peak MB and peak RSS MB.

    Library imports happen before the clock starts: both sides pay them once per process.
    """
    import ebmc.store  # noqa: F401  (pandas, pyarrow)

    tracemalloc.start()
    t0 = time.perf_counter()
    if phase.startswith("store"):
        _store_epoch(store, batch_size, phase.endswith("epoch"))
    else:
        _pickle_epoch(pkl, batch_size, phase.endswith("epoch"))
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    rss_mb = _peak_rss_mb()
    return {"phase": phase, "seconds": seconds, "traced_peak_mb": peak / 2**20, "max_rss_mb": rss_mb}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM resets at exec; ru_maxrss would keep the
    parent's peak (the parent built the data), so it is only the fallback off Linux."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_phase(phase: str, store: Path, pkl: Path, batch_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--store", str(store), "--pickle", str(pkl),
                          "--batch-size", str(batch_size)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _baseline_rss() -> float:
    out = subprocess.run([sys.executable, "-c", "import sys, ebmc.store; sys.path.insert(0, sys.argv[1]);"
                          "from store_speed import _peak_rss_mb; print(_peak_rss_mb())", str(Path(__file__).parent)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def _du(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000, help="train utterances (valid/test scale with it; MOSEI has 16326)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the store and pickle (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per phase; the table shows the median")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pickle", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:  # child process: one measurement, printed as JSON
        print(json.dumps(measure(args.phase, args.store, args.pickle, args.batch_size)))
        return 0

    from ebmc.extract.exporters.mmsa import export_mmsa
    from ebmc.extract.importers.synthetic import make_synthetic

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        store, pkl = Path(tmp) / "mosei", Path(tmp) / "mosei_unaligned.pkl"
        t0 = time.perf_counter()
        make_synthetic(store, like="mosei", seed=0, n_train=args.n_train)
        export_mmsa(store, pkl)
        build_s = time.perf_counter() - t0
        base = _baseline_rss()
        results = {p: [_run_phase(p, store, pkl, args.batch_size) for _ in range(args.repeats)] for p in PHASES}
        sizes = (_du(store), _du(pkl))
    median = {p: {k: float(np.median([r[k] for r in rs])) for k in ("seconds", "traced_peak_mb", "max_rss_mb")}
              for p, rs in results.items()}
    print(f"MOSEI-shaped synthetic data, {args.n_train} train utterances, batch {args.batch_size}, "
          f"median of {args.repeats}; store {sizes[0]:.0f} MB on disk, pickle {sizes[1]:.0f} MB; built in {build_s:.0f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"interpreter + imports alone: {base:.0f} MB peak RSS\n")
    print("| phase | seconds | traced peak (MB) | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for p in PHASES:
        r = median[p]
        print(f"| {p} | {r['seconds']:.3f} | {r['traced_peak_mb']:.1f} | {r['max_rss_mb']:.0f} |")
    print(f"\nopen: store {median['pickle-open']['seconds'] / median['store-open']['seconds']:.0f}x faster than pickle.load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
