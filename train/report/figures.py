"""Figures of the paper (Fig. 3, 4, 6, 7/8, frame-drop and training curves) as PNGs, from grouped result files."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ebmc.store import StoreError  # noqa: E402
from ..ablations import SWEEP_WEIGHTS  # noqa: E402
from .collect import RunGroup  # noqa: E402
from .tables import F1_KEY, display_scale, header, mean_std, row_label  # noqa: E402
from .tsne import tsne  # noqa: E402

#: Metrics of the rate curves (Fig. 7/8), per task.
CURVE_KEYS = {"regression": ("f1_non0", "acc7", "corr", "mae"),
              "classification": ("f1_weighted", "acc", "ua"), "multilabel": ("f1_mean", "acc_mean")}
#: Sensitivity sweeps (Fig. 6) are runs whose ablation is named ``<weight>=<value>``, e.g. ``beta=0.05``.
SWEEP = re.compile(rf"^({'|'.join(SWEEP_WEIGHTS)})=")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def _curve_figure(groups: list[RunGroup], protocol: str, xlabel: str, title: str, path: Path,
                  comparison: bool) -> Path | None:
    """One panel per metric: mean over seeds against the rate, a band of ± one sample std."""
    have = [(g, g.results(protocol)) for g in groups if g.results(protocol)]
    if not have:
        return None
    keys = [k for k in CURVE_KEYS[have[0][1][0]["task"]] if k in have[0][1][0]["conditions"][0]["metrics"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        scale, _ = display_scale(key)
        for g, results in have:
            rates = [c["rate"] for c in results[0]["conditions"]]
            stats = [mean_std([c["metrics"][key] for r in results for c in r["conditions"] if c["rate"] == rate])
                     for rate in rates]
            mean = np.array([s[0] for s in stats]) * scale
            std = np.nan_to_num(np.array([s[1] for s in stats])) * scale
            ax.plot(rates, mean, marker="o", ms=3, label=f"{row_label(g, comparison)} (n={len(results)})")
            ax.fill_between(rates, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(header(key))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def missing_rate_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Fig. 7/8: metrics against the random modality-missing rate."""
    return _curve_figure(groups, "missing_rate", "missing rate r",
                         "Random modality missingness (Fig. 7/8): each (sample, modality) absent with probability r", path, comparison)


def frame_drop_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Intra-modality missingness: metrics against the frame/token drop rate (Table 5's rates)."""
    return _curve_figure(groups, "frame_drop", "drop rate p",
                         "Intra-modality missingness (Table 5): each valid frame/token dropped with probability p", path, comparison)


def embedding_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Fig. 3: t-SNE of the fused representations of each group's first seed, coloured by label."""
    have = [(g, g.results("embedding")[0]) for g in groups if g.results("embedding")]
    if not have:
        return None
    fig, axes = plt.subplots(1, len(have), figsize=(3.8 * len(have), 3.5), squeeze=False)
    small = [f"{g.source}/{g.dataset}/{g.ablation}: {len(res['fused'])} fused vectors" for g, res in have if len(res["fused"]) < 3]
    if small:
        raise StoreError("Fig. 3 (t-SNE) needs at least 3 evaluated utterances per model",
                         small + ["evaluate the runs on a larger split (--protocol.split) and rerun --protocols embedding"])
    for ax, (g, res) in zip(axes[0], have):
        xy = tsne(np.asarray(res["fused"]), seed=0)
        label = np.asarray(res["label"], dtype=np.float64)
        if res["task"] == "regression":
            points = ax.scatter(xy[:, 0], xy[:, 1], c=label, cmap="coolwarm", s=8)
            fig.colorbar(points, ax=ax, label="sentiment label (red = positive)")
        else:
            label = label.argmax(-1) if label.ndim > 1 else label
            for c in np.unique(label):
                ax.scatter(*xy[label == c].T, s=8, label=f"class {int(c)}")
            ax.legend(fontsize=7, title="label")
        ax.set_title(f"{row_label(g, comparison)} (seed {g.runs[0].seed}, {len(label)} samples)", fontsize=9)
        ax.set_xlabel("t-SNE 1 (a.u.)")
        ax.set_ylabel("t-SNE 2 (a.u.)")
    fig.suptitle("Fused representations, exact t-SNE (Fig. 3)", fontsize=10)
    return _save(fig, path)


def contribution_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Fig. 4: share of the fusion per modality, and the metric lost when each modality is removed."""
    have = [(g, g.results("contribution")) for g in groups if g.results("contribution")]
    if not have:
        return None
    modalities = have[0][1][0]["modalities"]
    key = F1_KEY[have[0][1][0]["task"]]
    scale, _ = display_scale(key)
    fig, (ax_share, ax_drop) = plt.subplots(1, 2, figsize=(9, 3.4))
    width = 0.8 / len(have)
    x = np.arange(len(modalities))
    for i, (g, results) in enumerate(have):
        share = [mean_std([r["share"][m] for r in results]) for m in modalities]
        drop = [mean_std([r["drop"][m][key] for r in results if m in r["drop"]]) for m in modalities]
        name = f"{row_label(g, comparison)} (n={len(results)})"
        ax_share.bar(x + i * width, [s[0] * 100 for s in share], width, label=name,
                     yerr=[np.nan_to_num(s[1]) * 100 for s in share])
        ax_drop.bar(x + i * width, [d[0] * scale for d in drop], width, label=name,
                    yerr=[np.nan_to_num(d[1]) * scale for d in drop])
    for ax in (ax_share, ax_drop):
        ax.set_xticks(x + width * (len(have) - 1) / 2, modalities)
        ax.set_xlabel("modality")
        ax.grid(axis="y", alpha=0.3)
    ax_share.set_ylabel("mean share of the fusion weight (%)")
    ax_drop.set_ylabel(f"drop of {header(key).rstrip(' ↑')} when removed")
    ax_share.legend(fontsize=7)
    fig.suptitle("Modality contribution (Fig. 4)", fontsize=10)
    return _save(fig, path)


def _loss_weight(config: dict, name: str):
    return config.get("config", {}).get("loss", {}).get(name)


def sensitivity_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Fig. 6: test metrics against each loss weight; points are the ``<weight>=<value>`` runs and
    the full model at its configured value (values read from each run's config.json)."""
    sweeps = [g for g in groups if SWEEP.match(g.ablation) and g.results("full")]
    if not sweeps:
        return None
    base = [g for g in groups if g.ablation == "full" and g.results("full")]
    task = sweeps[0].results("full")[0]["task"]
    keys = [k for k in CURVE_KEYS[task] if k in sweeps[0].results("full")[0]["metrics"]]
    params = [p for p in SWEEP_WEIGHTS if any(g.ablation.startswith(p + "=") for g in sweeps)]
    fig, axes = plt.subplots(len(keys), len(params), figsize=(3.4 * len(params), 2.6 * len(keys)), squeeze=False)
    sources = sorted({g.source for g in sweeps})
    for j, p in enumerate(params):
        for source in sources:
            points = [g for g in sweeps + base if g.source == source and (g.ablation.startswith(p + "=") or g.ablation == "full")]
            xs = [_loss_weight(g.runs[0].config, p) for g in points]
            order = sorted(((x, g) for x, g in zip(xs, points) if x is not None), key=lambda xg: xg[0])
            for i, key in enumerate(keys):
                scale, _ = display_scale(key)
                stats = [mean_std([r["metrics"][key] for r in g.results("full")]) for _, g in order]
                axes[i][j].errorbar([x for x, _ in order], [s[0] * scale for s in stats],
                                    yerr=[np.nan_to_num(s[1]) * scale for s in stats], marker="o", ms=3, capsize=2,
                                    label=source if comparison else None)
                axes[i][j].set_xscale("log")
                axes[i][j].set_xlabel(f"loss weight {p} (log scale)")
                axes[i][j].set_ylabel(header(key))
                axes[i][j].grid(alpha=0.3)
    if comparison:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("Sensitivity (Fig. 6)", fontsize=10)
    return _save(fig, path)


def training_figure(groups: list[RunGroup], path: Path, comparison: bool) -> Path | None:
    """Training curves from history.csv: training loss and the validation selection metric per
    epoch (stage II continues the epoch axis), mean over seeds."""
    have = [g for g in groups if all(r.history for r in g.runs)]
    if not have:
        return None
    first = have[0].runs[0].history[0]
    valid_key = next((k for k in ("valid_mae", "valid_f1_weighted", "valid_f1_mean") if k in first), None)
    columns = [("train_loss", "training loss (objective of the stage)")]
    if valid_key:
        columns.append((valid_key, f"validation {header(valid_key[len('valid_'):])}"))
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns):
        for g in have:
            length = min(len(r.history) for r in g.runs)
            values = np.array([[row[col] for row in r.history[:length]] for r in g.runs], dtype=np.float64)
            ax.plot(np.arange(1, length + 1), values.mean(0), label=f"{row_label(g, comparison)} (n={len(g.runs)})")
            stage2 = [i for i, row in enumerate(g.runs[0].history[:length]) if row["stage"] == 2]
            if stage2:
                ax.axvline(stage2[0] + 0.5, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("epoch (stage I, then stage II after the dotted line)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Training curves", fontsize=10)
    return _save(fig, path)
