"""Benchmark (not a test): EBMC training speed per stage, host syncs and kernel launches per step, a measured schedule, grid throughput.

On MOSI- and MOSEI-shaped synthetic stores (``ebmc-import synthetic``), on CPU and on CUDA when
present, prints markdown tables of:

* per stage: ms per training step, device syncs per step (operators whose result the host must
  wait for, counted with ebmc.train.syncs on any device: in the layout this device uses, and in
  the accelerator layout), CUDA kernel launches per step and GPU busy share (CUDA only, n/a on
  CPU), seconds per epoch with validation, peak memory;
* the measured (not projected) wall time of the paper schedule, or of an explicitly scaled one
  (``--schedule-scale 0.1``: 15+15 epochs for MOSI), on the full-size store, validation every epoch;
* grid throughput: runs per hour of a small grid with ``--jobs`` 1, 2, ... (``--grid-jobs``).

CPU timings move with the machine's load (other processes share the cores): the header prints the
load average before and after, so numbers measured at different loads are not compared blindly.

    python bench/train_speed.py [--like mosi] [--schedule-scale 0.1] [--grid-jobs 1 2] [--threads 2] [--profile]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ebmc.extract.importers.synthetic import SHAPES, make_synthetic
from ebmc.train import loop
from ebmc.train.config import PAPER_SCHEDULE, RunConfig, TrainConfig, dataset_family, resolve
from ebmc.train.data import Data, load_data
from ebmc.train.grid import run_grid
from ebmc.train.model import encoder
from ebmc.train.runs import HISTORY, execute, load_run
from ebmc.train.syncs import SyncCounter


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _steps(model, data: Data, cfg: RunConfig, stage: int, teacher, n: int):
    """``n`` training steps of ``stage`` (the first ``n`` shuffled batches, wrapping around)."""
    optimizer = loop._optimizer(model, cfg, stage)
    batches = []
    while len(batches) < n:
        batches += list(data.batches("train", cfg.train.batch_size, shuffle=True))
    model.train()
    for batch in batches[:n]:
        loop.train_step(model, batch, cfg, stage, optimizer, teacher)


def _count_syncs(model, data, cfg, stage, teacher, grid_layout: bool) -> int:
    packs = encoder.packs
    if grid_layout:
        encoder.packs = lambda device: False
    try:
        with SyncCounter() as counter:
            _steps(model, data, cfg, stage, teacher, 2)
    finally:
        encoder.packs = packs
    return len(counter.device_syncs()) // 2


def _kernels(model, data, cfg, stage, teacher, steps: int) -> tuple[float, float]:
    """CUDA kernel launches per step and the GPU busy share (kernel time / wall) over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        _steps(model, data, cfg, stage, teacher, steps)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.device_time for e in kernels) / 1e6  # microseconds -> seconds
    return len(kernels) / steps, busy / wall


def per_stage(store: Path, device: str, steps: int) -> list[dict]:
    """One row per stage: ms per step, syncs, kernel launches, GPU busy share, seconds per epoch."""
    data = load_data(store, RunConfig().data, device)
    cfg = resolve(RunConfig(train=TrainConfig(device=device)), data.store.dataset)
    model = loop.build_model(cfg, data)
    teacher = model.make_teacher()
    rows = []
    for stage in (1, 2):
        t = teacher if stage == 2 else None
        _steps(model, data, cfg, stage, t, 2)  # warm-up
        _sync(device)
        start = time.perf_counter()
        _steps(model, data, cfg, stage, t, steps)
        _sync(device)
        ms = (time.perf_counter() - start) / steps * 1000
        cuda = device.startswith("cuda")
        kernels, busy = _kernels(model, data, cfg, stage, t, 5) if cuda else (None, None)
        rows.append({"dataset": dataset_family(data.store.dataset), "device": device, "stage": stage,
                     "batch": cfg.train.batch_size, "ms_step": ms,
                     "syncs": _count_syncs(model, data, cfg, stage, t, grid_layout=False),
                     "syncs_grid": _count_syncs(model, data, cfg, stage, t, grid_layout=True),
                     "kernels": kernels, "busy": busy,
                     "steps_epoch": -(-data.n("train") // cfg.train.batch_size)})
    return rows


def schedule(store: Path, device: str, scale: float, out: Path) -> dict:
    """Measured wall time of one run (its folder, checkpoints and test evaluation included) of the
    paper schedule times ``scale`` (epochs rounded, at least 1 per stage)."""
    data = load_data(store, RunConfig().data, device)
    sched = PAPER_SCHEDULE[dataset_family(data.store.dataset)]
    e1, e2 = (max(1, round(sched[k] * scale)) for k in ("stage1_epochs", "stage2_epochs"))
    cfg = RunConfig(train=TrainConfig(stage1_epochs=e1, stage2_epochs=e2, device=device,
                                      batch_size=sched["batch_size"]))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    folder, _, _ = execute(data, cfg, out, progress=False)
    wall = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    history = pd.read_csv(folder / HISTORY)
    epoch = {s: history.seconds[history.stage == s].median() for s in (1, 2)}
    model, _, _ = load_run(folder, device, store=data.store)
    params = sum(p.numel() for p in model.parameters())
    return {"dataset": dataset_family(data.store.dataset), "device": device, "n_train": data.n("train"),
            "epochs": f"{e1}+{e2}", "paper": f"{sched['stage1_epochs']}+{sched['stage2_epochs']}",
            "wall_min": wall / 60, "s1": epoch[1], "s2": epoch[2], "peak_mib": peak, "params": params}


def grid_throughput(store: Path, device: str, jobs: int, runs: int, epochs: int, out: Path) -> dict:
    """Runs per hour of ``runs`` seeds x ``epochs``+``epochs`` epochs with ``jobs`` at once."""
    cfg = RunConfig(train=TrainConfig(stage1_epochs=epochs, stage2_epochs=epochs, device=device))
    start = time.perf_counter()
    run_grid(store, cfg, out, seeds=list(range(runs)), ablations=["full"], progress=False, jobs=jobs)
    wall = time.perf_counter() - start
    return {"device": device, "jobs": jobs, "runs": runs, "epochs": f"{epochs}+{epochs}", "wall_s": wall,
            "runs_per_hour": runs / wall * 3600}


def profile_step(store: Path, device: str) -> str:
    """Top operators (by self time) of one stage-I and one stage-II training step on a full batch."""
    from torch.profiler import ProfilerActivity, profile
    data = load_data(store, RunConfig().data, device)
    cfg = resolve(RunConfig(train=TrainConfig(device=device)), data.store.dataset)
    model = loop.build_model(cfg, data)
    teacher = model.make_teacher()
    _steps(model, data, cfg, 2, teacher, 1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        for stage in (1, 2):
            _steps(model, data, cfg, stage, teacher if stage == 2 else None, 1)
    return prof.key_averages().table(sort_by="self_cuda_time_total" if device.startswith("cuda")
                                     else "self_cpu_time_total", row_limit=15)


def _na(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", nargs="+", default=["mosi"], choices=sorted(SHAPES))
    parser.add_argument("--n-train-mosei", type=int, default=None, help="train samples of the MOSEI store "
                        "(default: real size, 16326)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per stage")
    parser.add_argument("--schedule-scale", type=float, default=0.1,
                        help="train the paper schedule times this (1: the full schedule; 0: skip)")
    parser.add_argument("--grid-jobs", type=int, nargs="*", default=[1, 2], help="--jobs values to time a grid with")
    parser.add_argument("--grid-runs", type=int, default=2, help="runs (seeds) of the timed grid")
    parser.add_argument("--grid-epochs", type=int, default=2, help="epochs per stage of each grid run")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of one training step")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    steps, scheds, grids = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for like in args.like:
            store = make_synthetic(Path(tmp) / like, like=like, seed=0,
                                   n_train=args.n_train_mosei if like == "mosei" else None)
            for device in devices:
                steps += per_stage(store, device, args.steps)
                print(f"measured steps: {like} on {device}", file=sys.stderr, flush=True)
                if args.schedule_scale > 0:
                    scheds.append(schedule(store, device, args.schedule_scale, Path(tmp) / f"schedule-{device}"))
                    print(f"measured schedule: {like} on {device}", file=sys.stderr, flush=True)
                if like == args.like[0]:
                    for jobs in args.grid_jobs:
                        grids.append(grid_throughput(store, device, jobs, args.grid_runs, args.grid_epochs,
                                                     Path(tmp) / f"grid-{device}-{jobs}"))
                        print(f"measured grid: --jobs {jobs} on {device}", file=sys.stderr, flush=True)
                if args.profile:
                    print(f"\n#### profile: {like}, {device}, stage I + stage II step\n```\n"
                          f"{profile_step(store, device)}```\n")
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
          + f"; load average (1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load_before)} before, "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} after")
    print("\n| dataset | device | stage | batch | ms/step | steps/epoch | device syncs/step (this device's layout) | "
          "device syncs/step (accelerator layout) | kernel launches/step | GPU busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in steps:
        print(f"| {r['dataset']} | {r['device']} | {'I' * r['stage']} | {r['batch']} | {r['ms_step']:.0f} | "
              f"{r['steps_epoch']} | {r['syncs']} | {r['syncs_grid']} | {_na(r['kernels'], '.0f')} | "
              f"{_na(r['busy'], '.0%')} |")
    if scheds:
        print("\n| dataset | device | train n | params | epochs run (paper) | s/epoch stage I | s/epoch stage II | "
              "peak MiB | measured wall |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in scheds:
            print(f"| {r['dataset']} | {r['device']} | {r['n_train']} | {r['params'] / 1e6:.2f}M | {r['epochs']} "
                  f"({r['paper']}) | {r['s1']:.2f} | {r['s2']:.2f} | {r['peak_mib']:.0f} | {r['wall_min']:.2f} min |")
    if grids:
        print("\n| device | --jobs | runs | epochs per run | wall | runs/hour |")
        print("|---|---|---|---|---|---|")
        for r in grids:
            print(f"| {r['device']} | {r['jobs']} | {r['runs']} | {r['epochs']} | {r['wall_s']:.0f} s | "
                  f"{r['runs_per_hour']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
