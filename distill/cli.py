"""What every stage CLI shares: the options as Typer annotations (one definition, one help text) and the `--set`
option that overrides any setting the stage reads, listed in `--help` from the stage's params classes.

    SETTINGS = (AugmentParams,)

    @app.command(help=__doc__, epilog=settings_help(*SETTINGS))
    def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
             params_file: ParamsFile = PARAMS_FILE):
        (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from distill.config import PARAMS_FILE  # noqa: F401  (re-exported: the stages' --params-file default)

TaskName = Annotated[str, typer.Option("--task", help="Task name: an entry of tasks: / datasets: in the params file.")]
DataDir = Annotated[Path, typer.Option("--data-dir", help="Root of the per-task data folders.")]
ModelsDir = Annotated[Path, typer.Option("--models-dir", help="Root of the per-task model folders (and of each "
                                                             "task's runs/, the stages' reports).")]
MetricsDir = Annotated[Path, typer.Option("--metrics-dir", help="Root of the per-task metrics folders.")]
ParamsFile = Annotated[Path, typer.Option("--params-file", help="Where the settings' values come from.")]
Settings = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Override a setting for this run (repeatable): KEY one of the params.yaml "
    "keys listed below, VALUE written as in params.yaml (YAML).")]


def settings_help(*classes: type) -> str:
    """The `--help` epilog: every params.yaml key the stage reads, with its help text."""
    lines = [f"{cls.key(f.name)}: {f.metadata['help']}" for cls in classes for f in dataclasses.fields(cls)]
    return "\n".join(["Settings (--set KEY=VALUE; otherwise params.yaml's value):", *dict.fromkeys(lines)])
