"""Benchmark (not a test): ways to compute the teacher's logits, on one task's fine-tuned teacher and a seeded
sample of its transfer set, in one run on one machine.

- naive: original order, each batch of 512 padded to its longest sentence, fp32 (what a plain loop does);
- torch fp32 / torch bf16: the teacher_logits stage's path (length-sorted batches, dynamic padding,
  inference_mode; bf16 autocast only where the CPU has AVX512-BF16/AMX);
- onnxruntime fp32, and int8 dynamic quantization (per tensor and per channel) of the same exported graph, run on
  the same length-sorted batches.

Each is scored against torch fp32: rows/s, speed-up, argmax agreement and the largest logit difference (#15 asks
int8 for >= 99.5 % agreement). Needs data/<task>/transfer.parquet and models/<task>/teacher (dvc repro up to
teacher_logits). Run from the repo root, e.g.:
    taskset -c 1 python benchmarks/teacher_logits.py --task rotten_tomatoes --n 4096 --threads 1
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.runtime import cpu_name, cpu_supports_bf16, cpu_vector_flags
from distill.teacher.model import encode, length_sorted_batches, load_teacher, pad_batch, teacher_logits


def naive(model, tok, sents, batch_size=512, max_length=128) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(sents), batch_size):
            enc = tok(sents[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            out.append(model(**enc).logits.numpy())
    return np.concatenate(out)


def export_onnx(model, tok, folder: Path) -> dict[str, Path]:
    """The teacher as an ONNX graph (dynamic batch and length), plus its int8 dynamic quantizations."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tok(["a sample sentence", "another"], padding=True, return_tensors="pt")
    paths = {"onnxruntime fp32": folder / "teacher.onnx"}
    torch.onnx.export(model, tuple(example[k] for k in names), paths["onnxruntime fp32"], input_names=names,
                      output_names=["logits"], dynamic_axes={**{k: {0: "batch", 1: "tokens"} for k in names},
                                                             "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    for label, per_channel in (("per tensor", False), ("per channel", True)):
        paths[f"onnxruntime int8 {label}"] = folder / f"teacher_int8_{per_channel}.onnx"
        quantize_dynamic(paths["onnxruntime fp32"], paths[f"onnxruntime int8 {label}"],
                         weight_type=QuantType.QInt8, per_channel=per_channel)
    return paths


def ort_logits(path: Path, tok, sents, batch_size: int, max_length: int, threads: int, num_labels: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    items = encode(tok, sents, None, max_length)
    out = np.zeros((len(sents), num_labels), np.float32)
    for idx in length_sorted_batches([len(ids) for ids, _ in items], batch_size):
        batch = pad_batch([items[i] for i in idx], tok.pad_token_id or 0, with_types=True)  # the stage's padding
        out[idx] = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
    return out


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="rotten_tomatoes", help="task whose teacher and transfer set are used")
    ap.add_argument("--n", type=int, default=4096, help="transfer-set rows (a seeded sample)")
    ap.add_argument("--batch-size", type=int, default=128, help="the stage's batch size (runtime.logits_batch_size)")
    ap.add_argument("--max-length", type=int, default=128, help="teacher.max_length")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    ap.add_argument("--skip-naive", action="store_true", help="leave out the naive loop (the slowest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_teacher(Path("models") / args.task / "teacher", "cpu")
    transfer = pd.read_parquet(Path("data") / args.task / "transfer.parquet", columns=["sentence"])
    sents = transfer["sentence"].sample(min(args.n, len(transfer)), random_state=0).astype(str).tolist()
    labels = model.config.num_labels
    print(f"{cpu_name()}; flags {' '.join(cpu_vector_flags())}; {args.threads} thread(s); {len(sents)} rows of "
          f"data/{args.task}/transfer.parquet", flush=True)
    stage = lambda bf16: teacher_logits(model, tok, sents, batch_size=args.batch_size,  # noqa: E731
                                        max_length=args.max_length, bf16=bf16, progress=False)
    runs = {"torch fp32": lambda: stage(False)}
    if cpu_supports_bf16():
        runs["torch bf16"] = lambda: stage(True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in export_onnx(model, tok, Path(tmp)).items():
            runs[name] = lambda path=path: ort_logits(path, tok, sents, args.batch_size, args.max_length,
                                                       args.threads, labels)
        if not args.skip_naive:
            runs["naive loop fp32"] = lambda: naive(model, tok, sents, max_length=args.max_length)
        results = {}
        for name, fn in runs.items():
            results[name] = timed(fn)
            print(f"  {name}: {results[name][1]:.1f} s", flush=True)
    ref, ref_s = results["torch fp32"]
    print(f"{'path':28} {'rows/s':>8} {'vs torch fp32':>14} {'argmax agree':>13} {'max |diff|':>11}")
    for name, (out, seconds) in results.items():
        agree = 100 * float((out.argmax(1) == ref.argmax(1)).mean())
        print(f"{name:28} {len(sents) / seconds:8.1f} {ref_s / seconds:13.2f}x {agree:12.2f}% "
              f"{float(np.abs(out - ref).max()):11.4f}")


if __name__ == "__main__":
    main()
