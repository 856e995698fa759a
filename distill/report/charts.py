"""The report stage's chart files: for each chart `dvc plots` draws, one CSV per task,
metrics/charts/<chart>/<task>.csv, holding the rows of every metrics/<task>/plots/ file the chart shows, one after
the other.

Chart first, task second: dvc.yaml's top-level plots take no foreach, but a plot whose id is a folder draws each file
under it with the folder's settings, so each chart is defined once and covers every task that has a file. The
templates tell the models apart by the `model` column; a file without one (a confusion matrix) gets its name there."""
from __future__ import annotations

import csv
from pathlib import Path

from distill.layout import TaskPaths

# chart -> the files it draws, relative to metrics/<task>/, in the order their rows are written
SOURCES: dict[str, tuple[str, ...]] = {
    "dev_accuracy": ("plots/teacher_curve.csv", "plots/student_curve.csv", "plots/baseline_curve.csv"),
    "accuracy_vs_speed": ("plots/accuracy_vs_speed.csv",),
    "throughput_vs_batch": ("plots/throughput_vs_batch.csv",),
    # teacher and baseline minimise cross-entropy on gold labels, the student MSE on logits: two charts
    "cross_entropy_loss": ("plots/teacher_loss.csv", "plots/baseline_curve.csv"),
    "distillation_loss": ("plots/student_curve.csv",),
    "confusion": ("plots/confusion/teacher.csv", "plots/confusion/student.csv", "plots/confusion/baseline.csv"),
}
CHARTS = tuple(SOURCES)
MODEL = "model"


def chart_path(paths: TaskPaths, name: str) -> Path:
    """metrics/charts/<name>/<task>.csv: the rows `dvc plots` draws as the task's chart `name`. (Here, not in
    distill/layout.py, which every stage depends on: only the report stage writes these files.)"""
    if name not in SOURCES:
        raise ValueError(f"{name!r} is not one of {CHARTS}")
    return Path(paths.metrics_root) / "charts" / name / f"{paths.task}.csv"


def charts_of(files: dict[Path, Path]) -> dict[str, list[Path]]:
    """{chart: the files (from runs.collect: path relative to metrics/<task>/ -> file) it draws}, for the charts
    with at least one of their files (a run from before a chart existed has none: that chart is not written)."""
    charts = {name: [files[Path(rel)] for rel in sources if Path(rel) in files] for name, sources in SOURCES.items()}
    return {name: sources for name, sources in charts.items() if sources}


def write_chart(sources: list[Path], out: Path) -> None:
    """The rows of `sources` one after the other under the union of their columns (in order of first appearance;
    a column a file lacks is left empty). Values are copied as text, digit for digit."""
    tables = []
    for source in sources:
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and MODEL not in rows[0]:
            rows = [{MODEL: source.stem, **row} for row in rows]
        tables.append(rows)
    columns = list(dict.fromkeys(column for rows in tables for row in rows[:1] for column in row))
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for rows in tables:
            writer.writerows(rows)
