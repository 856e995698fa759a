"""Multiply-accumulates (MACs) one request costs each model: the bound on how far apart their latencies can be.

At batch 1 both models are compute work on one core; the student's recurrence runs as matrix-vector products,
which use a core no better than the teacher's matrix-matrix products do, so teacher time / student time cannot
exceed teacher MACs / student MACs by much. The benchmark records that ratio beside the measured one.

    student  its encoder (`arch`), then the classifier (features F, or 4F for a siamese pair: [h1, h2, h1*h2,
             |h1-h2|], -> FC -> labels; linear: -> labels):
               bilstm  each direction, each token: the four gates over [input, hidden] (4H x (E + H)); F = 2H
               cnn     each width w of 3, 4, 5, each of a text's max(tokens - w + 1, 1) windows: w x E x filters;
                       F = 3 x filters
               bow     nothing (a mean and a max are adds and compares); F = 2E
               linear  nothing (a mean); F = E
             (E: the embedding width, doubled by multichannel)
    teacher  each layer, each token: Q, K, V, output projections (4 h^2) and the feed-forward (2 h f), plus the
             attention scores and weighted sum (2 n^2 h for n tokens); then pooler (h^2) and classifier
Embedding lookups, norms, activations and softmax are not counted (they are not multiply-accumulate work).
"""
from __future__ import annotations

from typing import Sequence

from distill.student.model import CNN_WIDTHS, StudentConfig


def student_macs(cfg: StudentConfig, tokens: int | Sequence[int]) -> int:
    """One request: `tokens` = each of its texts' token count ([first, second] for a pair), or one int (one text;
    for the BiLSTM, whose work is per token, a pair's tokens together will do)."""
    texts = [max(int(t), 1) for t in ([tokens] if isinstance(tokens, int) else tokens)]  # empty: one [PAD]
    inputs = cfg.embedding_dim * (2 if cfg.multichannel else 1)
    if cfg.arch == "bilstm":
        encoder, features = 2 * sum(texts) * 4 * cfg.hidden * (inputs + cfg.hidden), 2 * cfg.hidden
    elif cfg.arch == "cnn":
        windows = sum(max(n - w + 1, 1) * w for n in texts for w in CNN_WIDTHS)
        encoder, features = windows * inputs * cfg.filters, len(CNN_WIDTHS) * cfg.filters
    else:
        encoder, features = 0, inputs * (2 if cfg.arch == "bow" else 1)
    features *= 4 if cfg.pair else 1
    classifier = features * cfg.num_labels if cfg.arch == "linear" else features * cfg.fc + cfg.fc * cfg.num_labels
    return encoder + classifier


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
    student = [student_macs(student_cfg, [steps(t) for t in row]) for row in rows]
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
