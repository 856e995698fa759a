"""Classification metrics in the output contract's shape: {"accuracy": .., "n": .., ("f1": ..)}."""
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


def split_metrics(labels, preds, with_f1: bool = False) -> dict:
    out = {"accuracy": round(accuracy(labels, preds), 4), "n": int(len(labels))}
    if with_f1:
        out["f1"] = round(f1_positive(labels, preds), 4)
    return out


def confusion(labels, preds, num_labels: int) -> np.ndarray:
    """matrix[actual, predicted] counts."""
    m = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(preds)), 1)
    return m
