"""The options every stage CLI shares, as Typer annotations: one definition, one help text.

    def main(task: TaskName, data_dir: DataDir = Path("data"), params_file: ParamsFile = PARAMS_FILE): ...
"""
from __future__ import annotations

from pathlib import Path

from typing import Annotated

import typer

from distill.config import PARAMS_FILE  # noqa: F401  (re-exported: the stages' --params-file default)

TaskName = Annotated[str, typer.Option(
    "--task", help="Task name (an entry of tasks:/datasets:); its shape is read from data/<task>/task.json.")]
DataDir = Annotated[Path, typer.Option("--data-dir", help="Root of the per-task data folders.")]
ModelsDir = Annotated[Path, typer.Option("--models-dir", help="Root of the per-task model folders (and of each "
                                                             "task's runs/, the stages' reports).")]
MetricsDir = Annotated[Path, typer.Option("--metrics-dir", help="Root of the per-task metrics folders.")]
ParamsFile = Annotated[Path, typer.Option("--params-file", help="Where option defaults come from.")]
