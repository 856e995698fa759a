"""Student inputs: texts encoded once to flat id arrays, batched by length and padded per batch; batch
inference in input order. Used by training, evaluate, predict and benchmark alike."""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from distill.student.model import StudentClassifier
from distill.student.vocab import Vocab

CHUNK_BATCHES = 50  # training: length bucketing happens within shuffled chunks of this many batches


def pad_rows(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pad_id: int = 0,
             time_major: bool = False) -> np.ndarray:
    """Rows of a flat id array as a right-padded (B, T) matrix, T = the longest row (at least 1)."""
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    pos = np.arange(width)
    inside = pos[None, :] < lengths[:, None]
    if len(flat) == 0:
        mat = np.full(inside.shape, pad_id, dtype=np.int64)
    else:
        mat = np.where(inside, flat[np.where(inside, starts[:, None] + pos[None, :], 0)], pad_id)
    return np.ascontiguousarray(mat.T) if time_major else mat


class Encoded:
    """Texts pre-encoded once into a flat id array; batches are padded to their own longest text."""

    def __init__(self, vocab: Vocab, texts):
        self.flat, self.lengths = vocab.encode_batch(texts)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.lengths[rows]
        return torch.from_numpy(pad_rows(self.flat, self.starts[rows], lengths)), torch.from_numpy(lengths)


class Dataset:
    """One or two encoded text columns, plus optional targets (CE) and teacher logits (MSE)."""

    def __init__(self, vocab: Vocab, columns: list, targets=None, teacher_logits=None):
        self.columns = [Encoded(vocab, list(c)) for c in columns]
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.teacher = None if teacher_logits is None else np.asarray(teacher_logits, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.columns[0])

    def inputs(self, rows: np.ndarray) -> list[torch.Tensor]:
        out = []
        for col in self.columns:
            out.extend(col.batch(rows))
        return out

    def total_lengths(self) -> np.ndarray:
        return sum(c.lengths for c in self.columns)


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of row indices. Training (rng given): seeded shuffle, then rows sorted by length inside chunks of
    CHUNK_BATCHES batches (little padding, still random), batch order shuffled. Inference: sorted by length."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = batch_size * CHUNK_BATCHES
    batches = []
    for start in range(0, n, chunk):
        part = perm[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def predict_logits(model: StudentClassifier, data: Dataset, batch_size: int, progress: bool = False) -> np.ndarray:
    """(N, num_labels) float32 logits in input order."""
    model.eval()
    dev = next(model.parameters()).device
    out = np.zeros((len(data), model.cfg.num_labels), dtype=np.float32)
    for rows in tqdm(batch_order(data.total_lengths(), batch_size, None), desc="predict", disable=not progress,
                     leave=False):
        out[rows] = model(*(t.to(dev) for t in data.inputs(rows))).float().cpu().numpy()
    return out
