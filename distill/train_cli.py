"""The command line shared by the train_student and train_baseline stages: one option table, two thin scripts.

Both stages train the same BiLSTM with the same `student` params; they differ only in what they learn from
(the teacher's logits on the transfer set vs the gold training set) and in where they write. The options are
built into one Typer signature here so each help text exists once.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from .data import load_split
from .io import get_logger, read_parquet
from .params import pick, stage_params
from .tasks import get_task
from .train import fit, use_all_cores

# (type, help) per `student` param; None on the command line means "take params.yaml's value".
STUDENT_OPTIONS = {
    "embeddings": (Optional[str], "Initial word vectors: word2vec-google-news-300 (needs internet), glove-6b-50d, "
                                  "teacher, random."),
    "multichannel": (Optional[bool], "Frozen + trainable embedding copies (Kim 2014)."),
    "hidden": (Optional[int], "BiLSTM hidden units per direction (paper: 150 or 300)."),
    "fc": (Optional[int], "ReLU layer width (paper: 200 or 400)."),
    "alpha": (Optional[float], "L = alpha*CE + (1-alpha)*MSE on logits (paper: 0)."),
    "lr": (Optional[float], "AdaDelta learning rate."),
    "rho": (Optional[float], "AdaDelta rho."),
    "batch_size": (Optional[int], "Training batch size."),
    "epochs": (Optional[int], "Maximum epochs."),
    "patience": (Optional[int], "Stop after this many epochs without a better dev accuracy."),
    "seed": (Optional[int], "Seed of initialisation and batch order."),
}
PATH_OPTIONS = {
    "data_dir": (Path("data"), "Root of the per-task data folders."),
    "models_dir": (Path("models"), "Root of the per-task model folders."),
    "metrics_dir": (Path("metrics"), "Root of the per-task metrics folders."),
    "params_file": (Path("params.yaml"), "Where option defaults come from."),
}


def _signature(keys: list[str]) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("task", kw, annotation=str,
                                default=typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."))]
    params += [inspect.Parameter(k, kw, annotation=STUDENT_OPTIONS[k][0],
                                 default=typer.Option(None, help=STUDENT_OPTIONS[k][1])) for k in keys]
    params += [inspect.Parameter(k, kw, annotation=Path, default=typer.Option(default, help=text))
               for k, (default, text) in PATH_OPTIONS.items()]
    return inspect.Signature(params)


def train_app(kind: str, doc: str | None) -> typer.Typer:
    """The Typer app of stages/train_<kind>.py, kind = "student" (distil logits) or "baseline" (CE on gold)."""
    if kind not in ("student", "baseline"):
        raise ValueError(f"kind must be student or baseline, not {kind!r}")
    distill = kind == "student"
    # alpha does not apply to the baseline: it is CE only (alpha = 1)
    keys = [k for k in STUDENT_OPTIONS if distill or k != "alpha"]
    log = get_logger(f"train_{kind}")
    app = typer.Typer(add_completion=False, help=doc)

    def main(**given):
        task, data_dir, models_dir, metrics_dir = (given[k] for k in ("task", "data_dir", "models_dir", "metrics_dir"))
        t = get_task(task)
        p = stage_params("student", task, given["params_file"])
        opts = {k: pick(given[k], p, k) for k in keys}
        if not distill:
            opts["alpha"] = 1.0
        log.info("torch threads: %d", use_all_cores())
        src = data_dir / task / ("teacher_logits.parquet" if distill else "train.parquet")
        train_df = read_parquet(src)
        dev_df = load_split(data_dir, t, t.dev_split)
        synthetic = int(train_df["synthetic"].sum()) if "synthetic" in train_df else 0
        log.info("read %s (%d rows, %d synthetic) and the %s split (%d rows)", src, len(train_df), synthetic,
                 t.dev_split, len(dev_df))
        fit(t, train_df, dev_df, opts, models_dir / task / "teacher", models_dir / task / kind,
            metrics_dir / task / f"{kind}_curve.csv", distill=distill)

    main.__signature__ = _signature(keys)  # Typer reads the options from the signature
    main.__doc__ = doc
    app.command()(main)
    return app
