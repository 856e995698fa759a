"""benchmark stage (§5.2): teacher vs student parameters and inference time on every training sentence ->
models/<task>/runs/benchmark/ (the report stage copies it to metrics/<task>/): speed.json (the figures that
compare runs), reports/benchmark.json (device, CPU flags, every path's timings) and plots/accuracy_vs_speed.csv
(Table 1 x Table 2: dev accuracy against sentences/s for teacher, student and baseline). With benchmark.precision other than exact it also times
the reduced-precision student path and scores it and the exact path on the labelled dev rows (under `reduced`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, never an installed copy

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402

from distill import config  # noqa: E402
from distill.report.params import BenchmarkParams as P  # noqa: E402
from distill.data.splits import labelled, read_split, texts_of  # noqa: E402
from distill.io import UserError, get_logger, publish, read_parquet, run_cli, write_csv, write_json  # noqa: E402
from distill.layout import LABEL, MODEL_KINDS, TaskPaths  # noqa: E402
from distill.report.benchmark import run_benchmark, scored_accuracy, speed_metrics, time_fast_path  # noqa: E402
from distill.runtime import device as default_device, set_threads, usable_cores  # noqa: E402
from distill.inference.kernels import lowp_build_for  # noqa: E402
from distill.student.model import load_student  # noqa: E402
from distill.tasks import load_task  # noqa: E402
from distill.teacher.model import load_teacher  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("benchmark")


@app.command()
def main(
    task: str = typer.Option(..., help="Task name (an entry of tasks:/datasets:); its shape is read from data/<task>/task.json."),
    batch_size: Optional[int] = typer.Option(None, help=P.help("batch_size")),
    repeats: Optional[int] = typer.Option(None, help=P.help("repeats")),
    max_sentences: Optional[int] = typer.Option(None, help=P.help("max_sentences")),
    max_length: Optional[int] = typer.Option(None, help=P.help("max_length")),
    precision: Optional[str] = typer.Option(None, help=P.help("precision")),
    skip_teacher: bool = typer.Option(False, help="Time the student only (no teacher model needed)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda. Default: cuda if available, else cpu."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    cfg = config.load(P, task, params_file, batch_size=batch_size, repeats=repeats, max_sentences=max_sentences,
                      max_length=max_length, precision=precision)
    dev = torch.device(device) if device else default_device()
    check_precision_here(cfg.precision, dev)  # before any data is read
    set_threads(usable_cores())  # the paper's setting is a whole device
    paths = TaskPaths(task, data_dir, models_dir).for_stage("benchmark")  # reports: models/<task>/runs/benchmark/
    spec = load_task(paths)
    # the accuracy axis of the accuracy-vs-speed chart; read first, so a missing score fails before the timing
    scores = paths.for_stage("evaluate")
    dev_accuracy = {kind: scored_accuracy(scores.scores(kind), task, kind, spec.dev_split) for kind in MODEL_KINDS}
    dev_rows = reduced_precision_check(cfg.precision, dev, paths, spec)
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
    report["task"] = task
    speed = speed_metrics(report, task)
    rows = [{"model": kind, "sentences_per_s": round(report[kind]["sentences_per_s"], 1),
             "dev_accuracy": dev_accuracy[kind]} for kind in MODEL_KINDS if kind in report]
    with publish(paths.speed, paths.report("benchmark"), paths.plots / "accuracy_vs_speed.csv") as (s, r, p):
        write_json(speed, s)
        write_json(report, r)
        write_csv(pd.DataFrame(rows), p)
    st = report["student"]
    log.info("student (%s): %.3f s, %.0f sentences/s%s", st["path"], st["seconds"], st["sentences_per_s"],
             f"; teacher {report['teacher']['seconds']:.1f} s; speed-up {report['speedup']:.0f}x"
             if teacher is not None else "")
    if "reduced" in report:
        r = report["reduced"]
        log.info("reduced precision (%s): %.3f s%s; dev accuracy %.4f (exact %.4f)", r["build"], r["seconds"],
                 f", speed-up {r['speedup']:.0f}x" if "speedup" in r else "", r["dev"]["accuracy"],
                 r["dev"]["exact_accuracy"])
    log.info("wrote %s, %s and %s", paths.speed, paths.report("benchmark"), paths.plots / "accuracy_vs_speed.csv")


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
