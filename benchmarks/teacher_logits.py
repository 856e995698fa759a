"""Benchmark (not a test): the teacher_logits stage's inference path vs a naive loop, MiniLM teacher, SST-2.

Same sentences (the first --n rows of data/sst2/train.parquet) both ways. Naive: original order, each batch of 512
padded to its longest sentence, fp32. Stage: distill.teacher.teacher_logits (length-sorted batches, dynamic
padding, inference_mode, bf16 autocast where the CPU has bf16 hardware). A fresh classifier head is fine for
timing. Run from the repo root: python benchmarks/teacher_logits.py
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.finetune import resolve_model_source
from distill.teacher import resolve_bf16, teacher_logits


def naive(model, tok, sents, batch_size=512, max_length=128) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(sents), batch_size):
            enc = tok(sents[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            out.append(model(**enc).logits.numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8192, help="SST-2 training sentences")
    ap.add_argument("--batch-size", type=int, default=128, help="the stage's batch size")
    ap.add_argument("--bf16", default="auto", help="auto | true | false (stage path only)")
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    sents = pd.read_parquet("data/sst2/train.parquet", columns=["sentence"])["sentence"].head(args.n).tolist()
    source, local = resolve_model_source("minilm")
    tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2, local_files_only=local).eval()
    bf16 = resolve_bf16(args.bf16, torch.device("cpu"))
    print(f"{len(sents)} sentences, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}, "
          f"stage bf16={bf16}", flush=True)

    start = time.perf_counter()
    fast = teacher_logits(model, tok, sents, batch_size=args.batch_size, bf16=bf16, progress=False)
    t_fast = time.perf_counter() - start
    print(f"stage path: {t_fast:.1f}s", flush=True)
    start = time.perf_counter()
    slow = naive(model, tok, sents)
    t_slow = time.perf_counter() - start
    print(f"naive loop: {t_slow:.1f}s", flush=True)
    print(f"speedup {t_slow / t_fast:.1f}x; argmax agreement {(fast.argmax(1) == slow.argmax(1)).mean():.4f}; "
          f"max |logit diff| {np.abs(fast - slow).max():.4f}; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
