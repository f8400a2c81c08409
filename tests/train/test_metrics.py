"""Metrics against hand-computed values (MMSA definitions) and against sklearn's F1."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from ebmc.train.batch import TaskSpec
from ebmc.train.metrics import compute_metrics, selection_key, weighted_f1

REG = TaskSpec("regression")


def test_regression_hand_computed():
    y = np.array([-3.0, -1.5, 0.0, 0.5, 2.5, 1.0])
    pred = np.array([-2.5, 0.5, -0.2, 0.5, 3.4, -0.5])
    m = compute_metrics(REG, pred, y)
    assert m["acc2_has0"] == pytest.approx(3 / 6)
    assert m["f1_has0"] == pytest.approx((2 * 2 / 5 + 4 * 4 / 7) / 6)
    assert m["acc2_non0"] == pytest.approx(3 / 5)          # truth == 0 dropped, > 0 compared
    assert m["f1_non0"] == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    # round half to even: -2.5 -> -2, -1.5 -> -2, 0.5 -> 0, 2.5 -> 2 (half-away would give 4/6 for acc7)
    assert m["acc7"] == pytest.approx(2 / 6)
    assert m["acc5"] == pytest.approx(4 / 6)
    assert m["mae"] == pytest.approx(5.1 / 6)               # unclipped: 3.4 counts as 3.4
    pc, yc = pred - pred.mean(), y - y.mean()
    assert m["corr"] == pytest.approx(np.sum(pc * yc) / np.sqrt(np.sum(pc ** 2) * np.sum(yc ** 2)))


def test_has0_counts_zero_as_positive_and_non0_drops_it():
    y = np.array([0.0, 0.0, 1.0, -1.0])
    pred = np.array([0.0, -0.1, 1.0, -1.0])
    m = compute_metrics(REG, pred, y)
    assert m["acc2_has0"] == pytest.approx(3 / 4)           # pred 0.0 >= 0 matches truth 0 >= 0
    assert m["acc2_non0"] == pytest.approx(1.0)             # both zero-truth samples dropped


def test_sims_hand_computed():
    y = np.array([-1.0, -0.5, 0.0, 0.05, 0.3, 0.9, 1.2])
    pred = np.array([-0.8, -0.05, 0.0, -0.01, 0.75, 1.5, 0.1])
    m = compute_metrics(REG, pred, y, protocol="sims")
    assert m["acc2"] == pytest.approx(6 / 7)
    assert m["acc3"] == pytest.approx(5 / 7)                # 0.1 falls in (-0.1, 0.1]
    assert m["acc5"] == pytest.approx(4 / 7)
    assert m["f1"] == pytest.approx(6 / 7)
    assert m["mae"] == pytest.approx(2.16 / 7)              # on clipped values


def test_classification_hand_computed():
    task = TaskSpec("classification", 4, ("neu", "hap", "sad", "ang"))
    y = np.array([0, 0, 1, 2, 2, 2])
    logits = np.eye(4)[[0, 1, 1, 2, 0, 2]]
    m = compute_metrics(task, logits, y)
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx((2 * 0.5 + 2 / 3 + 3 * 0.8) / 6)
    assert m["ua"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert (m["f1_neu"], m["f1_hap"], m["f1_sad"], m["f1_ang"]) == pytest.approx((0.5, 2 / 3, 0.8, 0.0))
    assert m["ua"] == pytest.approx(recall_score(y, logits.argmax(1), average="macro"))


def test_multilabel_per_label_protocol():
    task = TaskSpec("multilabel", label_names=("happy", "sad"))
    y = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    binary = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    logits = np.stack([np.zeros_like(binary), 2.0 * binary - 1], -1)
    m = compute_metrics(task, logits, y)
    assert (m["acc_happy"], m["f1_happy"], m["acc_sad"], m["f1_sad"]) == pytest.approx((0.5, 0.5, 1.0, 1.0))
    assert (m["acc_mean"], m["f1_mean"]) == pytest.approx((0.75, 0.75))


def test_weighted_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        truth = rng.integers(0, 4, 30)
        pred = rng.integers(0, 5, 30)                         # label 4 only ever predicted
        assert weighted_f1(truth, pred) == pytest.approx(f1_score(truth, pred, average="weighted"))
        assert weighted_f1(truth >= 2, pred >= 2) == pytest.approx(
            f1_score(truth >= 2, pred >= 2, average="weighted"))


def test_selection_key_and_length_check():
    assert selection_key(REG) == ("mae", "min")
    assert selection_key(TaskSpec("classification", 3)) == ("f1_weighted", "max")
    assert selection_key(TaskSpec("multilabel", label_names=("a",))) == ("f1_mean", "max")
    assert set(selection_key(TaskSpec("multilabel", label_names=("a",)))[:1]) <= set(
        compute_metrics(TaskSpec("multilabel", label_names=("a",)), np.zeros((2, 1, 2)), np.zeros((2, 1))))
    with pytest.raises(ValueError, match="as many predictions"):
        compute_metrics(REG, np.zeros(3), np.zeros(2))
