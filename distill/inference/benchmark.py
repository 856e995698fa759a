"""The benchmark stage's service view (§5.2 measures throughput at batch 512; a service answers one request at a
time): batch-1 latency percentiles and throughput against batch size, on ONE thread, for

    student_onnx   the exported student (models/<task>/export/student) through distill.inference.predictor:
                   onnxruntime, intra_op_num_threads 1, sequential execution, every graph optimisation
    student_fast   the student's fast CPU path, 1 thread: distill.inference.fast's FastStudent for the BiLSTM (its
                   best cell, normally the fused C recurrence), distill.inference.pooled's for the other archs
    teacher        the fine-tuned teacher, fp32, torch on 1 thread (or its device when that is a GPU)

All three take the task's texts as stored in data/<task>/*.parquet (already normalised); the export is also timed
from raw text through its own text handling (`student_onnx_with_text_handling`: lower-casing and nltk's Treebank
tokenizer), which is what a service calling Predictor.predict pays.
"""
from __future__ import annotations

import onnxruntime as ort

from distill.inference.arithmetic import request_arithmetic
from distill.inference.latency import BATCH_SIZES, request_latency, throughput_by_batch
from distill.inference.predictor import Predictor
from distill.runtime import cpu_name, cpu_vector_flags
from distill.inference.fast import torch_threads
from distill.inference.pooled import fast_student
from distill.teacher.model import teacher_logits

LATENCY_PATHS = ("student_onnx", "student_fast", "teacher")


def service_benchmark(export_dir, student: tuple, teacher: tuple | None, latency_columns: list[list[str]],
                      curve_columns: list[list[str]], max_length: int, repeats: int = 1, log=None) -> dict:
    """{"latency": {path: percentiles}, "throughput_vs_batch": [rows], ...}; see the module doc."""
    model, vocab = student
    pair = len(latency_columns) == 2
    with torch_threads(1):
        onnx = Predictor.load(export_dir, threads=1)
        fast = fast_student(model, vocab, threads=1)
        paths = {"student_onnx": onnx.predict_normalized,
                 "student_fast": lambda cols: fast.logits(cols[0], cols[1] if pair else None, 512)}
        if teacher is not None:
            tmodel, tok = teacher
            paths["teacher"] = lambda cols: teacher_logits(tmodel, tok, cols[0], cols[1] if pair else None,
                                                           batch_size=512, bf16=False, max_length=max_length,
                                                           progress=False)
        latency = {}
        for name, fn in paths.items():
            latency[name] = request_latency(fn, latency_columns)
            if log:
                log.info("batch 1, %s: p50 %.3f ms, p99 %.3f ms (%d requests)", name, latency[name]["p50_ms"],
                         latency[name]["p99_ms"], latency[name]["requests"])
        raw = (lambda cols: onnx.predict_pairs(*cols)) if pair else (lambda cols: onnx.predict(cols[0]))
        latency["student_onnx_with_text_handling"] = request_latency(raw, latency_columns)
        curve = []
        for name, fn in paths.items():
            rows = throughput_by_batch(fn, curve_columns, BATCH_SIZES, 1 if name == "teacher" else repeats)
            curve += [{"model": name, **row} for row in rows]
            if log:
                log.info("throughput, %s: %s", name, ", ".join(f"batch {r['batch_size']} {r['sentences_per_s']:.0f}/s"
                                                             for r in rows))
    record = {
        "arch": model.cfg.arch, "threads": 1, "cpu": cpu_name(), "cpu_flags": cpu_vector_flags(),
        "latency_examples": len(latency_columns[0]), "curve_examples": len(curve_columns[0]), "pair": pair,
        "onnxruntime": {"version": ort.__version__, "intra_op_num_threads": 1, "inter_op_num_threads": 1,
                        "execution_mode": "sequential", "graph_optimization_level": "all"},
        "fast": {"cell": fast.cell, "isa": fast.isa},
        "teacher_device": str(next(teacher[0].parameters()).device) if teacher is not None else None,
        "latency": latency, "throughput_vs_batch": curve,
    }
    if teacher is not None:
        # the bound on the latency ratio: the work each model does per request (distill.inference.arithmetic)
        record["arithmetic"] = request_arithmetic(model.cfg, teacher[0].config, teacher[1], latency_columns,
                                                  max_length)
        record["teacher_over_student_onnx_p99"] = latency["teacher"]["p99_ms"] / latency["student_onnx"]["p99_ms"]
        record["teacher_over_student_fast_p99"] = latency["teacher"]["p99_ms"] / latency["student_fast"]["p99_ms"]
    return record


def latency_metrics(record: dict) -> dict:
    """speed.json's part: {"latency": {path: {"p50_ms", "p99_ms", "cpu_p99_ms"}, "teacher_over_student_onnx_p99":
    x, "teacher_over_student_macs": y}} (numbers only; flattened by DVC as <task>.latency.student_onnx.p99_ms);
    p50/p99 are wall time; y is the work ratio per request that bounds x."""
    out: dict = {name: {key: round(record["latency"][name][key], 4) for key in ("p50_ms", "p99_ms", "cpu_p99_ms")}
                 for name in LATENCY_PATHS if name in record["latency"]}
    if "teacher_over_student_onnx_p99" in record:
        out["teacher_over_student_onnx_p99"] = round(record["teacher_over_student_onnx_p99"], 1)
        out["teacher_over_student_macs"] = round(record["arithmetic"]["teacher_over_student_macs"], 1)
    return {"latency": out}
