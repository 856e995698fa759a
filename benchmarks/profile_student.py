"""Student inference speed: today's fast path (the "c" cell) against the fused C kernel, in one run.

All SST-2 training sentences (§5.2 setting: batch 512, exact fp32, CPU) through a randomly initialised student
with SST-2's vocabulary and the paper's shape (timing does not depend on the weights): the "c" cell (per step
one torch.bmm, then the C gate loop) against the "fused" kernel (the whole recurrence and the classifier in C),
each build of it this CPU runs (AVX-512, AVX2), on one thread and on every usable core. Paths are timed in turns
(repeat r of every path, then repeat r + 1), medians reported with wall and process CPU seconds (on a shared
machine CPU seconds are the steadier measure) and the load average. Reported beside the times: the recurrence's
matmul work (every token, both directions, h W_hh^T) per second against the core's measured fp32 peak (a large
torch matmul on one thread; and each fused build's FMA throughput), the CPU model and its vector flags, and
where the time goes (torch.profiler, one thread).

    taskset -c 0 python benchmarks/profile_student.py               # one core: the 1-thread figures
    python benchmarks/profile_student.py --max-sentences 20000      # quicker; every usable core as well
    python benchmarks/profile_student.py --extra-paths              # + torch-ops cell, onnxruntime, nn.LSTM
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.report.benchmark import fp32_peak_gflops, reference_logits, student_tokens
from distill.runtime import cpu_name, cpu_vector_flags, usable_cores
from distill.inference.kernels import compiled_cell, compiled_fused, compiled_lowp
from distill.inference.kernels import fused_isas, lowp_builds
from distill.inference.fast import FastStudent, recurrent_flop, torch_threads
from distill.inference.onnx import OnnxStudent
from distill.student.model import StudentClassifier, StudentConfig, count_parameters
from distill.student.vocab import Vocab

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "glue" / "SST-2" / "train.tsv"


def read_sentences(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=["sentence"])["sentence"].astype(str).tolist()
    # GLUE TSV: quoting disabled (the mirror's README), empty cells stay empty strings
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False,
                       dtype=str)["sentence"].tolist()


def executed_flop(student: FastStudent, texts: list[str], batch_size: int) -> int:
    """The matmul work the fused kernel actually does: tiles of `tile` rows (whole tiles, as it computes them)
    through each tile's longest row, no product at steps 0 and 1 (1 with the per-word table), padded columns."""
    lengths = np.maximum(student.tokenizer.encode_batch(texts)[1], 1)
    order = np.argsort(-lengths, kind="stable")
    tile, skip = student.kernel.tile, 2 if student.fused_g1 is not None else 1
    steps = 0
    for b in range(0, len(order), batch_size):
        lens = lengths[order[b:b + batch_size]]
        steps += sum(tile * max(int(lens[s:s + tile].max()) - skip, 0) for s in range(0, len(lens), tile))
    return 2 * steps * 2 * student.hidden * student.fused_columns


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GLUE SST-2 train.tsv (or a parquet file)")
    ap.add_argument("--max-sentences", type=int, default=0, help="0 = all")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="the all-cores rows: 0 = every usable core")
    ap.add_argument("--embedding-dim", type=int, default=50, help="per channel (default config: GloVe 50d)")
    ap.add_argument("--no-multichannel", action="store_true")
    ap.add_argument("--hidden", type=int, default=150)
    ap.add_argument("--fc", type=int, default=200)
    ap.add_argument("--check-sentences", type=int, default=5000,
                    help="sentences the nn.LSTM reference checks every path on (0 = all)")
    ap.add_argument("--extra-paths", action="store_true", help="also time the torch-ops cell, onnxruntime, nn.LSTM")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--reduced", action="store_true",
                    help="also time every reduced-precision build this CPU runs (bf16 / int8 recurrent product, "
                         "1 thread; NOT exact: their logit differences are printed like the others')")
    args = ap.parse_args()

    cores = args.threads or usable_cores()
    texts = read_sentences(args.data)
    if args.max_sentences:
        texts = texts[:args.max_sentences]
    vocab = Vocab.build(texts)
    torch.manual_seed(0)
    cfg = StudentConfig(vocab_size=len(vocab), embedding_dim=args.embedding_dim, hidden=args.hidden, fc=args.fc,
                        num_labels=2, pair=False, multichannel=not args.no_multichannel, embeddings="random")
    model = StudentClassifier(cfg).eval()
    tokens = student_tokens(vocab, texts)
    flop = recurrent_flop(tokens, args.hidden)
    print(f"{len(texts)} sentences ({args.data.name}), {tokens} tokens; vocab {len(vocab)}; student "
          f"{count_parameters(model, False) / 1e6:.2f}M params without embeddings, hidden {args.hidden}; "
          f"batch {args.batch_size}")
    print(f"CPU: {cpu_name()}; vector flags: {' '.join(cpu_vector_flags())}; torch {torch.__version__} "
          f"(capability {torch.backends.cpu.get_cpu_capability()}); usable cores {usable_cores()}; "
          f"load average {load()}")
    print(f"recurrent matmul work: {flop / 1e9:.1f} GFLOP (2 x tokens x 2 directions x H x 4H)")

    # the core's measured peak
    with torch_threads(1):
        peak = fp32_peak_gflops(repeats=10)
    isas = [isa for isa in fused_isas() if compiled_fused(isa) is not None]
    fma = {isa: compiled_fused(isa).fma_peak_gflops() for isa in isas}
    print(f"one core's fp32 peak: torch matmul 2048^3 on one thread {peak:.1f} GFLOP/s; FMA throughput "
          + ", ".join(f"{isa} {g:.1f}" for isa, g in fma.items()) + " GFLOP/s")
    if compiled_cell() is None or not isas:
        sys.exit("needs the C cell and at least one fused build (a C compiler, x86-64 with AVX2+FMA)")

    # paths: (name, threads, student); "old" is today's fast path
    t0 = time.perf_counter()
    paths = [("old: c cell", 1, FastStudent(model, vocab, cell="c", threads=1))]
    paths += [(f"new: fused {isa}", 1, FastStudent(model, vocab, cell="fused", isa=isa, threads=1)) for isa in isas]
    if cores > 1:
        paths += [("old: c cell", cores, FastStudent(model, vocab, cell="c", threads=cores)),
                  (f"new: fused {isas[0]}", cores, FastStudent(model, vocab, cell="fused", isa=isas[0],
                                                               threads=cores))]
    if args.reduced:
        paths += [(f"reduced: {b}", 1, FastStudent(model, vocab, precision=b, threads=1))
                  for b in lowp_builds() if compiled_lowp(b) is not None]
    if args.extra_paths:
        paths += [("torch-ops cell", 1, FastStudent(model, vocab, cell="torch")),
                  ("onnxruntime", 1, OnnxStudent(model, vocab, threads=1))]
    print(f"set-up (folds, packing, step-1 tables, cached builds): {time.perf_counter() - t0:.1f} s")

    # agreement with the nn.LSTM model
    check = texts[:args.check_sentences] if args.check_sentences else texts
    with torch_threads(1):
        ref = reference_logits(model, vocab, check, batch_size=args.batch_size)
        for name, threads, student in paths:
            diff = np.abs(student.logits(check, batch_size=args.batch_size) - ref).max()
            print(f"  max |logit - nn.LSTM| {name} ({threads} thr.): {diff:.1e} on {len(check)} sentences")

    def run(student, threads):
        with torch_threads(threads):
            return student.logits(texts, batch_size=args.batch_size)

    for _, threads, student in paths:  # warm-up
        with torch_threads(threads):
            student.logits(texts[:512], batch_size=args.batch_size)
    walls = {i: [] for i in range(len(paths))}
    cpus = {i: [] for i in range(len(paths))}
    loads = [load()]
    if args.extra_paths:  # the reference once: ~10x slower than the rest
        with torch_threads(1):
            w, c = time.perf_counter(), time.process_time()
            reference_logits(model, vocab, texts, batch_size=args.batch_size)
            ref_times = (time.perf_counter() - w, time.process_time() - c)
    for rep in range(args.repeats):
        for i, (_, threads, student) in enumerate(paths):
            w, c = time.perf_counter(), time.process_time()
            run(student, threads)
            walls[i].append(time.perf_counter() - w)
            cpus[i].append(time.process_time() - c)
        loads.append(load())
    print(f"\nload average (1/5/15 min) before and after each round of repeats: {'  '.join(loads)}")

    med = {i: (statistics.median(walls[i]), statistics.median(cpus[i])) for i in walls}
    old = {threads: i for i, (name, threads, _) in enumerate(paths) if name.startswith("old")}
    head = (f"{'path':22s} {'thr':>3s} {'wall s':>7s} {'cpu s':>7s} {'vs old (wall)':>13s} {'vs old (cpu)':>12s} "
            f"{'sent/s':>8s} {'GFLOP/s (wall)':>14s} {'GFLOP/s per cpu s':>17s}")
    print(f"\nall {len(texts)} sentences, batch {args.batch_size}, median of {args.repeats} (recurrent GFLOP/s = "
          f"{flop / 1e9:.1f} GFLOP of matmul work over the whole path's wall seconds, or its process CPU seconds, "
          f"i.e. per core):")
    print(head)
    print("-" * len(head))
    for i, (name, threads, _) in enumerate(paths):
        wall, cpu = med[i]
        base = old.get(threads)
        ratio_w = f"{wall / med[base][0]:.3f}x" if base is not None else "-"
        ratio_c = f"{cpu / med[base][1]:.3f}x" if base is not None else "-"
        print(f"{name:22s} {threads:3d} {wall:7.3f} {cpu:7.3f} {ratio_w:>13s} {ratio_c:>12s} "
              f"{len(texts) / wall:8.0f} {flop / wall / 1e9:14.1f} {flop / cpu / 1e9:17.1f}")
    if args.extra_paths:
        print(f"{'reference nn.LSTM':22s} {1:3d} {ref_times[0]:7.3f} {ref_times[1]:7.3f}  (once)")
    print(f"peak of one core: {peak:.1f} GFLOP/s (torch matmul, one thread); FMA throughput "
          + ", ".join(f"{isa} {g:.1f}" for isa, g in fma.items()))
    print("(the fused kernel skips the products of steps 0 and 1 -- h_0 = 0, and step 1's comes from a per-word "
          "table -- so it executes fewer FLOPs than the model's work counted here)")

    if args.no_profile:
        return
    # where the time goes, one thread, profiled (CPU seconds of labelled regions)
    for name, _, student in paths[:2]:  # the old path and the best fused build, one thread each
        with torch_threads(1), profile(activities=[ProfilerActivity.CPU]) as prof:
            student.logits(texts, batch_size=args.batch_size)
        ev = {e.key: e for e in prof.key_averages()}

        def sec(key, self_time=False):
            e = ev.get(key)
            return 0.0 if e is None else (e.self_cpu_time_total if self_time else e.cpu_time_total) / 1e6

        if name.startswith("old"):
            parts = {"tokenization": sec("tokenize"), "id matrices": sec("gather_gates"),
                     "recurrent matmuls (aten::bmm)": sec("aten::bmm"),
                     "gates (C cell) + step loop": sec("recurrence", self_time=True),
                     "classifier (torch)": sec("classifier")}
            matmul = sec("aten::bmm")
        else:
            parts = {"tokenization": sec("tokenize"), "recurrence (fused kernel)": sec("recurrence"),
                     "classifier (C head)": sec("classifier")}
            matmul = sec("recurrence")
        total = sum(parts.values())
        print(f"\nwhere the time goes, {name}, one thread (profiled pass, CPU seconds):")
        for part, value in parts.items():
            print(f"  {part:32s} {value:7.3f} s  {100 * value / total:5.1f}%")
        what = "bmm alone" if name.startswith("old") else "the whole recurrence (matmul + gates)"
        print(f"  recurrent work over {what}: {flop / matmul / 1e9:.1f} GFLOP/s (peak {peak:.1f})")
        if student.cell == "fused":
            done = executed_flop(student, texts, args.batch_size)
            print(f"  executed: {done / 1e9:.1f} GFLOP ({100 * done / flop:.0f}% of the model's work) in the "
                  f"kernel's {matmul:.3f} s, gates included: {done / matmul / 1e9:.1f} GFLOP/s "
                  f"(FMA peak {fma[student.isa]:.1f})")


if __name__ == "__main__":
    main()
