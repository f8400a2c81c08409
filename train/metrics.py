"""Evaluation metrics (MMSA definitions; docs/decisions.md, Metrics) and the model-selection key, in numpy.

``compute_metrics(task, pred, y)`` takes the model's raw output: regression values (N,),
classification logits (N, K) or multilabel logits (N, K, 2), and the labels (N,) | (N, K).
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from .batch import TaskSpec

RegressionProtocol = Literal["mmsa", "sims"]
# SIMS bins (MMSA): right-closed intervals of the clipped [-1, 1] scale.
_SIMS_BINS = {2: [-1.01, 0.0, 1.01], 3: [-1.01, -0.1, 0.1, 1.01], 5: [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]}


class SelectionKey(NamedTuple):
    """The validation metric that picks the checkpoint, and whether lower or higher is better."""

    metric: str
    mode: Literal["min", "max"]


def selection_key(task: TaskSpec) -> SelectionKey:
    """Regression: valid MAE, lower is better; classification / multilabel: weighted F1, higher."""
    if task.kind == "regression":
        return SelectionKey("mae", "min")
    return SelectionKey("f1_weighted" if task.kind == "classification" else "f1_mean", "max")


def f1_per_class(truth: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """F1 of each label in ``labels`` (0 where it is never true nor predicted), as sklearn."""
    tp = np.array([np.sum((pred == c) & (truth == c)) for c in labels], dtype=np.float64)
    fp = np.array([np.sum((pred == c) & (truth != c)) for c in labels], dtype=np.float64)
    fn = np.array([np.sum((pred != c) & (truth == c)) for c in labels], dtype=np.float64)
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """sklearn ``f1_score(truth, pred, average="weighted")``: per-class F1 weighted by true support."""
    labels = np.union1d(truth, pred)
    support = np.array([np.sum(truth == c) for c in labels], dtype=np.float64)
    if support.sum() == 0:
        return 0.0
    return float(np.sum(f1_per_class(truth, pred, labels) * support) / support.sum())


def _accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(truth == pred)) if len(truth) else float("nan")


def _corr(pred: np.ndarray, truth: np.ndarray) -> float:
    # NaN when either side is constant: reported as is, never replaced.
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.corrcoef(pred, truth)[0, 1])


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MOSI / MOSEI (MMSA): Acc-2 / F1 has-0 (>= 0, all samples) and non-0 (> 0, truth != 0),
    Acc-5 / Acc-7 (clip to [-2, 2] / [-3, 3], round half to even), MAE and Corr unclipped."""
    pred, y = np.asarray(pred, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    nz = y != 0
    out = {
        "acc2_has0": _accuracy(y >= 0, pred >= 0),
        "f1_has0": weighted_f1(y >= 0, pred >= 0),
        "acc2_non0": _accuracy(y[nz] > 0, pred[nz] > 0),
        "f1_non0": weighted_f1(y[nz] > 0, pred[nz] > 0),
    }
    for k, bound in ((5, 2.0), (7, 3.0)):
        out[f"acc{k}"] = _accuracy(np.round(np.clip(y, -bound, bound)), np.round(np.clip(pred, -bound, bound)))
    out["mae"] = float(np.mean(np.abs(pred - y)))
    out["corr"] = _corr(pred, y)
    return out


def sims_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """CH-SIMS (MMSA): clip to [-1, 1], then Acc-2/3/5 on SIMS's bins, weighted F1 of the 2 bins,
    MAE and Corr on the clipped values."""
    pred = np.clip(np.asarray(pred, np.float64).ravel(), -1.0, 1.0)
    y = np.clip(np.asarray(y, np.float64).ravel(), -1.0, 1.0)
    binned = {k: (np.digitize(pred, edges[1:-1], right=True), np.digitize(y, edges[1:-1], right=True))
              for k, edges in _SIMS_BINS.items()}
    out = {f"acc{k}": _accuracy(t, p) for k, (p, t) in binned.items()}
    out["f1"] = weighted_f1(binned[2][1], binned[2][0])
    out["mae"] = float(np.mean(np.abs(pred - y)))
    out["corr"] = _corr(pred, y)
    return out


def classification_metrics(logits: np.ndarray, y: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """Accuracy, weighted F1, UA (mean recall over classes present in the truth) and F1 per class."""
    pred, y = np.asarray(logits).argmax(-1), np.asarray(y).astype(np.int64).ravel()
    names = class_names or tuple(str(c) for c in range(np.asarray(logits).shape[-1]))
    seen = np.unique(y)
    recall = [np.mean(pred[y == c] == c) for c in seen]
    out = {"acc": _accuracy(y, pred), "f1_weighted": weighted_f1(y, pred),
           "ua": float(np.mean(recall)) if len(seen) else float("nan")}
    for name, f1 in zip(names, f1_per_class(y, pred, np.arange(len(names)))):
        out[f"f1_{name}"] = float(f1)
    return out


def multilabel_metrics(logits: np.ndarray, y: np.ndarray, label_names: tuple[str, ...]) -> dict[str, float]:
    """IEMOCAP one-vs-rest protocol: per label binary accuracy and weighted F1, and their means."""
    pred, y = np.asarray(logits).argmax(-1), np.asarray(y).astype(np.int64)
    out: dict[str, float] = {}
    for k, name in enumerate(label_names):
        out[f"acc_{name}"] = _accuracy(y[:, k], pred[:, k])
        out[f"f1_{name}"] = weighted_f1(y[:, k], pred[:, k])
    out["acc_mean"] = float(np.mean([out[f"acc_{n}"] for n in label_names]))
    out["f1_mean"] = float(np.mean([out[f"f1_{n}"] for n in label_names]))
    return out


def compute_metrics(task: TaskSpec, pred: np.ndarray, y: np.ndarray,
                    protocol: RegressionProtocol = "mmsa") -> dict[str, float]:
    """All metrics of ``task`` for model outputs ``pred`` and labels ``y`` (see module docstring).

    ``protocol`` picks the regression definition: "mmsa" (MOSI / MOSEI, [-3, 3]) or "sims" ([-1, 1]).
    """
    pred, y = np.asarray(pred), np.asarray(y)
    if len(pred) != len(y) or len(y) == 0:
        raise ValueError(f"compute_metrics needs as many predictions as labels, at least one "
                         f"(got {len(pred)} predictions, {len(y)} labels)")
    if task.kind == "regression":
        if protocol not in ("mmsa", "sims"):
            raise ValueError(f"unknown regression protocol {protocol!r}: use mmsa or sims")
        return regression_metrics(pred, y) if protocol == "mmsa" else sims_metrics(pred, y)
    if task.kind == "classification":
        return classification_metrics(pred, y, task.class_names)
    if task.kind == "multilabel":
        return multilabel_metrics(pred, y, task.label_names)
    raise ValueError(f"unknown task kind {task.kind!r}")
