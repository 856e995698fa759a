"""evaluate stage: teacher, baseline and student on the task's labelled evaluation splits.

Writes metrics/<task>/{teacher,baseline,student}.json ({"<split>": {"accuracy", "n"[, "f1"]}}; the BiLSTMs also
get "params": {"total", "without_embeddings"}) and metrics/<task>/plots/confusion/{teacher,baseline,student}.csv
(actual, predicted over the dev split) for `dvc plots`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, never an installed copy

import typer  # noqa: E402

from distill import config  # noqa: E402
from distill.config import RuntimeParams as R  # noqa: E402
from distill.report.params import EvaluateParams as P  # noqa: E402
from distill.data.splits import load_split, read_split  # noqa: E402
from distill.io import UserError, get_logger, publish, run_cli, write_json  # noqa: E402
from distill.layout import LABEL, MODEL_KINDS, TaskPaths  # noqa: E402
from distill.report.evaluate import evaluate, student_predictor, teacher_predictor, write_confusion  # noqa: E402
from distill.runtime import set_threads  # noqa: E402
from distill.tasks import get_task  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("evaluate")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    max_length: Optional[int] = typer.Option(None, help=P.help("max_length")),
    eval_batch_size: Optional[int] = typer.Option(None, help=R.help("eval_batch_size")),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Root of the per-task metrics folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    t = get_task(task)
    cfg = config.load(P, task, params_file, max_length=max_length)
    run = config.load(R, task, params_file, eval_batch_size=eval_batch_size)
    set_threads(run.threads)
    paths = TaskPaths(task, data_dir, models_dir, metrics_dir)
    splits = {t.dev_split: load_split(paths, t, t.dev_split)}  # model selection used it: it must be there
    for split in t.eval_splits[1:]:
        df = read_split(paths, t, split)
        if df.empty:
            log.warning("skipping split %s: no rows in %s", split, paths.split(split))
            continue
        splits[split] = df
    for split, df in splits.items():
        log.info("read split %s (%d rows, %d labelled)", split, len(df), int((df[LABEL] >= 0).sum()))
    scores, confusion = {}, {}
    for kind in MODEL_KINDS:
        path = paths.model(kind)
        predict, info = (teacher_predictor(path, run.eval_batch_size, cfg.max_length) if kind == "teacher"
                         else student_predictor(path, run.eval_batch_size))
        if info["num_labels"] != t.num_labels:
            raise UserError(f"{path}: model has {info['num_labels']} labels, task {task} has {t.num_labels}")
        scores[kind], confusion[kind] = evaluate(predict, t, splits)
        if not scores[kind]:
            raise UserError(f"{task}: no labelled rows in any of {', '.join(t.eval_splits)}")
        if "params" in info:
            scores[kind]["params"] = info["params"]
        log.info("%s: %s", kind, {k: v for k, v in scores[kind].items() if k != "params"})
    outs = [paths.scores(kind) for kind in MODEL_KINDS]
    with publish(*outs, paths.confusion) as (*score_tmps, confusion_tmp):
        for kind, tmp in zip(MODEL_KINDS, score_tmps):
            write_json(scores[kind], tmp)
        write_confusion(confusion, confusion_tmp)
    log.info("wrote %s and %s", ", ".join(map(str, outs)), paths.confusion)


if __name__ == "__main__":
    run_cli(app)
