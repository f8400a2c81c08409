"""Benchmark (not a test): EBMC seconds per epoch per stage, peak memory and parameters on synthetic stores.

Trains a few epochs of each stage with the default model on MOSI- and MOSEI-shaped synthetic stores
(``ebmc-import synthetic``), on CPU and on CUDA when present, and prints a markdown table with the
projected time of the paper's full schedule (linear in the number of train samples when a smaller
store is measured). ``--profile`` adds the top operators of one stage-I and one stage-II step.
CPU timings move with the machine's load (other processes share the cores): the header prints the
load average before and after, so numbers measured at different loads are not compared blindly.

    python bench/train_speed.py [--like mosi mosei] [--n-train-mosei 2000] [--epochs 3] [--threads 2] [--profile]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ebmc.extract.importers.synthetic import SHAPES, make_synthetic
from ebmc.train.config import PAPER_SCHEDULE, RunConfig, TrainConfig, dataset_family
from ebmc.train.data import load_data
from ebmc.train.loop import build_model, train


def measure(store: Path, device: str, epochs: int) -> dict:
    """Median seconds of the epochs after the first (warm-up) of each stage, memory, parameters."""
    data = load_data(store, RunConfig().data, device)
    family = dataset_family(data.store.dataset)
    cfg = RunConfig(train=TrainConfig(stage1_epochs=epochs, stage2_epochs=epochs, device=device,
                                      batch_size=PAPER_SCHEDULE[family]["batch_size"]))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(cfg, data, progress=False)
    wall = time.perf_counter() - start
    per_stage = {}
    for stage in (1, 2):
        seconds = [r["seconds"] for r in result.state.history if r["stage"] == stage]
        per_stage[stage] = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    full_n = SHAPES[family].splits[0] if family in SHAPES else data.n("train")
    scale = full_n / data.n("train")
    sched = PAPER_SCHEDULE[family]
    projected = scale * (per_stage[1] * sched["stage1_epochs"] + per_stage[2] * sched["stage2_epochs"])
    return {"dataset": family, "device": device, "n_train": data.n("train"), "batch": cfg.train.batch_size,
            "s1": per_stage[1], "s2": per_stage[2], "peak_mib": peak, "wall": wall,
            "params": sum(p.numel() for p in result.model.parameters()), "projected_min": projected / 60,
            "schedule": f"{sched['stage1_epochs']}+{sched['stage2_epochs']}", "scaled": scale != 1}


def profile_step(store: Path, device: str) -> str:
    """Top operators (by self time) of one stage-I and one stage-II training step on a full batch."""
    from torch.profiler import ProfilerActivity, profile
    data = load_data(store, RunConfig().data, device)
    cfg = RunConfig(train=TrainConfig(device=device))
    model = build_model(cfg, data)
    teacher = model.make_teacher()
    batch = next(data.batches("train", PAPER_SCHEDULE[dataset_family(data.store.dataset)]["batch_size"]))
    model(batch, 2, teacher=teacher).loss.backward()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        for stage in (1, 2):
            model(batch, stage, teacher=teacher).loss.backward()
    return prof.key_averages().table(sort_by="self_cuda_time_total" if device.startswith("cuda")
                                     else "self_cpu_time_total", row_limit=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", nargs="+", default=["mosi", "mosei"], choices=sorted(SHAPES))
    parser.add_argument("--n-train-mosi", type=int, default=None, help="train samples of the MOSI store (default: real size)")
    parser.add_argument("--n-train-mosei", type=int, default=2000, help="train samples of the MOSEI store "
                        "(default 2000 of 16326; the projection scales linearly)")
    parser.add_argument("--n-train-iemocap", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage (the first is warm-up)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of one training step")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for like in args.like:
            store = make_synthetic(Path(tmp) / like, like=like, seed=0, n_train=getattr(args, f"n_train_{like}"))
            for device in devices:
                rows.append(measure(store, device, args.epochs))
                print(f"measured {like} on {device}", file=sys.stderr, flush=True)
                if args.profile:
                    print(f"\n#### profile: {like}, {device}, stage I + stage II step\n```\n{profile_step(store, device)}```\n")
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
          + f"; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("\n| dataset | device | train n | batch | params | s/epoch stage I | s/epoch stage II | peak MiB | "
          "paper schedule | projected full schedule |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        note = " (scaled to full size)" if r["scaled"] else ""
        print(f"| {r['dataset']} | {r['device']} | {r['n_train']} | {r['batch']} | {r['params'] / 1e6:.2f}M | "
              f"{r['s1']:.2f} | {r['s2']:.2f} | {r['peak_mib']:.0f} | {r['schedule']} | "
              f"{r['projected_min']:.1f} min{note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
