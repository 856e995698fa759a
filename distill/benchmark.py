"""Inference efficiency (§5.2, Table 2): parameters and wall time of teacher and student on every training sentence.

Timing protocol: each path first runs once on a small slice (warm-up: allocator, thread pools, compiled cell,
excluded), then the whole input `repeats` times; the median is reported. The teacher is measured ONCE on the whole
input (`teacher_repeats` = 1): on a CPU it takes minutes (~150 s for SST-2 with MiniLM), and its run-to-run
spread is small next to the student/teacher ratio being measured.
Student paths: "fast" (distill.fast_student: folded table + shrinking-batch recurrence, batches spread over the
cores, CPU), "onnxruntime" (the encoder as an ONNX LSTM graph, CPU), "reference" (the nn.LSTM model with packed
sequences); all are timed on the same input, their logits cross-checked against the reference, and the fastest
is the reported student. On CUDA the reference model runs on the GPU (cuDNN).
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .fast_student import FastStudent, OnnxStudent, reference_logits
from .student import StudentClassifier, count_parameters
from .vocab import Vocab

TEACHER_EMBEDDINGS = ("word_embeddings", "position_embeddings", "token_type_embeddings")
WARMUP_SENTENCES = 64


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def teacher_parameters(model: torch.nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for name, p in model.named_parameters() if any(e in name for e in TEACHER_EMBEDDINGS))
    return {"params_m": total / 1e6, "params_m_without_embeddings": (total - emb) / 1e6}


def student_parameters(model: StudentClassifier) -> dict:
    return {"params_m": count_parameters(model, True) / 1e6,
            "params_m_without_embeddings": count_parameters(model, False) / 1e6}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(fn: Callable[[], np.ndarray], repeats: int, device: torch.device) -> tuple[list[float], np.ndarray]:
    """Wall seconds of `repeats` calls of fn (the caller has already warmed it up), and the last output."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, out


def summary(times: list[float], n_sentences: int) -> dict:
    median = statistics.median(times)
    return {"seconds": median, "seconds_all": times, "sentences_per_s": n_sentences / median}


def _head(texts: Sequence[str] | None) -> list[str] | None:
    return None if texts is None else list(texts[:WARMUP_SENTENCES])


def benchmark_student(model: StudentClassifier, vocab: Vocab, first: Sequence[str], second: Sequence[str] | None,
                      batch_size: int, repeats: int, device: torch.device, progress: bool = False,
                      log=None) -> dict:
    """Time every student path on the same input, check they agree, report the fastest as the student."""
    n_sent = len(first) * (2 if second is not None else 1)
    paths: dict[str, Callable] = {}
    ref_model = model.to(device).eval()
    paths["reference"] = lambda a, b: reference_logits(ref_model, vocab, a, b, batch_size, progress)
    if device.type == "cpu":  # the fast path is a CPU implementation
        fast = FastStudent(model, vocab)
        paths["fast"] = lambda a, b: fast.logits(a, b, batch_size, progress)
        onnx = OnnxStudent(model, vocab)
        paths["onnxruntime"] = lambda a, b: onnx.logits(a, b, batch_size, progress)
    results, outputs = {}, {}
    for name, fn in paths.items():
        fn(_head(first), _head(second))  # warm-up, not timed
        times, outputs[name] = time_runs(lambda: fn(first, second), repeats, device)
        results[name] = summary(times, n_sent)
        if log:
            log.info("student %s: %.3f s (median of %d)", name, results[name]["seconds"], len(times))
    ref = outputs["reference"]
    diff = {name: float(np.abs(out - ref).max()) if len(ref) else 0.0 for name, out in outputs.items()}
    best = min(results, key=lambda k: results[k]["seconds"])
    extra = {"cell": fast.cell, "fast_threads": fast.threads} if device.type == "cpu" else {}
    return {"paths": results, "max_abs_logit_diff_vs_reference": diff, "path": best, **results[best],
            **student_parameters(model), **extra}


def benchmark_teacher(model, tokenizer, first: Sequence[str], second: Sequence[str] | None, batch_size: int,
                      device: torch.device, progress: bool = True, log=None) -> dict:
    """One timed pass over everything (see module doc), after a warm-up on a small slice."""
    from .teacher import teacher_logits

    n_sent = len(first) * (2 if second is not None else 1)
    run = lambda a, b, bar: teacher_logits(model, tokenizer, a, b, batch_size=batch_size, bf16=False,  # noqa: E731
                                           max_length=128, progress=bar)
    run(_head(first), _head(second), False)
    times, _ = time_runs(lambda: run(first, second, progress), 1, device)
    if log:
        log.info("teacher: %.1f s", times[0])
    return {**summary(times, n_sent), "teacher_repeats": 1, **teacher_parameters(model)}


def run_benchmark(first: Sequence[str], second: Sequence[str] | None, student: tuple[StudentClassifier, Vocab],
                  teacher: tuple | None, batch_size: int, repeats: int, device: torch.device,
                  progress: bool = True, log=None) -> dict:
    """The benchmark.json record. `teacher` = (model, tokenizer) already on `device`, or None to skip it."""
    first = list(first)
    second = list(second) if second is not None else None
    result = {
        "device": device_name(device), "device_type": device.type, "threads": torch.get_num_threads(),
        "batch_size": batch_size, "repeats": repeats, "examples": len(first),
        "sentences": len(first) * (2 if second is not None else 1), "pair": second is not None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "student": benchmark_student(*student, first, second, batch_size, repeats, device, progress=False, log=log),
    }
    if teacher is not None:
        result["teacher"] = benchmark_teacher(*teacher, first, second, batch_size, device, progress, log)
        s, t = result["student"], result["teacher"]
        result["speedup"] = t["seconds"] / s["seconds"]
        result["params_ratio"] = t["params_m"] / s["params_m"]
        result["params_ratio_without_embeddings"] = t["params_m_without_embeddings"] / s["params_m_without_embeddings"]
    return result
