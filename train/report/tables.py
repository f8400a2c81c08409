"""Markdown tables of the paper (Tables 1, 3, 4, 5, 7) from result files: mean ± sample std over seeds, n shown."""
from __future__ import annotations

import math
from typing import Sequence

from ..ablations import EMC_ABLATIONS, LABELS, MODULE_ABLATIONS
from .collect import RunGroup

# Display of every metric ebmc.train.metrics writes: (header, scale, decimals). Accuracies and F1
# are shown in percent as in the paper; per-class / per-label F1 and accuracies get headers built
# from their names (see ``header``).
CATALOGUE: dict[str, tuple[str, float, int]] = {
    "acc2_has0": ("Acc-2 has-0 (%) ↑", 100, 2), "acc2_non0": ("Acc-2 non-0 (%) ↑", 100, 2),
    "f1_has0": ("F1 has-0 (%) ↑", 100, 2), "f1_non0": ("F1 non-0 (%) ↑", 100, 2),
    "acc2": ("Acc-2 (%) ↑", 100, 2), "acc3": ("Acc-3 (%) ↑", 100, 2), "acc5": ("Acc-5 (%) ↑", 100, 2),
    "acc7": ("Acc-7 (%) ↑", 100, 2), "f1": ("F1 (%) ↑", 100, 2),
    "acc": ("Acc (%) ↑", 100, 2), "f1_weighted": ("F1 weighted (%) ↑", 100, 2), "ua": ("UA (%) ↑", 100, 2),
    "acc_mean": ("Acc mean (%) ↑", 100, 2), "f1_mean": ("F1 mean (%) ↑", 100, 2),
    "corr": ("Corr ↑", 1, 3), "mae": ("MAE ↓", 1, 3),
}

#: The single F1 of Table 3 and of the F1 curves, per task (regression: MMSA's non-0 F1).
F1_KEY = {"regression": "f1_non0", "classification": "f1_weighted", "multilabel": "f1_mean"}
#: Columns of the ablation tables, per task, when present in the results.
ABLATION_KEYS = ("acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "acc", "f1_weighted", "acc_mean", "f1_mean")
EMC_KEYS = ("f1_has0", "f1_non0", "acc7", "mae", "f1_weighted", "acc", "f1_mean")
SHORT = {"text": "T", "audio": "A", "vision": "V"}


def header(key: str) -> str:
    if key in CATALOGUE:
        return CATALOGUE[key][0]
    for prefix, word in (("f1_", "F1"), ("acc_", "Acc")):
        if key.startswith(prefix):
            return f"{word} {key[len(prefix):]} (%) ↑"
    return key


def display_scale(key: str) -> tuple[float, int]:
    if key in CATALOGUE:
        return CATALOGUE[key][1:]
    return (100, 2) if key.startswith(("f1_", "acc_")) else (1, 3)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std (ddof 1; NaN for one value), n). NaN values (e.g. Corr of a constant
    prediction) are kept: the mean is then NaN, never a mean of the other seeds."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n


def format_stat(key: str, mean: float, std: float, n: int) -> str:
    """``mean ± std`` over ``n`` seeds in the metric's display unit: the mean alone for one seed,
    ``–`` for none; a NaN shows as ``nan`` (never dropped)."""
    if n == 0:
        return "–"
    scale, dec = display_scale(key)
    text = f"{mean * scale:.{dec}f}"
    return text if n == 1 else f"{text} ± {std * scale:.{dec}f}"


def cell(key: str, values: Sequence[float]) -> str:
    """``mean ± std`` of one metric over seeds in its display unit; ``–`` when no seed has it."""
    return format_stat(key, *mean_std(values))


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def row_label(group: RunGroup, comparison: bool) -> str:
    """The ablation's paper name, with the runs folder in comparison mode."""
    name = LABELS.get(group.ablation, group.ablation)
    return f"{name} [{group.source}]" if comparison else name


def metric_keys(results: Sequence[dict]) -> list[str]:
    """Scalar metric keys of ``results`` (dicts of metrics): catalogue order first, then the rest."""
    seen: list[str] = []
    for r in results:
        seen += [k for k, v in r.items() if k not in seen and isinstance(v, (int, float))]
    return [k for k in CATALOGUE if k in seen] + [k for k in seen if k not in CATALOGUE]


def _metric_table(groups: list[RunGroup], comparison: bool, pick, keys: Sequence[str] | None = None) -> str | None:
    """One row per group that has results: ``pick(run_result_dicts) -> list of metric dicts``."""
    rows_src = [(g, pick(g)) for g in groups]
    rows_src = [(g, ms) for g, ms in rows_src if ms]
    if not rows_src:
        return None
    all_keys = metric_keys([m for _, ms in rows_src for m in ms])
    keys = [k for k in keys if k in all_keys] if keys is not None else all_keys
    rows = [[row_label(g, comparison), str(len(ms))] + [cell(k, [m[k] for m in ms if k in m]) for k in keys]
            for g, ms in rows_src]
    return markdown(["Model", "n"] + [header(k) for k in keys], rows)


def table1(groups: list[RunGroup], comparison: bool) -> str | None:
    """Table 1/2: every metric on the full test set."""
    return _metric_table(groups, comparison, lambda g: [r["metrics"] for r in g.results("full")])


def table3(groups: list[RunGroup], comparison: bool) -> str | None:
    """Table 3: F1 under each missing-modality condition and the average over conditions."""
    rows, names = [], None
    for g in groups:
        results = g.results("missing")
        if not results:
            continue
        key = F1_KEY[results[0]["task"]]
        names = names or [c["name"] for c in results[0]["conditions"]]
        per = {n: [c["metrics"][key] for r in results for c in r["conditions"] if c["name"] == n] for n in names}
        rows.append([row_label(g, comparison), str(len(results))] + [cell(key, per[n]) for n in names]
                    + [cell(key, [r["mean"][key] for r in results])])
    if not rows:
        return None
    heads = ["{" + ",".join(SHORT[m] for m in n.split("+")) + "}" for n in names]
    return markdown(["Model", "n"] + heads + ["Avg."], rows)


def _ablation_table(groups: list[RunGroup], comparison: bool, names: Sequence[str], keys: Sequence[str]) -> str | None:
    chosen = [g for n in names for g in groups if g.ablation == n]
    if not any(g.ablation != "full" for g in chosen):
        return None
    return _metric_table(chosen, comparison, lambda g: [r["metrics"] for r in g.results("full")], keys)


def table4(groups: list[RunGroup], comparison: bool) -> str | None:
    """Table 4: module ablations (w/o MSD, CCE, EMC, IMTD) against the full model."""
    return _ablation_table(groups, comparison, MODULE_ABLATIONS, ABLATION_KEYS)


def table5(groups: list[RunGroup], comparison: bool) -> str | None:
    """Table 5: each metric averaged over the frame-drop rates (per seed, then over seeds)."""
    return _metric_table(groups, comparison, lambda g: [r["mean"] for r in g.results("frame_drop")])


def table7(groups: list[RunGroup], comparison: bool) -> str | None:
    """Table 7: EMC energy terms (w/o the norm, the task-loss or the uncertainty term)."""
    return _ablation_table(groups, comparison, EMC_ABLATIONS, EMC_KEYS)
