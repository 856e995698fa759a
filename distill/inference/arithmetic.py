"""Multiply-accumulates (MACs) one request costs each model: the bound on how far apart their latencies can be.

At batch 1 both models are compute work on one core; the student's recurrence runs as matrix-vector products,
which use a core no better than the teacher's matrix-matrix products do, so teacher time / student time cannot
exceed teacher MACs / student MACs by much. The benchmark records that ratio beside the measured one.

    student  each direction, each token: the four gates over [input, hidden] (4H x (E + H)); then the classifier
             (features 2H, or 8H for a siamese pair: [h1, h2, h1*h2, |h1-h2|], -> FC -> labels)
    teacher  each layer, each token: Q, K, V, output projections (4 h^2) and the feed-forward (2 h f), plus the
             attention scores and weighted sum (2 n^2 h for n tokens); then pooler (h^2) and classifier
Embedding lookups, norms, activations and softmax are not counted (they are not multiply-accumulate work).
"""
from __future__ import annotations

from typing import Sequence

from distill.student.model import StudentConfig


def student_macs(cfg: StudentConfig, tokens: int) -> int:
    """One request of `tokens` recurrence steps per direction (a pair: both sentences' steps together)."""
    inputs = cfg.embedding_dim * (2 if cfg.multichannel else 1)
    recurrence = 2 * tokens * 4 * cfg.hidden * (inputs + cfg.hidden)
    features = 2 * cfg.hidden * (4 if cfg.pair else 1)
    return recurrence + features * cfg.fc + cfg.fc * cfg.num_labels


def teacher_macs(hidden: int, intermediate: int, layers: int, num_labels: int, tokens: int) -> int:
    """One request of `tokens` WordPiece tokens ([CLS] and [SEP] included) through a BERT-shaped encoder."""
    per_layer = tokens * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * tokens * tokens * hidden
    return layers * per_layer + hidden * hidden + hidden * num_labels


def request_arithmetic(student_cfg: StudentConfig, teacher_config, tokenizer, columns: list[list[str]],
                       max_length: int) -> dict:
    """Mean MACs per request of both models over the requests in `columns` ([texts] or [first, second]; texts as
    the pipeline stores them, whitespace-tokenized for the student), and their ratio."""
    def steps(text: str) -> int:
        return max(len(text.split()), 1)  # an empty text is one [PAD] step

    rows = list(zip(*columns))
    student = [student_macs(student_cfg, sum(steps(t) for t in row)) for row in rows]
    shape = (teacher_config.hidden_size, teacher_config.intermediate_size, teacher_config.num_hidden_layers,
             student_cfg.num_labels)
    teacher = [teacher_macs(*shape, _teacher_tokens(tokenizer, row, max_length)) for row in rows]
    if not rows:
        return {"requests": 0}
    s, t = sum(student) / len(rows), sum(teacher) / len(rows)
    return {"requests": len(rows), "student_macs_mean": s, "teacher_macs_mean": t,
            "teacher_over_student_macs": t / s}


def _teacher_tokens(tokenizer, row: Sequence[str], max_length: int) -> int:
    encoded = tokenizer(*row, truncation=True, max_length=max_length)
    return len(encoded["input_ids"])
