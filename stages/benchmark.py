"""benchmark stage (§5.2): teacher vs student parameters and inference time -> metrics/<task>/benchmark.json."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from distill.benchmark import cpu_cores, run_benchmark
from distill.io import UserError, get_logger, read_parquet, run_cli, write_json
from distill.params import pick, stage_params
from distill.student import load_student
from distill.tasks import get_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("benchmark")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    batch_size: Optional[int] = typer.Option(None, help="Inference batch size (paper: 512)."),
    repeats: Optional[int] = typer.Option(
        None, help="Timed full passes per student path; the median is reported. The teacher runs once."),
    max_sentences: Optional[int] = typer.Option(
        None, help="Use the first N training rows (0 = all, as in the paper)."),
    skip_teacher: bool = typer.Option(False, help="Time the student only (no teacher model needed)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda. Default: cuda if available, else cpu."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Where benchmark.json goes (<metrics-dir>/<task>/)."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    spec = get_task(task)
    p = stage_params("benchmark", task, params_file)
    batch_size = int(pick(batch_size, p, "batch_size"))
    repeats = int(pick(repeats, p, "repeats"))
    max_sentences = int(pick(max_sentences, p, "max_sentences"))
    if batch_size < 1 or repeats < 1 or max_sentences < 0:
        raise UserError("batch_size and repeats must be >= 1, max_sentences >= 0")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(cpu_cores())  # the paper's setting is a whole device

    train_path = data_dir / task / "train.parquet"
    df = read_parquet(train_path, columns=list(spec.text_columns))
    if max_sentences:
        df = df.iloc[:max_sentences]
    first = df[spec.text_columns[0]].astype(str).tolist()
    second = df[spec.text_columns[1]].astype(str).tolist() if spec.is_pair else None
    log.info("read %s (%d rows%s)", train_path, len(df), ", pairs: both sentences" if spec.is_pair else "")

    student_dir = models_dir / task / "student"
    student = load_student(student_dir)
    log.info("read %s", student_dir)
    teacher = None
    if not skip_teacher:
        from distill.teacher import load_teacher

        teacher_dir = models_dir / task / "teacher"
        teacher = load_teacher(teacher_dir, dev)
        log.info("read %s", teacher_dir)

    result = run_benchmark(first, second, student, teacher, batch_size, repeats, dev, progress=True, log=log)
    result["task"] = task
    out = metrics_dir / task / "benchmark.json"
    write_json(result, out)
    s = result["student"]
    log.info("student (%s): %.3f s, %.0f sentences/s%s", s["path"], s["seconds"], s["sentences_per_s"],
             f"; teacher {result['teacher']['seconds']:.1f} s; speed-up {result['speedup']:.0f}x"
             if teacher is not None else "")
    log.info("wrote %s", out)


if __name__ == "__main__":
    run_cli(app)
