"""summary.md / summary.csv: seeds aggregated as the report does, a NaN seed kept and counted."""
from __future__ import annotations

import math

import pytest

from ebmc.store import atomic
from ebmc.train.report.summary import write_summary
from ebmc.train.report.tables import cell


def _run(out, seed: int, corr: float, mae: float) -> None:
    """A finished run folder with only the files the summary reads (config.json, metrics.json)."""
    folder = out / "mosi" / "full" / f"seed-{seed}"
    atomic.write_json(folder / "config.json", {
        "config": {"ablation": "full", "train": {"seed": seed}}, "fingerprint": f"run-{seed}",
        "store": {"path": "store", "dataset": "mosi", "task": "regression", "fingerprints": {}}})
    metrics = {"corr": corr, "mae": mae}
    atomic.write_json(folder / "metrics.json", {"valid": metrics, "test": metrics})


def test_nan_seed_is_kept_and_counted(tmp_path):
    for seed, corr in enumerate([0.5, math.nan, 0.7]):
        _run(tmp_path, seed, corr, mae=1.0 + seed / 10)
    stats, markdown = write_summary(tmp_path)
    corr = stats[(stats.split == "test") & (stats.metric == "corr")].iloc[0]
    assert corr["n_seeds"] == 3 and math.isnan(corr["mean"])  # never 0.6 over the two finite seeds
    mae = stats[(stats.split == "test") & (stats.metric == "mae")].iloc[0]
    assert mae["n_seeds"] == 3 and mae["mean"] == pytest.approx(1.1)
    # the same cell text as the report's tables for the same seed values
    assert f"| {cell('corr', [0.5, math.nan, 0.7])} | {cell('mae', [1.0, 1.1, 1.2])} | 3 |" in markdown
    assert "0.600" not in markdown
