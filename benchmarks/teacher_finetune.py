"""Benchmark (not a test): the teacher's fine-tuning step time in fp32 and under bf16 autocast, in one run.

The finetune_teacher stage's maths without the Trainer around it: the default teacher (MiniLM) with a fresh
classifier head, AdamW, batches of --batch-size rows of data/<task>/train.parquet grouped by length as the
Trainer's group_by_length does (similar lengths, dynamic padding). fp32 and bf16 steps alternate over the same
batches, so all see the same lengths and the same machine load; a third variant adds the fused AdamW kernel
(the Trainer's optim="adamw_torch_fused") to bf16, and --compile a fourth, that one under torch.compile. bf16
autocast is native on CPUs with AVX512-BF16/AMX and emulated (slower) elsewhere. From the repo root, e.g.:
    taskset -c 1 python benchmarks/teacher_finetune.py --threads 1
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
from distill.teacher.finetune import resolve_model_source
from distill.teacher.model import load_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--model", default="minilm", help="teacher.model")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per precision (after one warm-up each)")
    ap.add_argument("--batch-size", type=int, default=32, help="teacher.batch_size")
    ap.add_argument("--max-length", type=int, default=128, help="teacher.max_length")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time bf16 + fused AdamW under torch.compile "
                    "(dynamic shapes; the first, compiling step is not timed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification
    source, local = resolve_model_source(args.model)
    tok = load_tokenizer(source, local)
    train = pd.read_parquet(Path("data") / args.task / "train.parquet")
    train = train[train["label"] >= 0].sample(frac=1.0, random_state=13)
    rows = train.iloc[:args.batch_size * 50]
    lengths = np.array([len(tok(t, truncation=True, max_length=args.max_length)["input_ids"])
                        for t in rows["sentence"]])
    order = np.argsort(lengths, kind="stable")  # group_by_length: batches of similar length, in random order
    batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    batches = [batches[i] for i in np.random.default_rng(13).permutation(len(batches))][:args.steps + 1]
    torch.manual_seed(13)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=int(train["label"].max()) + 1,
                                                               local_files_only=local)
    # the Trainer's optim="adamw_torch" is torch's AdamW, which on a CPU loops over the parameters; "adamw_torch_fused"
    # is its fused kernel (one pass per parameter): each variant keeps its own optimizer state over the same weights
    looped, fused = (torch.optim.AdamW(model.parameters(), lr=5e-5, fused=f) for f in (False, True))
    variants = {"fp32": (False, looped), "bf16 autocast": (True, looped), "bf16 autocast, fused AdamW": (True, fused)}
    compiled = torch.compile(model, dynamic=True) if args.compile else None  # same weights; compiles on step 0
    if compiled is not None:
        variants["bf16, fused AdamW, torch.compile"] = (True, fused)
    model.train()
    print(f"{cpu_name()}; flags {' '.join(cpu_vector_flags())}; {args.threads} thread(s); bf16 hardware: "
          f"{cpu_supports_bf16()}; {args.model}, batch {args.batch_size}, {args.steps} steps each", flush=True)
    seconds = dict.fromkeys(variants, 0.0)
    for i, idx in enumerate(batches):
        enc = tok(rows["sentence"].iloc[idx].tolist(), padding=True, truncation=True, max_length=args.max_length,
                  return_tensors="pt")
        labels = torch.tensor(rows["label"].iloc[idx].to_numpy())
        for name, (bf16, opt) in variants.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = (compiled if "compile" in name else model)(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if i:  # the first batch warms up every variant
                seconds[name] += time.perf_counter() - start
    for name, took in seconds.items():
        print(f"  {name:27} {took / args.steps:6.3f} s/step  {seconds['fp32'] / took:5.2f}x")

if __name__ == "__main__":
    main()
