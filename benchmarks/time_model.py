"""The time model for the paper's full transfer sets, from the per-row cost files of benchmarks/per_row_costs.py.

For each task (SST-2 x20, QQP x10, MNLI x10) and teacher, on 1 and on N GPUs:
- fine-tuning: training rows x teacher.epochs / the measured fine-tuning rows/s (batch 32, bf16 autocast); on N
  GPUs divided by N, an ideal data-parallel scaling (accelerate/DDP gradient all-reduce is not measured);
- teacher logits: the slowest rank's rows / the measured logits rows/s at --logits-batch; ranks take whole shards
  of runtime.logits_shard_rows (rank r: shards r, r + N, ...), so N GPUs cost ceil(shards / N) shards, no
  communication;
- student: transfer rows x student.epochs (the early-stopping bound) / the measured rows/s; one process (the train
  stage does not shard), so the same on N GPUs.
Row counts: SST-2's transfer set as measured here (n_iter 20); QQP's and MNLI's are their GLUE training sets x 11
(originals + 10 candidates each) before the augment stage drops duplicates, so upper bounds.

    python -m benchmarks.time_model benchmarks/results/2026-11-26/per_row_costs_h200{,_finetune}.json
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

TASKS = {  # GLUE training rows; transfer rows (SST-2 measured: data/sst2/transfer.parquet at n_iter 20)
    "sst2": {"label": "SST-2 x20", "train": 67_349, "transfer": 867_396, "exact": True},
    "qqp": {"label": "QQP x10", "train": 363_846, "transfer": 363_846 * 11, "exact": False},
    "mnli": {"label": "MNLI x10", "train": 392_702, "transfer": 392_702 * 11, "exact": False},
}


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def model(costs: dict, gpus: int, teacher_epochs: int, student_epochs: int, shard_rows: int, logits_batch: int,
          student_vocab: int) -> list[dict]:
    rows = []
    for task, t in TASKS.items():
        student = costs["student"][f"{task}/vocab{student_vocab}"]["rows_per_s"]
        for teacher in dict.fromkeys(k.split("/")[0] for k in costs["finetune"]):  # in measured order
            finetune = costs["finetune"][f"{teacher}/{task}"]["rows_per_s"]
            logits = costs["logits"][f"{teacher}/{task}/batch{logits_batch}"]["rows_per_s"]
            shards = math.ceil(t["transfer"] / shard_rows)
            row = {"task": t["label"], "teacher": teacher, "transfer_rows": t["transfer"], "exact": t["exact"]}
            for n in (1, gpus):
                slowest = min(math.ceil(shards / n) * shard_rows, t["transfer"])
                ft = t["train"] * teacher_epochs / finetune / n
                lg = slowest / logits
                st = t["transfer"] * student_epochs / student
                row[n] = {"finetune_s": ft, "logits_s": lg, "student_s": st, "total_s": ft + lg + st}
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("costs", type=Path, nargs="+", help="JSON files written by benchmarks/per_row_costs.py measure; "
                    "a later file's figures replace an earlier one's (e.g. a longer fine-tuning run)")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--teacher-epochs", type=int, default=3, help="teacher.epochs")
    ap.add_argument("--student-epochs", type=int, default=10, help="student.epochs (early stopping may stop sooner)")
    ap.add_argument("--shard-rows", type=int, default=65536, help="runtime.logits_shard_rows")
    ap.add_argument("--logits-batch", type=int, default=512, help="a batch size the cost file measured: 128 or 512")
    ap.add_argument("--student-vocab", type=int, default=100000, help="a vocabulary size the cost file measured")
    args = ap.parse_args(argv)
    costs = {"student": {}, "logits": {}, "finetune": {}}
    for path in args.costs:
        part = json.loads(path.read_text())
        for section in costs:
            costs[section].update(part[section])
    m = part["machine"]
    print(f"per-row costs: {', '.join(map(str, args.costs))} ({m.get('gpu', m['device'])}, host {m['cpu']}, torch {m['torch']}, "
          f"transformers {m['transformers']}); teacher {args.teacher_epochs} epochs, student {args.student_epochs} "
          f"epochs, logits batch {args.logits_batch}, shards of {args.shard_rows:,} rows\n")
    n = args.gpus
    print(f"| transfer set | rows | teacher | 1 GPU: fine-tune + logits + student = total | {n} GPUs: fine-tune "
          f"(ideal) + logits + student = total |")
    print("|---|---|---|---|---|")
    for r in model(costs, n, args.teacher_epochs, args.student_epochs, args.shard_rows, args.logits_batch,
                   args.student_vocab):
        cells = [" + ".join(minutes(r[k][p]) for p in ("finetune_s", "logits_s", "student_s")) +
                 f" = **{minutes(r[k]['total_s'])}**" for k in (1, n)]
        rows = f"{r['transfer_rows']:,}" + ("" if r["exact"] else " (≤)")
        print(f"| {r['task']} | {rows} | {r['teacher']} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
