"""train_student / train_baseline stages: the BiLSTM of §3.1 (or another `student.arch`) trained two ways.

  student   distils the teacher's logits on the transfer set (§3.2): reads data/<task>/teacher_logits.parquet
  baseline  the same architecture, embeddings and seed, CE on the gold training set only (Table 1 row 7): reads
            data/<task>/train.parquet; it has no alpha

Both early-stop on the dev split and write models/<task>/<kind>/ and, in models/<task>/runs/train_<kind>/,
plots/<kind>_curve.csv and reports/train_<kind>.json (the report stage copies them to metrics/<task>/)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import typer

from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.config import RuntimeParams
from distill.student.params import BaselineParams, StudentParams as P
from distill.data.splits import load_split
from distill.io import UserError, get_logger, read_parquet, run_cli
from distill.layout import SYNTHETIC, TaskPaths
from distill.runtime import device, resolve_bf16, set_threads
from distill.student.train import fit
from distill.tasks import load_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("train")


class Kind(str, Enum):
    student = "student"
    baseline = "baseline"


@app.command()
def main(
    kind: Annotated[Kind, typer.Argument(help="student (distil the teacher's logits) or baseline (CE on gold labels).")],
    task: TaskName,
    embeddings: Optional[str] = typer.Option(None, help=P.help("embeddings")),
    multichannel: Optional[bool] = typer.Option(None, "--multichannel/--single-channel", help=P.help("multichannel")),
    arch: Optional[str] = typer.Option(None, help=P.help("arch")),
    hidden: Optional[int] = typer.Option(None, help=P.help("hidden")),
    filters: Optional[int] = typer.Option(None, help=P.help("filters")),
    fc: Optional[int] = typer.Option(None, help=P.help("fc")),
    alpha: Optional[float] = typer.Option(None, help=P.help("alpha")),
    bf16: Optional[str] = typer.Option(None, metavar="auto|true|false", help=P.help("bf16")),
    lr: Optional[float] = typer.Option(None, help=P.help("lr")),
    rho: Optional[float] = typer.Option(None, help=P.help("rho")),
    batch_size: Optional[int] = typer.Option(None, help=P.help("batch_size")),
    epochs: Optional[int] = typer.Option(None, help=P.help("epochs")),
    patience: Optional[int] = typer.Option(None, help=P.help("patience")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    options = dict(embeddings=embeddings, multichannel=multichannel, arch=arch, hidden=hidden, filters=filters, fc=fc,
                   lr=lr, rho=rho, batch_size=batch_size, epochs=epochs, patience=patience, seed=seed)
    if kind is Kind.student:
        cfg = config.load(P, task, params_file, alpha=alpha, bf16=bf16, **options)
    elif alpha is not None or bf16 is not None:
        raise UserError("--alpha and --bf16 apply to the student only: the baseline is CE on gold labels")
    else:
        cfg = config.load(BaselineParams, task, params_file, **options)
    if kind is Kind.student:  # fail before any data is read: bf16 asked for where it would be emulated
        resolve_bf16(cfg.bf16, device(), P.key("bf16"))
    threads = set_threads(config.load(RuntimeParams, task, params_file).threads)
    paths = TaskPaths(task, data_dir, models_dir).for_stage(f"train_{kind.value}")  # models/<task>/runs/...
    t = load_task(paths)
    src = paths.logits if kind is Kind.student else paths.train
    train_df = read_parquet(src) if kind is Kind.student else load_split(paths, t, "train")
    if train_df.empty:
        raise UserError(f"{src}: no rows; re-run the stage that writes it")
    dev_df = load_split(paths, t, t.dev_split)
    synthetic = int(train_df[SYNTHETIC].sum()) if SYNTHETIC in train_df else 0
    log.info("read %s (%d rows, %d synthetic) and the %s split (%d rows); torch threads %d", src, len(train_df),
             synthetic, t.dev_split, len(dev_df), threads)
    vectors = read_parquet(paths.teacher_vectors) if cfg.embeddings == "teacher" else None
    fit(t, train_df, dev_df, cfg, paths.model(kind.value), paths.curve(kind.value),
        paths.report(f"train_{kind.value}"), teacher_vectors=vectors)


if __name__ == "__main__":
    run_cli(app)
