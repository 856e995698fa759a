"""teacher_vectors stage: the fine-tuned teacher's static word vectors for the training vocabulary ->
data/<task>/teacher_vectors.parquet, used by the BiLSTMs when student.embeddings = teacher.

With any other embeddings it writes an empty table (the same bytes every time) without reading the teacher,
so the BiLSTMs are not re-trained when only the teacher changed."""
from __future__ import annotations

from pathlib import Path

import typer

from distill import config
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.io import get_logger, read_parquet, run_cli, write_parquet
from distill.layout import TaskPaths
from distill.student.params import TeacherVectorsParams
from distill.tasks import load_task
from distill.teacher.vectors import empty_table, teacher_word_vectors

SETTINGS = (TeacherVectorsParams,)
app = typer.Typer(add_completion=False)
log = get_logger("teacher_vectors")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         models_dir: ModelsDir = Path("models"), params_file: ParamsFile = PARAMS_FILE):
    (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
    paths = TaskPaths(task_name, data_dir, models_dir)
    task = load_task(paths)
    if cfg.embeddings != "teacher":
        table = empty_table()
        log.info("student.embeddings is %s: no teacher vectors needed", cfg.embeddings)
    else:
        train = read_parquet(paths.train, columns=list(task.text_columns))
        words = {w for c in task.text_columns for s in train[c].astype(str) for w in s.split()}
        log.info("read %s (%d rows, %d distinct words) and %s", paths.train, len(train), len(words),
                 paths.model("teacher"))
        table = teacher_word_vectors(paths.model("teacher"), words)
    write_parquet(table, paths.teacher_vectors)
    log.info("wrote %s (%d words)", paths.teacher_vectors, len(table))


if __name__ == "__main__":
    run_cli(app)
