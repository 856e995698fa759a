"""teacher_vectors stage: the fine-tuned teacher's static word vectors for the training vocabulary ->
data/<task>/teacher_vectors.parquet, used by the BiLSTMs when student.embeddings = teacher.

With any other embeddings it writes an empty table (the same bytes every time) without reading the teacher,
so the BiLSTMs are not re-trained when only the teacher changed."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import typer

from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.student.params import TeacherVectorsParams as P
from distill.io import get_logger, read_parquet, run_cli, write_parquet
from distill.layout import TaskPaths
from distill.tasks import load_task
from distill.teacher.vectors import empty_table, teacher_word_vectors

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("teacher_vectors")


@app.command()
def main(
    task: TaskName,
    embeddings: Optional[str] = typer.Option(None, help=P.help("embeddings")),
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, embeddings=embeddings)
    paths = TaskPaths(task, data_dir, models_dir)
    spec = load_task(paths)
    if cfg.embeddings != "teacher":
        table = empty_table()
        log.info("student.embeddings is %s: no teacher vectors needed", cfg.embeddings)
    else:
        train = read_parquet(paths.train, columns=list(spec.text_columns))
        words = {w for c in spec.text_columns for s in train[c].astype(str) for w in s.split()}
        log.info("read %s (%d rows, %d distinct words) and %s", paths.train, len(train), len(words),
                 paths.model("teacher"))
        table = teacher_word_vectors(paths.model("teacher"), words)
    write_parquet(table, paths.teacher_vectors)
    log.info("wrote %s (%d words)", paths.teacher_vectors, len(table))


if __name__ == "__main__":
    run_cli(app)
