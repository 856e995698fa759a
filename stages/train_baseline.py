"""train_baseline stage: the student's BiLSTM, embeddings and seed, CE on the gold training set only (Table 1 row 7).

Writes models/<task>/baseline/ and metrics/<task>/baseline_curve.csv.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill.data import load_split
from distill.io import get_logger, read_parquet, run_cli
from distill.params import pick, stage_params
from distill.tasks import get_task
from distill.train import fit, use_all_cores

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("train_baseline")
# The baseline shares the student's params (same architecture, embeddings, seed); alpha does not apply (CE only).
KEYS = ("embeddings", "multichannel", "hidden", "fc", "lr", "rho", "batch_size", "epochs", "patience",
        "seed")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    embeddings: Optional[str] = typer.Option(
        None, help="Initial word vectors: word2vec-google-news-300 (needs internet), glove-6b-50d, teacher, random."),
    multichannel: Optional[bool] = typer.Option(None, help="Frozen + trainable embedding copies (Kim 2014)."),
    hidden: Optional[int] = typer.Option(None, help="BiLSTM hidden units per direction (paper: 150 or 300)."),
    fc: Optional[int] = typer.Option(None, help="ReLU layer width (paper: 200 or 400)."),
    lr: Optional[float] = typer.Option(None, help="AdaDelta learning rate."),
    rho: Optional[float] = typer.Option(None, help="AdaDelta rho."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs."),
    patience: Optional[int] = typer.Option(None, help="Stop after this many epochs without a better dev accuracy."),
    seed: Optional[int] = typer.Option(None, help="Seed of initialisation and batch order."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Root of the per-task metrics folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    t = get_task(task)
    p = stage_params("student", task, params_file)
    given = {"embeddings": embeddings, "multichannel": multichannel, "hidden": hidden, "fc": fc, "lr": lr, "rho": rho,
             "batch_size": batch_size, "epochs": epochs, "patience": patience, "seed": seed}
    opts = {k: pick(given[k], p, k) for k in KEYS}
    log.info("torch threads: %d", use_all_cores())
    src = data_dir / task / "train.parquet"
    train_df = read_parquet(src)
    dev_df = load_split(data_dir, t, t.dev_split)
    log.info("read %s (%d rows) and the %s split (%d rows)", src, len(train_df), t.dev_split, len(dev_df))
    fit(t, train_df, dev_df, {**opts, "alpha": 1.0}, models_dir / task / "teacher", models_dir / task / "baseline",
        metrics_dir / task / "baseline_curve.csv", distill=False)


if __name__ == "__main__":
    run_cli(app)
