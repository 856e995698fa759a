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

import torch
import typer

from distill import config, runtime
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.data.splits import labelled, read_split, texts_of
from distill.inference.benchmark import latency_metrics, service_benchmark
from distill.inference.kernels import lowp_build_for
from distill.inference.predictor import ServingError
from distill.io import (UserError, check_published, get_logger, publish, read_parquet, run_cli, write_csv,
                        write_json)
from distill.layout import LABEL, MODEL_KINDS, TaskPaths
from distill.report.benchmark import chart_tables, log_summary, run_benchmark, scored_accuracy, speed_metrics, \
    time_fast_path
from distill.report.params import BenchmarkParams
from distill.student.model import load_student
from distill.tasks import Task, load_task
from distill.teacher.model import load_teacher

SETTINGS = (BenchmarkParams,)
app = typer.Typer(add_completion=False)
log = get_logger("benchmark")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(
    task_name: TaskName,
    settings: Settings = None,
    skip_teacher: bool = typer.Option(False, help="Time the student only (no teacher model needed)."),
    device_name: Optional[str] = typer.Option(None, "--device", help="cpu or cuda. Default: cuda if available, "
                                              "else cpu."),
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
    device = torch.device(device_name) if device_name else runtime.device()
    check_precision_here(cfg.precision, device)  # before any data is read
    runtime.set_threads(runtime.usable_cores())  # the paper's setting is a whole device
    paths = TaskPaths(task_name, data_dir, models_dir).for_stage("benchmark")  # reports: models/<task>/runs/benchmark/
    task = load_task(paths)
    # the accuracy axis of the accuracy-vs-speed chart; read first, so a missing score fails before the timing
    scores = paths.for_stage("evaluate")
    dev_accuracy = {kind: scored_accuracy(scores.scores(kind), task_name, kind, task.dev_split)
                    for kind in MODEL_KINDS}
    dev_rows = reduced_precision_dev_rows(cfg.precision, device, paths, task)
    export_dir = paths.model("export") / "student"
    check_published(export_dir)
    if not (export_dir / "model.onnx").is_file():
        raise UserError(f"{export_dir}: no exported student; run the export stage first (dvc repro export@{task_name})")
    latency_columns = [c[:cfg.latency_sentences] for c in texts_of(read_split(paths, task, task.dev_split), task)]
    train_df = read_parquet(paths.train, columns=list(task.text_columns))
    if cfg.max_sentences:
        train_df = train_df.iloc[:cfg.max_sentences]
    first = train_df[task.text_columns[0]].astype(str).tolist()
    second = train_df[task.text_columns[1]].astype(str).tolist() if task.is_pair else None
    log.info("read %s (%d rows%s)", paths.train, len(train_df), ", pairs: both sentences" if task.is_pair else "")
    student = load_student(paths.model("student"))
    teacher = None if skip_teacher else load_teacher(paths.model("teacher"), device)
    log.info("read %s%s", paths.model("student"), "" if skip_teacher else f" and {paths.model('teacher')}")
    report = run_benchmark(first, second, student, teacher, cfg.batch_size, cfg.repeats, cfg.max_length, device,
                           progress=True, log=log, precision=cfg.precision, dev_rows=dev_rows)
    report["baseline"] = time_fast_path(*load_student(paths.model("baseline")), first, second, cfg.batch_size,
                                        cfg.repeats)
    curve_columns = [first[:cfg.curve_sentences]] + ([second[:cfg.curve_sentences]] if second is not None else [])
    try:
        report["service"] = service_benchmark(export_dir, student, teacher, latency_columns, curve_columns,
                                              cfg.max_length, cfg.repeats, log)
    except ServingError as err:
        raise UserError(str(err)) from None
    report["task"] = task_name
    speed = speed_metrics(report, task_name)
    speed[task_name].update(latency_metrics(report["service"]))
    accuracy_vs_speed, throughput = chart_tables(report, dev_accuracy)
    outs = (paths.speed, paths.report("benchmark"), paths.plots / "accuracy_vs_speed.csv",
            paths.plots / "throughput_vs_batch.csv")
    with publish(*outs) as (speed_tmp, report_tmp, accuracy_tmp, throughput_tmp):
        write_json(speed, speed_tmp)
        write_json(report, report_tmp)
        write_csv(accuracy_vs_speed, accuracy_tmp)
        write_csv(throughput, throughput_tmp)
    log_summary(log, report, speed[task_name])
    log.info("wrote %s, %s, %s and %s", *outs)


def check_precision_here(precision: str, device: torch.device) -> None:
    """A reduced precision this device cannot run natively is a one-line error, before any data is read."""
    if precision == "exact":
        return
    if device.type != "cpu":
        raise UserError(f"--precision {precision}: the reduced-precision student is a CPU kernel; use --device cpu")
    try:
        lowp_build_for(precision)
    except ValueError as err:
        raise UserError(f"benchmark.precision: {err}; set benchmark.precision to exact (or int8 / auto)") from None


def reduced_precision_dev_rows(precision: str, device: torch.device, paths: TaskPaths, task: Task) -> tuple | None:
    """For a reduced precision: the labelled dev rows (first, second or None, labels) both paths are scored on;
    None for exact."""
    if precision == "exact":
        return None
    check_precision_here(precision, device)
    rows = labelled(read_split(paths, task, task.dev_split))
    texts = texts_of(rows, task)
    return texts[0], texts[1] if task.is_pair else None, rows[LABEL].to_numpy()


if __name__ == "__main__":
    run_cli(app)
