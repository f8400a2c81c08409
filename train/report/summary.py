"""Across runs: summary.csv and summary.md (mean and sample std over seeds, as the report), a pure function of run files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ebmc.store import atomic
from ebmc.train.ablations import ABLATIONS, EMC_ABLATIONS, LABELS, MODULE_ABLATIONS
from ebmc.train.report.tables import format_stat, markdown, mean_std
from ebmc.train.runs import METRICS, iter_runs

# Paper layouts: Table 1 (main results), Table 4 (module ablations), Table 7 (EMC energy terms).
TABLE1 = [("Acc-2", ("acc2_has0", "acc2_non0")), ("F1", ("f1_has0", "f1_non0")), ("Acc-7", ("acc7",)),
          ("Corr", ("corr",)), ("MAE", ("mae",))]
TABLE4 = [("Acc-2", ("acc2_has0", "acc2_non0")), ("F1", ("f1_has0", "f1_non0"))]
TABLE7 = [("F1", ("f1_has0", "f1_non0")), ("Acc-7", ("acc7",)), ("MAE", ("mae",))]
LOWER_IS_BETTER = {"mae"}


def metric_rows(out: str | Path) -> pd.DataFrame:
    """One row per metric of each finished run under ``out``: dataset, task, ablation, seed, split, metric, value."""
    rows = []
    for run in iter_runs(out):
        metrics = json.loads((run.folder / METRICS).read_text())
        for split in ("valid", "test"):
            for name, value in metrics[split].items():
                rows.append({"dataset": run.dataset, "task": run.task, "ablation": run.ablation, "seed": run.seed,
                             "split": split, "metric": name, "value": float(value)})
    return pd.DataFrame(rows, columns=["dataset", "task", "ablation", "seed", "split", "metric", "value"])


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and seed count per dataset, ablation, split, metric, as the report computes them
    (``tables.mean_std``): a NaN seed (Corr of a constant prediction) makes the mean NaN and still counts."""
    keys = ["dataset", "task", "ablation", "split", "metric"]
    rows = [dict(zip(keys, key), **dict(zip(("mean", "std", "n_seeds"), mean_std(list(values)))))
            for key, values in runs.groupby(keys, sort=False)["value"]]
    out = pd.DataFrame(rows, columns=[*keys, "mean", "std", "n_seeds"])
    order = {name: i for i, name in enumerate(ABLATIONS)}
    return out.sort_values(["dataset", "ablation", "split", "metric"],
                           key=lambda c: c.map(order) if c.name == "ablation" else c).reset_index(drop=True)


def _cell(stats: pd.DataFrame, dataset: str, ablation: str, metrics: tuple[str, ...]) -> str:
    parts = []
    for metric in metrics:
        row = stats[(stats.dataset == dataset) & (stats.ablation == ablation) & (stats.split == "test")
                    & (stats.metric == metric)]
        if row.empty:
            return format_stat(metric, math.nan, math.nan, 0)
        parts.append(format_stat(metric, float(row["mean"].iloc[0]), float(row["std"].iloc[0]),
                                 int(row["n_seeds"].iloc[0])))
    return "/".join(parts)


def _seeds(stats: pd.DataFrame, dataset: str, ablation: str) -> str:
    n = stats[(stats.dataset == dataset) & (stats.ablation == ablation)]["n_seeds"]
    return str(int(n.max())) if len(n) else "0"


def _table(stats: pd.DataFrame, title: str, datasets: list[str], rows: tuple[str, ...] | list[str],
           columns: list[tuple[str, tuple[str, ...]]], min_rows: int = 1) -> list[str]:
    """A markdown table: one row per ablation present, one column per (dataset, metric group);
    left out when fewer than ``min_rows`` rows have results (an ablation table of EBMC alone)."""
    rows = [r for r in rows if (stats.ablation == r).any()]
    if not datasets or len(rows) < min_rows:
        return []
    header = ["Model"] + [f"{d} {name}{'(↓)' if set(keys) & LOWER_IS_BETTER else '(↑)'}"
                          for d in datasets for name, keys in columns] + ["seeds"]
    body = [[LABELS.get(ab, ab), *[_cell(stats, d, ab, keys) for d in datasets for _, keys in columns],
             "/".join(_seeds(stats, d, ab) for d in datasets)] for ab in rows]
    return [f"### {title}", "", markdown(header, body), ""]


def render_markdown(stats: pd.DataFrame) -> str:
    """summary.md: test-split tables in the layouts of the paper's Tables 1, 4 and 7 (regression),
    and one table per classification / multilabel dataset with all its test metrics."""
    lines = ["# EBMC results", "",
             "Test split at the checkpoint selected on the validation split. Cells: mean ± sample std "
             "(ddof 1) over seeds; the last column gives the number of seeds. Acc/F1 in %, Acc-2 and F1 "
             "as has-0/non-0.", ""]
    regression = sorted(stats.loc[stats.task == "regression", "dataset"].unique())
    lines += _table(stats, "Table 1 layout: main results", regression, ["full"], TABLE1)
    lines += _table(stats, "Table 4 layout: module ablations", regression, MODULE_ABLATIONS, TABLE4, min_rows=2)
    lines += _table(stats, "Table 7 layout: EMC energy terms", regression, EMC_ABLATIONS, TABLE7, min_rows=2)
    # loss-weight sweeps and other overrides beyond the paper's ablations, next to the full model
    others = sorted(set(stats.ablation) - set(ABLATIONS))
    if others:
        lines += _table(stats, "Other overrides (e.g. sensitivity sweeps)", regression, ["full", *others], TABLE1)
    for dataset in sorted(stats.loc[stats.task != "regression", "dataset"].unique()):
        names = stats[(stats.dataset == dataset) & (stats.split == "test")]["metric"].unique()
        columns = [(n, (n,)) for n in names]
        lines += _table(stats, f"{dataset}: all test metrics", [dataset], [*ABLATIONS, *others], columns)
    return "\n".join(lines).rstrip() + "\n"


def write_summary(out: str | Path) -> tuple[pd.DataFrame, str]:
    """Write ``out``/summary.csv and summary.md from the run folders under ``out``; return both."""
    runs = metric_rows(out)
    if runs.empty:
        raise FileNotFoundError(f"{out}: no finished runs (*/*/seed-*/metrics.json) to summarise")
    stats = aggregate(runs)
    text = render_markdown(stats)
    atomic.write_bytes(Path(out) / "summary.csv", stats.to_csv(index=False).encode())
    atomic.write_bytes(Path(out) / "summary.md", text.encode())
    return stats, text

