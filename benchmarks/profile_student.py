"""Time and profile student inference on all SST-2 training sentences (§5.2 setting: batch 512, CPU).

A randomly initialised student with SST-2's vocabulary (timing does not depend on the weights): reference
nn.LSTM (packed sequences) vs distill.fast_student (C cell with batches on every core, C cell on one thread,
torch-ops cell) vs onnxruntime, checks they agree, then profiles the fast path on one thread (torch.profiler;
tokenize / gather_gates / recurrence / classifier are labelled regions, aten::bmm is the recurrent matmul). Reports wall and process CPU seconds: on a shared machine CPU seconds are the steadier
measure, and the load average is printed alongside.

    python benchmarks/profile_student.py                       # all 67,349 sentences, threads = cores
    python benchmarks/profile_student.py --threads 1 --max-sentences 20000
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from distill.benchmark import cpu_cores, cpu_name
from distill.fast_student import FastStudent, FastTokenizer, OnnxStudent, reference_logits, torch_threads
from distill.student import StudentClassifier, StudentConfig, count_parameters
from distill.vocab import Vocab


def timed(fn, repeats):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def one_thread(fn):
    """fn with torch (and so the recurrence's bmm) on one thread: the single-core figure."""
    def run(*args):
        with torch_threads(1):
            return fn(*args)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/sst2/train.parquet"))
    ap.add_argument("--max-sentences", type=int, default=0, help="0 = all")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0 = as many as cores")
    ap.add_argument("--embedding-dim", type=int, default=50, help="per channel (default config: GloVe 50d)")
    ap.add_argument("--no-multichannel", action="store_true")
    ap.add_argument("--hidden", type=int, default=150)
    ap.add_argument("--fc", type=int, default=200)
    ap.add_argument("--skip-reference", action="store_true", help="the nn.LSTM reference takes ~10 s a pass")
    args = ap.parse_args()

    torch.set_num_threads(args.threads or cpu_cores())
    texts = pd.read_parquet(args.data, columns=["sentence"])["sentence"].tolist()
    if args.max_sentences:
        texts = texts[:args.max_sentences]
    vocab = Vocab.build(texts)
    torch.manual_seed(0)
    cfg = StudentConfig(len(vocab), args.embedding_dim, hidden=args.hidden, fc=args.fc,
                        multichannel=not args.no_multichannel)
    model = StudentClassifier(cfg).eval()
    # recurrence steps per direction: every token, an empty text counting as one [PAD] step
    tokens = int(np.maximum(FastTokenizer(vocab).encode_batch(texts)[1], 1).sum())
    print(f"{len(texts)} sentences, {tokens} tokens; vocab {len(vocab)}; "
          f"student {count_parameters(model, False) / 1e6:.2f}M params without embeddings; "
          f"{cpu_name()}, {torch.get_num_threads()} threads; load average {os.getloadavg()}")

    rows = {}
    t0 = time.perf_counter()
    fast_c = FastStudent(model, vocab, cell="auto")
    print(f"fold + (cached) compile: {time.perf_counter() - t0:.2f} s; cell = {fast_c.cell}")
    fast_1 = FastStudent(model, vocab, cell="auto", threads=1)
    fast_t = FastStudent(model, vocab, cell="torch")
    paths = {f"fast ({fast_c.cell} cell, {fast_c.threads} thr.)": fast_c.logits,
             f"fast ({fast_1.cell} cell, 1 thread)": one_thread(fast_1.logits), "fast (torch cell)": fast_t.logits,
             "onnxruntime LSTM": OnnxStudent(model, vocab).logits}
    if not args.skip_reference:
        paths["reference nn.LSTM"] = lambda a, b, bs: reference_logits(model, vocab, a, b, bs)
    outputs = {}
    for name, fn in paths.items():
        fn(texts[:512], None, args.batch_size)  # warm-up
        reps = 1 if name.startswith("reference") else args.repeats
        wall, cpu, outputs[name] = timed(lambda: fn(texts, None, args.batch_size), reps)
        rows[name] = (wall, cpu, reps)
        print(f"{name:24s} wall {wall:7.3f} s  cpu {cpu:7.3f} s  ({reps} repeats, median)  "
              f"{len(texts) / wall:9.0f} sentences/s  load {os.getloadavg()[0]:.2f}", flush=True)
    base = outputs[next(iter(outputs))]
    for name, out in outputs.items():
        print(f"max |logit diff| {name} vs first path: {np.abs(out - base).max():.2e}; "
              f"same predictions: {(out.argmax(1) == base.argmax(1)).mean() * 100:.3f}%")

    wall, cpu, _ = timed(lambda: FastTokenizer(vocab).encode_batch(texts), args.repeats)
    print(f"tokenization alone: wall {wall:.3f} s cpu {cpu:.3f} s")

    # profiled single-threaded: the same work, with every region on the profiled thread
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_thread(fast_1.logits)(texts, None, args.batch_size)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=14))
    ev = {e.key: e for e in prof.key_averages()}

    def sec(key, self_time=False):
        e = ev.get(key)
        return 0.0 if e is None else (e.self_cpu_time_total if self_time else e.cpu_time_total) / 1e6

    parts = {"tokenization": sec("tokenize"), "id matrices / embedding gather": sec("gather_gates"),
             "recurrence matmuls (bmm h W_hh^T)": sec("aten::bmm"),
             "elementwise gates (fused cell + loop)": sec("recurrence", self_time=True),
             "classifier (FC+ReLU+FC)": sec("classifier")}
    total = sum(parts.values())
    print(f"where the time goes ({fast_1.cell} cell, one thread, profiled pass, CPU seconds):")
    for name, value in parts.items():
        print(f"  {name:40s} {value:7.3f} s  {100 * value / total:5.1f}%")
    # the recurrence's matmul work is fixed by the model: every token, both directions, h (1 x H) times (H x 4H)
    flop = 2 * tokens * 2 * args.hidden * 4 * args.hidden
    bmm = sec("aten::bmm")
    print(f"recurrent matmuls: {flop / 1e9:.0f} GFLOP in {bmm:.3f} s on one thread = {flop / bmm / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
