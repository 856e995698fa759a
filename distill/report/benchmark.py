"""Inference efficiency (§5.2, Table 2): parameters and wall time of teacher and student on every training sentence.

Timing protocol: each path first runs once on a small slice (warm-up: allocator, thread pools, compiled cell,
excluded), then the whole input `repeats` times; the median is reported. The teacher is measured ONCE on the whole
input (`teacher_repeats` = 1): on a CPU it takes minutes (~150 s for SST-2 with MiniLM), and its run-to-run
spread is small next to the student/teacher ratio being measured.
Student paths: "fast" (the BiLSTM: distill.inference.fast with its best cell, normally "fused": the whole
recurrence in C, batches spread over the cores; the cnn, bow and linear students: distill.inference.pooled, over
each text's own tokens, the cnn's convolution and the linear output layer folded into per-word tables; CPU),
"onnxruntime" (the BiLSTM's encoder as an ONNX LSTM graph; the other archs' whole exported graph; CPU), "reference"
(the torch model over padded batches); all are timed on the same input, their logits cross-checked against the
reference, and the fastest is the reported student. On CUDA the reference model runs on the GPU (cuDNN).
The fast path's `gflops` is its work over its seconds: for the BiLSTM the recurrence's matmul work (every token,
both directions, h W_hh^T: `recurrent_gflop`), for the others the model's multiply-adds as
distill.inference.arithmetic counts them (`model_gflop`; a folded path does most of them once per vocabulary word,
not per token, so its figure can pass the peak), beside `peak_gflops`, one core's measured fp32 peak (a large torch
matmul on one thread) and `fma_peak_gflops` (the fused kernel's build's FMA throughput on one core, where it
builds); the fast path ran on `fast_threads` threads, so `gflops_per_core` is the figure to hold against the
peaks.
Reduced precision (`benchmark.precision` other than exact; never chosen on its own): the fast path with a bf16 or
int8 recurrent product is ALSO timed, right after the exact paths in the same run, and reported apart under
`reduced` (never as the student): its timings, speed-up over the teacher, logit distance to the reference and to
the exact fast path, argmax agreement with the exact path, and both paths' dev accuracy.
"""
from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from distill.inference.arithmetic import student_macs
from distill.inference.fast import FastStudent, FastTokenizer, recurrent_flop, torch_threads
from distill.inference.kernels import compiled_fused
from distill.inference.pooled import fast_student, onnx_student
from distill.io import UserError, check_published
from distill.layout import MODEL_KINDS
from distill.runtime import cpu_vector_flags, device_name, usable_cores
from distill.student.batching import pad_rows
from distill.student.model import StudentClassifier, count_parameters
from distill.student.vocab import Vocab
from distill.teacher.model import teacher_logits

TEACHER_EMBEDDINGS = ("word_embeddings", "position_embeddings", "token_type_embeddings")
WARMUP_SENTENCES = 64


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


def fp32_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """One core's measured fp32 peak: the best rate of an n x n x n torch matmul on one thread (thread CPU time,
    so time slices lost to other processes on a shared core do not count)."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    best = 0.0
    with torch_threads(1):
        torch.mm(a, b, out=out)  # warm-up
        for _ in range(repeats):
            start = time.thread_time()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n ** 3 / max(time.thread_time() - start, 1e-9) / 1e9)
    return best


def student_tokens(vocab: Vocab, first: Sequence[str], second: Sequence[str] | None = None) -> int:
    """Recurrence steps per direction: every token, an empty text counting as one [PAD] step."""
    tokenizer = FastTokenizer(vocab)
    return sum(int(np.maximum(tokenizer.encode_batch(texts)[1], 1).sum()) for texts in (first, second)
               if texts is not None)


def model_flop(model: StudentClassifier, vocab: Vocab, first: Sequence[str], second: Sequence[str] | None = None
               ) -> int:
    """2 x the multiply-adds of every example (distill.inference.arithmetic.student_macs), an empty text one token."""
    tokenizer = FastTokenizer(vocab)
    lengths = [tokenizer.encode_batch(texts)[1] for texts in (first, second) if texts is not None]
    return 2 * sum(student_macs(model.cfg, [int(n) for n in row]) for row in zip(*lengths))


def _head(texts: Sequence[str] | None) -> list[str] | None:
    return None if texts is None else list(texts[:WARMUP_SENTENCES])


def reference_logits(model: StudentClassifier, vocab: Vocab, first: Sequence[str],
                     second: Sequence[str] | None = None, batch_size: int = 512, progress: bool = False,
                     sort: bool = True) -> np.ndarray:
    """The reference nn.LSTM model over padded batches (length-sorted when `sort`), in input order."""
    def padded(texts):
        ids, lengths = FastTokenizer(vocab).encode_batch(texts)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
        return ids, lengths, starts

    cols = [padded(first)] + ([padded(second)] if second is not None else [])
    n = len(first)
    order = np.argsort(-cols[0][1], kind="stable") if sort else np.arange(n)
    out = np.empty((n, model.cfg.num_labels), np.float32)
    model.eval()

    device = next(model.parameters()).device  # cuDNN's LSTM when the model is on a GPU

    def batch(col, rows):
        ids, lengths, starts = col
        return (torch.from_numpy(pad_rows(ids, starts[rows], lengths[rows])).to(device),
                torch.from_numpy(lengths[rows]))

    with torch.inference_mode():
        for s in tqdm(range(0, n, batch_size), desc="reference", unit="batch", disable=not progress):
            rows = order[s:s + batch_size]
            args = [t for col in cols for t in batch(col, rows)]
            out[rows] = model(*args).float().cpu().numpy()
    return out




def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of rows whose argmax (predicted class) is the same in both (1.0 for no rows)."""
    return float((a.argmax(1) == b.argmax(1)).mean()) if len(a) else 1.0


def dev_scores(exact: FastStudent, reduced: FastStudent, dev_rows: tuple, batch_size: int) -> dict:
    """Both fast paths on the labelled dev rows (first, second or None, labels): accuracies, agreement."""
    first, second, labels = dev_rows
    want, got = (fast.logits(first, second, batch_size) for fast in (exact, reduced))
    labels = np.asarray(labels)
    accuracy = lambda out: float((out.argmax(1) == labels).mean()) if len(labels) else 0.0  # noqa: E731
    return {"examples": len(labels), "accuracy": accuracy(got), "exact_accuracy": accuracy(want),
            "accuracy_change_points": 100 * (accuracy(got) - accuracy(want)),
            "argmax_agreement_with_exact": agreement(got, want),
            "max_abs_logit_diff_vs_exact": float(np.abs(got - want).max()) if len(labels) else 0.0}


def benchmark_reduced(model: StudentClassifier, vocab: Vocab, precision: str, first: Sequence[str],
                      second: Sequence[str] | None, batch_size: int, repeats: int, outputs: dict,
                      dev_rows: tuple | None, log=None) -> dict:
    """The reduced-precision fast path, timed like the others; compared with the exact paths' `outputs`."""
    reduced = FastStudent(model, vocab, precision=precision)
    reduced.logits(_head(first), _head(second), batch_size)  # warm-up, not timed
    n_sent = len(first) * (2 if second is not None else 1)
    times, got = time_runs(lambda: reduced.logits(first, second, batch_size), repeats, torch.device("cpu"))
    ref, exact = outputs["reference"], outputs["fast"]
    out = {"precision": precision, "build": reduced.precision, **summary(times, n_sent),
           "max_abs_logit_diff_vs_reference": float(np.abs(got - ref).max()) if len(ref) else 0.0,
           "max_abs_logit_diff_vs_exact": float(np.abs(got - exact).max()) if len(ref) else 0.0,
           "argmax_agreement_with_exact": agreement(got, exact)}
    if dev_rows is not None:
        out["dev"] = dev_scores(FastStudent(model, vocab), reduced, dev_rows, batch_size)
    if log:
        log.info("student fast, %s: %.3f s (median of %d)", reduced.precision, out["seconds"], len(times))
    return out


def benchmark_student(model: StudentClassifier, vocab: Vocab, first: Sequence[str], second: Sequence[str] | None,
                      batch_size: int, repeats: int, device: torch.device, progress: bool = False,
                      log=None, precision: str = "exact", dev_rows: tuple | None = None) -> dict:
    """Time every student path on the same input, check they agree, report the fastest as the student; with a
    reduced `precision`, also the reduced fast path (under "reduced"; dev_rows: see dev_scores)."""
    n_sent = len(first) * (2 if second is not None else 1)
    paths: dict[str, Callable] = {}
    # a copy on the device: the CPU paths (here and the service benchmark's) keep reading the model's CPU weights
    ref_model = (model if device.type == "cpu" else copy.deepcopy(model).to(device)).eval()
    paths["reference"] = lambda a, b: reference_logits(ref_model, vocab, a, b, batch_size, progress)
    if device.type == "cpu":  # the fast path is a CPU implementation
        fast = fast_student(model, vocab)
        paths["fast"] = lambda a, b: fast.logits(a, b, batch_size, progress)
        onnx = onnx_student(model, vocab)
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
    extra = {}
    if device.type == "cpu":
        extra = {"cell": fast.cell, "isa": fast.isa, "fast_threads": fast.threads}
        if model.cfg.arch == "bilstm":
            flop = recurrent_flop(student_tokens(vocab, first, second), model.cfg.hidden)
            extra["recurrent_gflop"] = flop / 1e9
            kernel = fast.kernel
        else:
            flop = model_flop(model, vocab, first, second)
            extra["model_gflop"] = flop / 1e9
            kernel = compiled_fused("auto")  # only for its measure of the core's FMA peak
        extra.update({"gflops": flop / results["fast"]["seconds"] / 1e9, "peak_gflops": fp32_peak_gflops()})
        extra["gflops_per_core"] = extra["gflops"] / min(fast.threads, usable_cores())
        if kernel is not None:
            extra["fma_peak_gflops"] = kernel.fma_peak_gflops()
        if precision != "exact":
            extra["reduced"] = benchmark_reduced(model, vocab, precision, first, second, batch_size, repeats,
                                                 outputs, dev_rows, log)
    return {"arch": model.cfg.arch, "paths": results, "max_abs_logit_diff_vs_reference": diff, "path": best,
            **results[best], **student_parameters(model), **extra}


def benchmark_teacher(model, tokenizer, first: Sequence[str], second: Sequence[str] | None, batch_size: int,
                      max_length: int, device: torch.device, progress: bool = True, log=None,
                      bf16: bool = False) -> dict:
    """One timed pass over everything (see module doc), after a warm-up on a small slice; fp32 unless bf16
    (autocast)."""
    n_sent = len(first) * (2 if second is not None else 1)
    run = lambda a, b, bar: teacher_logits(model, tokenizer, a, b, batch_size=batch_size, bf16=bf16,  # noqa: E731
                                           max_length=max_length, progress=bar)
    run(_head(first), _head(second), False)
    times, _ = time_runs(lambda: run(first, second, progress), 1, device)
    if log:
        log.info("teacher: %.1f s", times[0])
    return {**summary(times, n_sent), "teacher_repeats": 1, "arch": model.config.model_type,
            **teacher_parameters(model)}


def time_fast_path(model: StudentClassifier, vocab: Vocab, first: Sequence[str], second: Sequence[str] | None,
                   batch_size: int, repeats: int) -> dict:
    """The fast CPU path alone (e.g. the baseline, which has the student's architecture but its own vocabulary)."""
    fast = fast_student(model, vocab)
    fast.logits(_head(first), _head(second), batch_size)  # warm-up, not timed
    times, _ = time_runs(lambda: fast.logits(first, second, batch_size), repeats, torch.device("cpu"))
    return {**summary(times, len(first) * (2 if second is not None else 1)), "path": "fast",
            "arch": model.cfg.arch}


def run_benchmark(first: Sequence[str], second: Sequence[str] | None, student: tuple[StudentClassifier, Vocab],
                  teacher: tuple | None, batch_size: int, repeats: int, max_length: int, device: torch.device,
                  progress: bool = True, log=None, precision: str = "exact", dev_rows: tuple | None = None
                  ) -> dict:
    """The benchmark report. `teacher` = (model, tokenizer) already on `device`, or None to skip it. precision:
    "exact" (nothing more), or a reduced precision to time as well (see the module doc; CPU only)."""
    if precision != "exact" and device.type != "cpu":
        raise UserError(f"benchmark.precision {precision}: the reduced-precision path is a CPU kernel; use --device cpu")
    if precision != "exact" and student[0].cfg.arch != "bilstm":
        raise UserError(f"benchmark.precision {precision}: the reduced-precision path is the BiLSTM's fused kernel, "
                        f"and this student is a {student[0].cfg.arch}; set benchmark.precision to exact")
    first = list(first)
    second = list(second) if second is not None else None
    result = {
        "device": device_name(device), "device_type": device.type, "cpu_flags": cpu_vector_flags(),
        "threads": torch.get_num_threads(), "batch_size": batch_size, "repeats": repeats, "examples": len(first),
        "sentences": len(first) * (2 if second is not None else 1), "pair": second is not None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "student": benchmark_student(*student, first, second, batch_size, repeats, device, progress=False, log=log,
                                     precision=precision, dev_rows=dev_rows),
    }
    reduced = result["student"].pop("reduced", None)
    if reduced is not None:
        result["reduced"] = reduced
    if teacher is not None:
        result["teacher"] = benchmark_teacher(*teacher, first, second, batch_size, max_length, device, progress, log)
        s, t = result["student"], result["teacher"]
        result["speedup"] = t["seconds"] / s["seconds"]
        result["params_ratio"] = t["params_m"] / s["params_m"]
        result["params_ratio_without_embeddings"] = t["params_m_without_embeddings"] / s["params_m_without_embeddings"]
        if reduced is not None:
            reduced["speedup"] = t["seconds"] / reduced["seconds"]
    return result


def speed_metrics(result: dict, task: str) -> dict:
    """What metrics/<task>/speed.json holds: the figures that compare runs, under the task's key and each model's
    (rotten_tomatoes.student.sentences_per_s), so no name is shared with another file; device, timings and paths
    stay in the report."""
    s = result["student"]
    student = {"arch": s["arch"], "sentences_per_s": round(s["sentences_per_s"], 1),
               "params_m": round(s["params_m"], 3)}
    if "gflops" in s:
        student["gflops"] = round(s["gflops"], 1)
    out: dict = {"student": student}
    if "teacher" in result:
        t = result["teacher"]
        out = {"speedup": round(result["speedup"], 1), "params_ratio": round(result["params_ratio"], 1), **out,
               "teacher": {"sentences_per_s": round(t["sentences_per_s"], 1), "params_m": round(t["params_m"], 3)}}
    if "baseline" in result:
        out["baseline"] = {"arch": result["baseline"]["arch"],
                           "sentences_per_s": round(result["baseline"]["sentences_per_s"], 1)}
    if "reduced" in result:  # only when benchmark.precision asked for it
        r = result["reduced"]
        out["reduced"] = {"sentences_per_s": round(r["sentences_per_s"], 1)}
        if "speedup" in r:
            out["reduced"]["speedup"] = round(r["speedup"], 1)
        if "dev" in r:
            out["reduced"]["dev_accuracy"] = round(r["dev"]["accuracy"], 4)
    return {task: out}


def chart_tables(result: dict, dev_accuracy: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The benchmark's two charts: plots/accuracy_vs_speed.csv (Table 1 x Table 2: each timed model's arch, dev
    accuracy, sentences/s at benchmark.batch_size and batch-1 latency: the exported student as served, onnxruntime
    on one thread; the teacher; none for the baseline, timed at batch_size only) and plots/throughput_vs_batch.csv
    (the service benchmark's curve)."""
    latency = {"student": result["service"]["latency"]["student_onnx"],
               "teacher": result["service"]["latency"].get("teacher")}
    rows = []
    for kind in MODEL_KINDS:
        if kind not in result:
            continue
        served = latency.get(kind) or {}
        rows.append({"model": kind, "arch": result[kind].get("arch"),
                     "sentences_per_s": round(result[kind]["sentences_per_s"], 1),
                     "batch1_p50_ms": round(served["p50_ms"], 4) if served else None,
                     "batch1_p99_ms": round(served["p99_ms"], 4) if served else None,
                     "dev_accuracy": dev_accuracy[kind]})
    curve = pd.DataFrame(result["service"]["throughput_vs_batch"])[["model", "batch_size", "sentences_per_s"]]
    curve["sentences_per_s"] = curve["sentences_per_s"].round(1)
    return pd.DataFrame(rows), curve


def log_summary(log, result: dict, latency: dict) -> None:
    """The benchmark's headline figures, one log line each: the student (and teacher), the reduced precision when
    timed, batch-1 p99 latency (`latency`: speed.json's figures, inference.benchmark.latency_metrics)."""
    s = result["student"]
    log.info("student (%s): %.3f s, %.0f sentences/s%s", s["path"], s["seconds"], s["sentences_per_s"],
             f"; teacher {result['teacher']['seconds']:.1f} s; speed-up {result['speedup']:.0f}x"
             if "teacher" in result else "")
    if "reduced" in result:
        r = result["reduced"]
        log.info("reduced precision (%s): %.3f s%s; dev accuracy %.4f (exact %.4f)", r["build"], r["seconds"],
                 f", speed-up {r['speedup']:.0f}x" if "speedup" in r else "", r["dev"]["accuracy"],
                 r["dev"]["exact_accuracy"])
    p99 = latency["latency"]
    log.info("batch 1, p99: student onnx %.3f ms, fast %.3f ms%s", p99["student_onnx"]["p99_ms"],
             p99["student_fast"]["p99_ms"], f", teacher {p99['teacher']['p99_ms']:.2f} ms "
             f"({p99['teacher_over_student_onnx_p99']:.0f}x the student's)" if "teacher" in p99 else "")


def scored_accuracy(path: Path, task: str, kind: str, split: str) -> float:
    """The accuracy the evaluate stage wrote to metrics/<task>/<kind>.json (report/evaluate.metrics_document)."""
    check_published(path)
    try:
        return float(json.loads(Path(path).read_text())[task][kind][split]["accuracy"])
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the evaluate stage first") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: no {task}.{kind}.{split}.accuracy in it; re-run the evaluate stage") from None
