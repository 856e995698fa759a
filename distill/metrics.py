"""Classification metrics in the output contract's shape: {"accuracy", "n"[, "f1"][, "macro_f1"]}, and per-class
precision / recall for the reports."""
from __future__ import annotations

import numpy as np


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    labels, preds = np.asarray(labels), np.asarray(preds)
    return float((labels == preds).mean()) if len(labels) else float("nan")


def f1_positive(labels: np.ndarray, preds: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class (GLUE's QQP F1)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    tp = int(((preds == positive) & (labels == positive)).sum())
    fp = int(((preds == positive) & (labels != positive)).sum())
    fn = int(((preds != positive) & (labels == positive)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def split_metrics(labels, preds, with_f1: bool = False, positive: int = 1, num_labels: int = 2) -> dict:
    """accuracy and n; "f1" of the `positive` class where the task asks (QQP); "macro_f1" beyond two classes."""
    out = {"accuracy": round(accuracy(labels, preds), 4), "n": int(len(labels))}
    if with_f1:
        out["f1"] = round(f1_positive(labels, preds, positive), 4)
    if num_labels > 2:
        out["macro_f1"] = round(float(np.mean([f1_positive(labels, preds, c) for c in range(num_labels)])), 4)
    return out


def per_class(labels, preds, names) -> dict:
    """{name: {"precision", "recall", "f1", "support"}} (precision of a never-predicted class is 0)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    out = {}
    for c, name in enumerate(names):
        tp = int(((preds == c) & (labels == c)).sum())
        predicted, actual = int((preds == c).sum()), int((labels == c).sum())
        out[name] = {"precision": round(tp / predicted, 4) if predicted else 0.0,
                     "recall": round(tp / actual, 4) if actual else 0.0,
                     "f1": round(f1_positive(labels, preds, c), 4), "support": actual}
    return out


def confusion(labels, preds, num_labels: int) -> np.ndarray:
    """matrix[actual, predicted] counts."""
    m = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(preds)), 1)
    return m
