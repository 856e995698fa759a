"""train_student / train_baseline stages: the BiLSTM of §3.1 (or another `student.arch`) trained two ways.

  student   distils the teacher's logits on the transfer set (§3.2): reads data/<task>/teacher_logits.parquet
            (and transfer_iterations.parquet to keep the rows of the first student.transfer_iters iterations)
  baseline  the same architecture, embeddings and seed, CE on the gold training set only (Table 1 row 7): reads
            data/<task>/train.parquet; it has no alpha

Both early-stop on the dev split and write models/<task>/<kind>/ and, in models/<task>/runs/train_<kind>/,
plots/<kind>_curve.csv and reports/train_<kind>.json (the report stage copies them to metrics/<task>/)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from distill import config, runtime
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.config import TrainRuntime
from distill.data.splits import load_split
from distill.io import UserError, get_logger, read_parquet, run_cli
from distill.layout import SYNTHETIC, TaskPaths
from distill.student.params import BaselineParams, StudentParams
from distill.student.train import first_iterations, fit
from distill.tasks import load_task

app = typer.Typer(add_completion=False)
log = get_logger("train")


class Kind(str, Enum):
    student = "student"
    baseline = "baseline"


SETTINGS = {Kind.student: (StudentParams, TrainRuntime), Kind.baseline: (BaselineParams, TrainRuntime)}


@app.command(help=__doc__, epilog=settings_help(*SETTINGS[Kind.student]))
def main(
    kind: Annotated[Kind, typer.Argument(help="student (distil the teacher's logits) or baseline (CE on gold labels).")],
    task_name: TaskName,
    settings: Settings = None,
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg, run = config.load_all(SETTINGS[kind], task_name, params_file, settings)
    if kind is Kind.student:  # fail before any data is read: bf16 asked for where it would be emulated
        runtime.resolve_bf16(cfg.bf16, runtime.device(), StudentParams.key("bf16"))
    threads = runtime.set_threads(run.threads)
    paths = TaskPaths(task_name, data_dir, models_dir).for_stage(f"train_{kind.value}")  # models/<task>/runs/...
    task = load_task(paths)
    source = paths.logits if kind is Kind.student else paths.train
    train_df = read_parquet(source) if kind is Kind.student else load_split(paths, task, "train")
    if train_df.empty:
        raise UserError(f"{source}: no rows; re-run the stage that writes it")
    if kind is Kind.student and cfg.transfer_iters >= 0:
        train_df = first_iterations(train_df, read_parquet(paths.transfer_iterations), cfg.transfer_iters)
        log.info("student.transfer_iters=%d: the originals and augment's first %d iteration(s), %d rows",
                 cfg.transfer_iters, cfg.transfer_iters, len(train_df))
    dev_df = load_split(paths, task, task.dev_split)
    synthetic = int(train_df[SYNTHETIC].sum()) if SYNTHETIC in train_df else 0
    log.info("read %s (%d rows, %d synthetic) and the %s split (%d rows); torch threads %d", source, len(train_df),
             synthetic, task.dev_split, len(dev_df), threads)
    vectors = read_parquet(paths.teacher_vectors) if cfg.embeddings == "teacher" else None
    fit(task, train_df, dev_df, cfg, paths.model(kind.value), paths.curve(kind.value),
        paths.report(f"train_{kind.value}"), teacher_vectors=vectors)


if __name__ == "__main__":
    run_cli(app)
