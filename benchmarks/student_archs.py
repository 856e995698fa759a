"""Inference speed of each `student.arch` on ONE thread, every path the benchmark stage times: throughput at batch
512 over SST-2 training sentences, and batch-1 latency over SST-2 dev sentences (each request timed on its own
after a warm-up of 20, distill.inference.latency).

    reference  the torch model over length-sorted padded batches (distill.report.benchmark.reference_logits)
    export     the exported folder through distill.inference.predictor (onnxruntime, 1 thread), as served
    onnx       the onnxruntime path of the batch benchmark (distill.inference.pooled.onnx_student: the BiLSTM's
               encoder graph with the fast path's classifier; the other archs' whole graph)
    fast       the fast CPU path (distill.inference.pooled.fast_student: FastStudent's best cell for the BiLSTM,
               PooledStudent for the others)

Default shapes with random weights (timing does not depend on them): GloVe 50d multichannel (100-d input), BiLSTM
150, CNN 100 filters per width, FC 200, 2 labels, the SST-2 training vocabulary. Throughput is the best of
--repeats passes, in the process's CPU seconds (the work itself; a shared core's lost time slices are not counted)
and in wall seconds. GFLOP/s: each path's work (the BiLSTM: its recurrence's matmuls, as the benchmark stage
counts them; the others: 2 x distill.inference.arithmetic.student_macs) over its CPU seconds, beside one core's
fp32 peak measured two ways (a large torch matmul; the fused kernel's FMA loop).

    taskset -c 0 python benchmarks/student_archs.py --glue ../shared/glue
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.inference.export import write_export
from distill.inference.fast import recurrent_flop
from distill.inference.kernels import compiled_fused
from distill.inference.latency import request_latency
from distill.inference.pooled import fast_student, onnx_student
from distill.inference.predictor import Predictor
from distill.report.benchmark import fp32_peak_gflops, model_flop, reference_logits, student_tokens
from distill.runtime import cpu_name, cpu_vector_flags
from distill.student.model import StudentClassifier, StudentConfig
from distill.student.params import ARCHS
from distill.student.vocab import Vocab
from distill.tasks import Task


def build(arch: str, vocab: Vocab) -> StudentClassifier:
    torch.manual_seed(0)
    return StudentClassifier(StudentConfig(vocab_size=len(vocab), embedding_dim=50, hidden=150 if arch == "bilstm"
                                           else 0, fc=0 if arch == "linear" else 200, num_labels=2, pair=False,
                                           multichannel=True, embeddings="random", arch=arch,
                                           filters=100 if arch == "cnn" else 0)).eval()


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds), each the best of `repeats` calls."""
    cpu, wall = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(cpu), min(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glue", type=Path, default=Path("../shared/glue"), help="GLUE layout with SST-2/{train,dev}.tsv")
    ap.add_argument("--sentences", type=int, default=8192, help="training sentences timed at batch 512")
    ap.add_argument("--requests", type=int, default=300, help="dev sentences, each one batch-1 request")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train = pd.read_csv(args.glue / "SST-2" / "train.tsv", sep="\t", quoting=3)["sentence"].astype(str).tolist()
    dev = pd.read_csv(args.glue / "SST-2" / "dev.tsv", sep="\t", quoting=3)["sentence"].astype(str).tolist()
    vocab, texts, requests = Vocab.build(train), train[:args.sentences], [dev[:args.requests]]
    kernel = compiled_fused("auto")
    out = {"cpu": cpu_name(), "cpu_flags": cpu_vector_flags(), "affinity": sorted(os.sched_getaffinity(0)),
           "vocab": len(vocab), "sentences": len(texts), "requests": len(requests[0]),
           "mean_tokens": sum(len(t.split()) for t in texts) / len(texts),
           "mean_request_tokens": sum(len(t.split()) for t in requests[0]) / len(requests[0]),
           "peak_gflops": fp32_peak_gflops(), "fma_peak_gflops": kernel.fma_peak_gflops() if kernel else None,
           "archs": {}}
    task = Task("sst2", ("sentence",), ("negative", "positive"), ("dev",))
    print(f"{'arch':7s} {'path':10s} {'batch 512 /s (cpu)':>18s} {'(wall)':>9s} {'GFLOP/s':>8s} "
          f"{'b1 p50 ms':>10s} {'b1 p99 ms':>10s}  cell")
    for arch in args.archs:
        model = build(arch, vocab)
        work = recurrent_flop(student_tokens(vocab, texts), 150) if arch == "bilstm" else \
            model_flop(model, vocab, texts)
        with tempfile.TemporaryDirectory() as tmp:
            write_export(model, vocab, task, "student", Path(tmp))
            export = Predictor.load(tmp, threads=1)
            fast, onnx = fast_student(model, vocab, threads=1), onnx_student(model, vocab, threads=1)
            paths = {"reference": lambda t: reference_logits(model, vocab, t, None, 512),
                     "export": lambda t: export.predict_normalized([t]).logits,
                     "onnx": lambda t: onnx.logits(t, None, 512), "fast": lambda t: fast.logits(t, None, 512)}
            rows = {}
            for name, fn in paths.items():
                fn(texts[:512])  # warm-up
                cpu, wall = best_of(lambda: fn(texts), args.repeats)
                latency = request_latency(lambda cols: fn(cols[0]), requests)
                rows[name] = {"sentences_per_s_cpu": len(texts) / cpu, "sentences_per_s_wall": len(texts) / wall,
                              "gflops_cpu": work / cpu / 1e9, **{k: latency[k] for k in
                                                                ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms")}}
                r = rows[name]
                cell = fast.cell if name == "fast" else ""
                gflops = f"{r['gflops_cpu']:8.1f}" if name in ("fast", "onnx") else " " * 8
                print(f"{arch:7s} {name:10s} {r['sentences_per_s_cpu']:18,.0f} {r['sentences_per_s_wall']:9,.0f} "
                      f"{gflops} {r['cpu_p50_ms']:10.3f} {r['cpu_p99_ms']:10.3f}  {cell}", flush=True)
        out["archs"][arch] = {"work_gflop": work / 1e9, "cell": fast.cell, "paths": rows}
    print(f"CPU: {out['cpu']}; flags {' '.join(out['cpu_flags'])}; affinity {out['affinity']}; one thread; "
          f"fp32 peak {out['peak_gflops']:.1f} GFLOP/s (torch matmul), FMA peak "
          f"{out['fma_peak_gflops'] or float('nan'):.1f} GFLOP/s (fused kernel); vocab {out['vocab']}; "
          f"{out['sentences']} training sentences ({out['mean_tokens']:.1f} tokens on average), {out['requests']} "
          f"requests ({out['mean_request_tokens']:.1f} tokens); latency columns: CPU time")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
