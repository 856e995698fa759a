"""distill/metrics.py against hand-computed values."""
import math

import numpy as np

from distill.metrics import accuracy, confusion, f1_positive, split_metrics

LABELS = [1, 1, 0, 0, 1, 0, 1]
PREDS = [1, 0, 1, 0, 1, 0, 0]
# by hand: correct at 0, 3, 4, 5 -> 4/7; positive class: tp = 2 (0, 4), fp = 1 (2), fn = 2 (1, 6)


def test_accuracy():
    assert accuracy(LABELS, PREDS) == 4 / 7
    assert accuracy(np.array([2, 0]), np.array([2, 0])) == 1.0
    assert accuracy([0, 1], [1, 0]) == 0.0
    assert math.isnan(accuracy([], []))


def test_f1_of_the_positive_class():
    assert f1_positive(LABELS, PREDS) == 2 * 2 / (2 * 2 + 1 + 2)  # 4/7
    # positive = 0: tp = 2 (3, 5), fp = 2 (1, 6), fn = 1 (2) -> 4 / 7 as well; another case to tell them apart:
    assert f1_positive([0, 0, 1], [0, 1, 1], positive=0) == 2 / 3  # tp 1, fp 0, fn 1
    assert f1_positive([0, 0, 1], [0, 1, 1]) == 2 / 3  # positive 1: tp 1, fp 1, fn 0
    assert f1_positive([1, 1, 0], [1, 1, 1]) == 0.8  # tp 2, fp 1
    assert f1_positive([0, 0], [0, 0]) == 0.0  # no positives anywhere: 0, not a division by zero
    assert f1_positive([1, 0], [0, 1]) == 0.0


def test_split_metrics_shape_and_rounding():
    out = split_metrics(np.array(LABELS), np.array(PREDS))
    assert out == {"accuracy": 0.5714, "n": 7} and type(out["n"]) is int
    assert split_metrics([1, 0, 1], [1, 0, 0], with_f1=True) == {"accuracy": 0.6667, "n": 3, "f1": 0.6667}


def test_confusion_counts_actual_by_predicted():
    m = confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_labels=3)
    assert m.tolist() == [[1, 1, 0],
                          [0, 1, 0],
                          [1, 0, 2]]
