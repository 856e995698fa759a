"""Benchmark (not a test): the student's training throughput (rows/s), before and after the padded encoder, in one
run on one machine.

- packed: the encoder as it was, nn.LSTM over a packed sequence (torch steps through time op by op, and its
  backward zero-fills an input-sized gradient per step);
- padded: the encoder now (distill.student.model): two whole-sequence LSTM calls on padded input, the backward
  direction on reversed rows; same values and gradients (tests/test_student_model.py);
- padded bf16: the same under CPU bf16 autocast (measured for reference; not used by the stage);
- with --compile, padded under torch.compile (measured for reference; not used by the stage).

Each variant trains a fresh copy of the same model (the train stage's architecture, GloVe 50d multichannel,
AdaDelta, MSE on the teacher's logits) on the same seeded batches of data/<task>/teacher_logits.parquet. Every
variant uses torch.optim.Adadelta, so only the encoder differs; the stage's row-sparse AdaDelta is measured by
benchmarks/student_step_breakdown.py.
--pairs times the siamese student instead, on pairs of consecutive rows (batch 256 by default). From the repo root:
    taskset -c 1 python benchmarks/student_training.py --threads 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.runtime import cpu_name, cpu_supports_bf16, cpu_vector_flags
from distill.student.batching import Dataset, batch_order
from distill.student.embeddings import build_embeddings
from distill.student.model import BiLSTMEncoder, StudentClassifier, StudentConfig
from distill.student.train import adadelta, distill_loss
from distill.student.vocab import Vocab
from distill.layout import LOGITS


def packed_forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The encoder before the change: nn.LSTM over a packed sequence."""
    from torch.nn.utils.rnn import pack_padded_sequence
    packed = pack_padded_sequence(self.embed(ids), lengths.cpu().clamp(min=1), batch_first=True,
                                  enforce_sorted=False)
    _, (h_n, _) = self.lstm(packed)
    return torch.cat([h_n[0], h_n[1]], dim=-1)


def optimizer(model, row_sparse: bool = False) -> torch.optim.Optimizer:
    """AdaDelta as the stage runs it (lr 1, rho 0.95): torch's, or the stage's row-sparse one (same numbers)."""
    if row_sparse:
        return adadelta(model, 1.0, 0.95)
    return torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)


def train_step(forward, opt, data: Dataset, rows, bf16: bool = False) -> None:
    """One MSE-on-logits step of the train stage on these rows."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = forward(*data.inputs(rows))
    loss = distill_loss(out.float(), torch.from_numpy(data.teacher[rows]), None, 0.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def rows_per_s(model, data: Dataset, batches: list, warmup: int, bf16: bool, compiled: bool = False,
               row_sparse: bool = False) -> float:
    opt = optimizer(model, row_sparse)
    model.train()
    forward = torch.compile(model, dynamic=True) if compiled else model  # compiles in the warm-up batches
    count, start = 0, 0.0
    for i, rows in enumerate(batches):
        if i == warmup:
            count, start = 0, time.perf_counter()
        train_step(forward, opt, data, rows, bf16)
        count += len(rows)
    return count / (time.perf_counter() - start)


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every student-training benchmark shares (this one and student_step_breakdown.py)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--rows", type=int, default=20000, help="transfer-set rows the vocabulary and batches come from")
    ap.add_argument("--batches", type=int, default=150, help="timed batches per variant (after --warmup)")
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=None, help="default: 50 (paper), 256 with --pairs")
    ap.add_argument("--pairs", action="store_true", help="the siamese student on pairs of consecutive rows")
    return ap


def setup(args) -> tuple[Dataset, list, StudentConfig, np.ndarray, int]:
    """(data, warm-up + timed batches, the train stage's architecture, GloVe vectors, batch size) from
    data/<task>/teacher_logits.parquet."""
    batch_size = args.batch_size or (256 if args.pairs else 50)
    df = pd.read_parquet(Path("data") / args.task / "teacher_logits.parquet").iloc[:args.rows]
    texts = df["sentence"].astype(str).tolist()
    teacher = np.stack(df[LOGITS].to_numpy()).astype(np.float32)
    columns = [texts[0::2], texts[1::2]] if args.pairs else [texts]
    if args.pairs:
        n = len(columns[1])
        columns, teacher = [columns[0][:n], columns[1]], teacher[1::2][:n]
    vocab = Vocab.build(t for column in columns for t in column)
    vectors, _ = build_embeddings("glove-6b-50d", vocab, 13, None)
    data = Dataset(vocab, columns, None, teacher)
    batches = batch_order(data.total_lengths(), batch_size, np.random.default_rng(13))
    batches = (batches * (1 + (args.warmup + args.batches) // len(batches)))[:args.warmup + args.batches]
    cfg = StudentConfig(len(vocab), 50, 150, 200, teacher.shape[1], args.pairs, True, "glove-6b-50d")
    return data, batches, cfg, vectors, batch_size


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time the padded encoder under torch.compile "
                    "(dynamic shapes; compiled during the warm-up batches, which are not timed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, batches, cfg, vectors, batch_size = setup(args)
    print(f"{cpu_name()}; flags {' '.join(cpu_vector_flags())}; {args.threads} thread(s); "
          f"{'siamese, ' if args.pairs else ''}batch {batch_size}; {args.batches} timed batches from "
          f"data/{args.task}/teacher_logits.parquet", flush=True)
    padded_forward = BiLSTMEncoder.forward
    variants = [("packed (before)", packed_forward, False, False), ("padded (now)", padded_forward, False, False)]
    if cpu_supports_bf16():
        variants.append(("padded, bf16 autocast", padded_forward, True, False))
    if args.compile:
        variants.append(("padded, torch.compile", padded_forward, False, True))
    results = {}
    for name, forward, bf16, compiled in variants:
        BiLSTMEncoder.forward = forward
        torch.manual_seed(13)
        results[name] = rows_per_s(StudentClassifier(cfg, torch.from_numpy(vectors)), data, batches, args.warmup,
                                   bf16, compiled)
        print(f"  {name:24} {results[name]:8.0f} rows/s  {results[name] / results['packed (before)']:5.2f}x",
              flush=True)
    BiLSTMEncoder.forward = padded_forward


if __name__ == "__main__":
    main()
