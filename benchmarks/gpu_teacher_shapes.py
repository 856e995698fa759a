"""The paper's §5.2 inference comparison on this machine's device: the distilled student against the fine-tuned
teacher and against encoders of BERT-base and BERT-large shape (random weights: their cost, not their answers;
no such weights are available offline), all on the task's training sentences, batch 512.

The paper's V100 row (SST-2's 67,349 training sentences): BERT-large 1,060 s, BiLSTM 2.44 s (434x). Each model
here is timed over the task's sentences after a warm-up batch, and its time scaled to 67,349 sentences; the
teachers in fp32 and with bf16 autocast (where the device has bf16 natively), the student in fp32 (on a GPU:
cuDNN's LSTM through torch; on a CPU: the fast path, as the benchmark stage times it).

    python benchmarks/gpu_teacher_shapes.py --task rotten_tomatoes            # after dvc repro (or run.sh)
    python benchmarks/gpu_teacher_shapes.py --max-sentences 256 --shapes bert-base   # a quick look
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from bert_shapes import BERT_SHAPES, shaped_teacher
from distill.report.benchmark import benchmark_student, benchmark_teacher
from distill.runtime import device as default_device, device_name, native_bf16
from distill.student.model import load_student
from distill.teacher.model import load_teacher

SST2_TRAIN = 67_349
PAPER_V100 = {"bert-large": 1060.0, "bilstm": 2.44}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--models-dir", type=Path, default=Path("models"))
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--max-sentences", type=int, default=0, help="0 = every training sentence")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--shapes", nargs="*", default=list(BERT_SHAPES), choices=list(BERT_SHAPES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    device = default_device()
    train = pd.read_parquet(args.data_dir / args.task / "train.parquet")
    first = train["sentence"].astype(str).tolist()
    if args.max_sentences:
        first = first[:args.max_sentences]
    model, vocab = load_student(args.models_dir / args.task / "student")
    student = benchmark_student(model, vocab, first, None, args.batch_size, 3, device)
    teacher, tokenizer = load_teacher(args.models_dir / args.task / "teacher", device)
    teachers = {"minilm (fine-tuned)": teacher}
    for name in args.shapes:
        teachers[f"{name} shapes, random weights"] = shaped_teacher(name, tokenizer.vocab_size).to(device)
    out = {"device": device_name(device), "sentences": len(first), "batch_size": args.batch_size,
           "student": {k: student[k] for k in ("seconds", "sentences_per_s", "path")}, "teachers": {}}
    scale = SST2_TRAIN / len(first)
    print(f"{device_name(device)}; {len(first)} sentences of {args.task}, batch {args.batch_size}; seconds scaled to "
          f"SST-2's {SST2_TRAIN:,} (paper, V100: BERT-large {PAPER_V100['bert-large']} s, BiLSTM "
          f"{PAPER_V100['bilstm']} s)")
    print(f"student ({student['path']}): {student['seconds']:.3f} s = {student['sentences_per_s']:,.0f}/s; "
          f"SST-2 {student['seconds'] * scale:.2f} s")
    precisions = [False] + ([True] if native_bf16(device) else [])
    for name in list(teachers):
        tmodel = teachers.pop(name)  # freed after its turn: BERT-large's weights are 1.3 GB
        for bf16 in precisions:
            result = benchmark_teacher(tmodel, tokenizer, first, None, args.batch_size, args.max_length, device,
                                       progress=False, bf16=bf16)
            key = f"{name}, {'bf16' if bf16 else 'fp32'}"
            ratio = result["seconds"] / student["seconds"]
            out["teachers"][key] = {"seconds": result["seconds"], "sentences_per_s": result["sentences_per_s"],
                                    "params_m": result["params_m"], "sst2_seconds": result["seconds"] * scale,
                                    "over_student": ratio}
            print(f"{key:45s} {result['params_m']:7.1f}M  {result['seconds']:8.2f} s = "
                  f"{result['sentences_per_s']:9,.0f}/s; SST-2 {result['seconds'] * scale:8.1f} s; {ratio:6.1f}x "
                  f"the student", flush=True)
        del tmodel
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
