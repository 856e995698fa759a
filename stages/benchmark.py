"""benchmark stage (§5.2): teacher vs student parameters and inference time on every training sentence ->
models/<task>/runs/benchmark/ (the report stage copies it to metrics/<task>/): speed.json (the figures that
compare runs; the student's and baseline's arch among them), reports/benchmark.json (device, CPU flags, every
path's timings) and plots/accuracy_vs_speed.csv (Table 1 x Table 2: per model its arch, dev accuracy, sentences/s
and batch-1 p50 / p99 latency, so runs of several archs plot side by side). With benchmark.precision other than
exact it also times the reduced-precision BiLSTM path and scores it and the exact path on the labelled dev rows
(under `reduced`).
As a service sees it (distill.inference.benchmark, one thread): batch-1 latency p50/p99 over the first
benchmark.latency_sentences dev examples for the exported student (models/<task>/export/student, onnxruntime),
the fast path and the teacher (speed.json `latency`, details under `service` in the report), and throughput at
batch sizes 1, 8, 64, 512 over the first benchmark.curve_sentences training examples
(plots/throughput_vs_batch.csv)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import pandas as pd
import torch
import typer

from distill.cli import DataDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.report.params import BenchmarkParams as P
from distill.data.splits import labelled, read_split, texts_of
from distill.inference.benchmark import latency_metrics, service_benchmark
from distill.inference.predictor import ServingError
from distill.io import (UserError, check_published, get_logger, publish, read_parquet, run_cli, write_csv,
                        write_json)
from distill.layout import LABEL, MODEL_KINDS, TaskPaths
from distill.report.benchmark import run_benchmark, scored_accuracy, speed_metrics, time_fast_path
from distill.runtime import device as default_device, set_threads, usable_cores
from distill.inference.kernels import lowp_build_for
from distill.student.model import load_student
from distill.tasks import load_task
from distill.teacher.model import load_teacher

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("benchmark")


@app.command()
def main(
    task: TaskName,
    batch_size: Optional[int] = typer.Option(None, help=P.help("batch_size")),
    repeats: Optional[int] = typer.Option(None, help=P.help("repeats")),
    max_sentences: Optional[int] = typer.Option(None, help=P.help("max_sentences")),
    max_length: Optional[int] = typer.Option(None, help=P.help("max_length")),
    precision: Optional[str] = typer.Option(None, help=P.help("precision")),
    latency_sentences: Optional[int] = typer.Option(None, help=P.help("latency_sentences")),
    curve_sentences: Optional[int] = typer.Option(None, help=P.help("curve_sentences")),
    skip_teacher: bool = typer.Option(False, help="Time the student only (no teacher model needed)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda. Default: cuda if available, else cpu."),
    data_dir: DataDir = Path("data"),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders (the three models, and "
                                    "<task>/export/student from the export stage)."),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, batch_size=batch_size, repeats=repeats, max_sentences=max_sentences,
                      max_length=max_length, precision=precision, latency_sentences=latency_sentences,
                      curve_sentences=curve_sentences)
    dev = torch.device(device) if device else default_device()
    check_precision_here(cfg.precision, dev)  # before any data is read
    set_threads(usable_cores())  # the paper's setting is a whole device
    paths = TaskPaths(task, data_dir, models_dir).for_stage("benchmark")  # reports: models/<task>/runs/benchmark/
    spec = load_task(paths)
    # the accuracy axis of the accuracy-vs-speed chart; read first, so a missing score fails before the timing
    scores = paths.for_stage("evaluate")
    dev_accuracy = {kind: scored_accuracy(scores.scores(kind), task, kind, spec.dev_split) for kind in MODEL_KINDS}
    dev_rows = reduced_precision_check(cfg.precision, dev, paths, spec)
    export_dir = paths.model("export") / "student"
    check_published(export_dir)
    if not (export_dir / "model.onnx").is_file():
        raise UserError(f"{export_dir}: no exported student; run the export stage first (dvc repro export@{task})")
    latency_columns = [c[:cfg.latency_sentences] for c in texts_of(read_split(paths, spec, spec.dev_split), spec)]
    df = read_parquet(paths.train, columns=list(spec.text_columns))
    if cfg.max_sentences:
        df = df.iloc[:cfg.max_sentences]
    first = df[spec.text_columns[0]].astype(str).tolist()
    second = df[spec.text_columns[1]].astype(str).tolist() if spec.is_pair else None
    log.info("read %s (%d rows%s)", paths.train, len(df), ", pairs: both sentences" if spec.is_pair else "")
    student = load_student(paths.model("student"))
    teacher = None if skip_teacher else load_teacher(paths.model("teacher"), dev)
    log.info("read %s%s", paths.model("student"), "" if skip_teacher else f" and {paths.model('teacher')}")
    report = run_benchmark(first, second, student, teacher, cfg.batch_size, cfg.repeats, cfg.max_length, dev,
                           progress=True, log=log, precision=cfg.precision, dev=dev_rows)
    report["baseline"] = time_fast_path(*load_student(paths.model("baseline")), first, second, cfg.batch_size,
                                        cfg.repeats)
    curve_columns = [first[:cfg.curve_sentences]] + ([second[:cfg.curve_sentences]] if second is not None else [])
    try:
        report["service"] = service_benchmark(export_dir, student, teacher, latency_columns, curve_columns,
                                              cfg.max_length, cfg.repeats, log)
    except ServingError as err:
        raise UserError(str(err)) from None
    report["task"] = task
    speed = speed_metrics(report, task)
    speed[task].update(latency_metrics(report["service"]))
    curve = pd.DataFrame(report["service"]["throughput_vs_batch"])[["model", "batch_size", "sentences_per_s"]]
    curve["sentences_per_s"] = curve["sentences_per_s"].round(1)
    rows = accuracy_vs_speed(report, dev_accuracy, teacher)
    with publish(paths.speed, paths.report("benchmark"), paths.plots / "accuracy_vs_speed.csv",
                 paths.plots / "throughput_vs_batch.csv") as (s, r, p, c):
        write_json(speed, s)
        write_json(report, r)
        write_csv(pd.DataFrame(rows), p)
        write_csv(curve, c)
    st = report["student"]
    log.info("student (%s): %.3f s, %.0f sentences/s%s", st["path"], st["seconds"], st["sentences_per_s"],
             f"; teacher {report['teacher']['seconds']:.1f} s; speed-up {report['speedup']:.0f}x"
             if teacher is not None else "")
    if "reduced" in report:
        r = report["reduced"]
        log.info("reduced precision (%s): %.3f s%s; dev accuracy %.4f (exact %.4f)", r["build"], r["seconds"],
                 f", speed-up {r['speedup']:.0f}x" if "speedup" in r else "", r["dev"]["accuracy"],
                 r["dev"]["exact_accuracy"])
    lat = speed[task]["latency"]
    log.info("batch 1, p99: student onnx %.3f ms, fast %.3f ms%s", lat["student_onnx"]["p99_ms"],
             lat["student_fast"]["p99_ms"], f", teacher {lat['teacher']['p99_ms']:.2f} ms "
             f"({lat['teacher_over_student_onnx_p99']:.0f}x the student's)" if "teacher" in lat else "")
    log.info("wrote %s, %s, %s and %s", paths.speed, paths.report("benchmark"), paths.plots / "accuracy_vs_speed.csv",
             paths.plots / "throughput_vs_batch.csv")


def accuracy_vs_speed(report: dict, dev_accuracy: dict, teacher) -> list[dict]:
    """plots/accuracy_vs_speed.csv's rows: per model its arch (the teacher's model type), dev accuracy, sentences/s
    at benchmark.batch_size and batch-1 latency (the exported student as served, onnxruntime on one thread; the
    teacher; none for the baseline, which is timed at batch_size only)."""
    arch = {"student": report["student"]["arch"], "baseline": report["baseline"]["arch"],
            "teacher": teacher[0].config.model_type if teacher is not None else None}
    latency = {"student": report["service"]["latency"]["student_onnx"],
               "teacher": report["service"]["latency"].get("teacher")}
    rows = []
    for kind in MODEL_KINDS:
        if kind not in report:
            continue
        served = latency.get(kind) or {}
        rows.append({"model": kind, "arch": arch[kind], "sentences_per_s": round(report[kind]["sentences_per_s"], 1),
                     "batch1_p50_ms": round(served["p50_ms"], 4) if served else None,
                     "batch1_p99_ms": round(served["p99_ms"], 4) if served else None,
                     "dev_accuracy": dev_accuracy[kind]})
    return rows


def check_precision_here(precision: str, dev: torch.device) -> None:
    """A reduced precision this device cannot run natively is a one-line error, before any data is read."""
    if precision == "exact":
        return
    if dev.type != "cpu":
        raise UserError(f"--precision {precision}: the reduced-precision student is a CPU kernel; use --device cpu")
    try:
        lowp_build_for(precision)
    except ValueError as err:
        raise UserError(f"benchmark.precision: {err}; set benchmark.precision to exact (or int8 / auto)") from None


def reduced_precision_check(precision: str, dev: torch.device, paths: TaskPaths, spec) -> tuple | None:
    """For a reduced precision: the labelled dev rows (first, second or None, labels) both paths are scored on;
    None for exact."""
    if precision == "exact":
        return None
    check_precision_here(precision, dev)
    rows = labelled(read_split(paths, spec, spec.dev_split))
    texts = texts_of(rows, spec)
    return texts[0], texts[1] if spec.is_pair else None, rows[LABEL].to_numpy()


if __name__ == "__main__":
    run_cli(app)
