"""Benchmark (not a test): how far the main job's heavy stages are from this CPU's arithmetic limit.

Measures the machine's dense matrix-product rate (fp32 and bf16, square products of --size, one thread and every
usable core), counts the arithmetic each stage of a finished run must do (from the task's data, the teacher's
config and the run's epochs), and prints, per stage: the FLOPs, the time they take at the measured peak (the
floor no implementation on this machine beats), and the time the stage took in a stage_memory.py record of the run.

FLOP counts (multiply-add = 2 FLOPs, unpadded lengths, so floors are generous):
- teacher forward, per sequence of T WordPiece tokens: layers x (8 T d^2 + 4 T d d_ff + 4 T^2 d); training = 3x
  forward; fine-tuning = train rows x epochs (+ dev rows x evaluations, forward only); logits = every transfer row;
- student, per word and direction: 8 H (E + H) forward (the LSTM's two products), training = 3x; classifier ignored.

    python benchmarks/flop_floor.py --task rotten_tomatoes --record benchmarks/results/2026-11-26/main_job_stage_memory.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.runtime import cpu_name, cpu_vector_flags, usable_cores


def gemm_rate(size: int, dtype: torch.dtype, threads: int, seconds: float = 3.0) -> float:
    """GFLOP/s of repeated size x size x size products (best of rounds of about `seconds` / 3)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            torch.mm(a, b, out=out)
            n += 1
        best = max(best, 2 * size ** 3 * n / (time.perf_counter() - start) / 1e9)
    return best


def teacher_forward_flop(lengths: np.ndarray, cfg: dict) -> float:
    d, ff, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    t = lengths.astype(np.float64)
    return float(layers * (8 * t * d * d + 4 * t * d * ff + 4 * t * t * d).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--record", type=Path, help="a stage_memory.py JSON of the run, for the stages' actual times")
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--teacher-evals", type=int, default=3, help="dev evaluations in all (evals_per_epoch x epochs)")
    ap.add_argument("--student-epochs", type=int, default=None,
                    help="default: the epochs in metrics/<task>/plots/student_curve.csv")
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    from transformers import AutoTokenizer
    data, models = Path("data") / args.task, Path("models") / args.task
    cfg = json.loads((models / "teacher" / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(models / "teacher"), local_files_only=True)
    transfer = pd.read_parquet(data / "transfer.parquet")
    cols = ["sentence1", "sentence2"] if "sentence2" in transfer.columns else ["sentence"]
    first = transfer[cols[0]].astype(str).tolist()
    second = transfer[cols[1]].astype(str).tolist() if len(cols) > 1 else None
    pieces = np.array([len(x) for x in tok(first, second, truncation=True, max_length=128)["input_ids"]])
    originals = ~transfer["synthetic"].to_numpy()
    dev = pd.read_parquet(data / "dev.parquet")
    dev_pieces = np.array([len(x) for x in tok(dev[cols[0]].astype(str).tolist(),
                                               dev[cols[1]].astype(str).tolist() if second else None,
                                               truncation=True, max_length=128)["input_ids"]])
    words = sum(transfer[c].astype(str).str.count(" ").to_numpy() + 1 for c in cols)
    epochs = args.student_epochs
    if epochs is None:
        epochs = len(pd.read_csv(Path("metrics") / args.task / "plots" / "student_curve.csv"))
    hidden, inputs = 150, 100  # params.yaml student: hidden 150, GloVe 50d multichannel
    flop = {
        "finetune_teacher": 3 * args.teacher_epochs * teacher_forward_flop(pieces[originals], cfg)
        + args.teacher_evals * teacher_forward_flop(dev_pieces, cfg),
        "teacher_logits": teacher_forward_flop(pieces, cfg),
        "train_student": 3 * epochs * 2 * 8 * hidden * (inputs + hidden) * float(words.sum()),
    }
    cores = usable_cores()
    print(f"{cpu_name()}; flags {' '.join(cpu_vector_flags())}; {cores} usable cores; torch {torch.__version__}")
    rates = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        for threads in sorted({1, cores}):
            rates[name, threads] = gemm_rate(args.size, dtype, threads)
            print(f"  {args.size}^3 {name} products, {threads} thread(s): {rates[name, threads]:7.1f} GFLOP/s")
    actual = {}
    if args.record:
        for stage in json.loads(args.record.read_text())["stages"]:
            actual[stage["stage"].split("@")[0]] = stage["seconds"]
    print(f"\n{args.task}: {len(transfer):,} transfer rows ({originals.sum():,} originals), {pieces.mean():.1f} "
          f"WordPiece tokens and {words.mean():.1f} words a row; teacher {args.teacher_epochs} epochs, student "
          f"{epochs} epochs\n")
    print(f"| stage | TFLOP | floor at bf16 peak ({cores} cores) | floor at fp32 peak | this run | of bf16 peak |")
    print("|---|---|---|---|---|---|")
    for stage, f in flop.items():
        bf16, fp32 = f / rates["bf16", cores] / 1e9, f / rates["fp32", cores] / 1e9
        took = actual.get(stage)
        share = f"{bf16 / took:.0%}" if took else "–"
        print(f"| {stage} | {f / 1e12:.1f} | {bf16 / 60:.2f} min | {fp32 / 60:.2f} min | "
              f"{(f'{took / 60:.2f} min') if took else '–'} | {share} |")
    per_row = flop["train_student"] / epochs / len(transfer)
    print(f"\nstudent training: {per_row / 1e6:.1f} MFLOP a row on average, so at most "
          f"{rates['fp32', 1] / per_row * 1e9:,.0f} rows/s on one core in fp32 and "
          f"{rates['bf16', 1] / per_row * 1e9:,.0f} in bf16 (at the measured peaks)")


if __name__ == "__main__":
    main()
