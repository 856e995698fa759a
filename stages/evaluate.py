"""evaluate stage: teacher, baseline and student on the task's labelled evaluation splits.

Writes metrics/<task>/{teacher,baseline,student}.json ({"<split>": {"accuracy", "n"[, "f1"]}}; the BiLSTMs also
get "params": {"total", "without_embeddings"}) and metrics/<task>/confusion/{teacher,baseline,student}.csv
(actual, predicted over the dev split) for `dvc plots`.
"""
from __future__ import annotations

from pathlib import Path

import typer

from distill.data import load_split
from distill.evaluate import evaluate, student_predictor, teacher_predictor, write_confusion
from distill.io import UserError, get_logger, run_cli, write_json
from distill.tasks import get_task
from distill.train import use_all_cores

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("evaluate")
MODELS = ("teacher", "baseline", "student")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    teacher_batch_size: int = typer.Option(128, help="Teacher inference batch size (does not change results)."),
    student_batch_size: int = typer.Option(512, help="BiLSTM inference batch size (does not change results)."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Root of the per-task metrics folders."),
):
    t = get_task(task)
    use_all_cores()
    splits = {}
    for split in t.eval_splits:
        try:
            splits[split] = load_split(data_dir, t, split)
        except UserError as err:
            if "no rows for split" not in str(err):
                raise
            log.warning("skipping split %s: %s", split, err)
        else:
            log.info("read split %s (%d rows, %d labelled)", split, len(splits[split]),
                     int((splits[split]["label"] >= 0).sum()))
    confusion = {}
    for name in MODELS:
        path = models_dir / task / name
        # fp32 teacher here: metrics must not depend on the hardware's bf16 support
        predict, info = (teacher_predictor(path, teacher_batch_size) if name == "teacher"
                         else student_predictor(path, student_batch_size))
        if info["num_labels"] != t.num_labels:
            raise UserError(f"{path}: model has {info['num_labels']} labels, task {task} has {t.num_labels}")
        metrics, confusion[name] = evaluate(predict, t, splits)
        if not metrics:
            raise UserError(f"{task}: no labelled rows in any of {', '.join(t.eval_splits)}")
        if "params" in info:
            metrics["params"] = info["params"]
        out = metrics_dir / task / f"{name}.json"
        write_json(metrics, out)
        log.info("%s: %s -> wrote %s", name, {k: v for k, v in metrics.items() if k != "params"}, out)
    write_confusion(confusion, metrics_dir / task / "confusion")
    log.info("wrote %s (%s)", metrics_dir / task / "confusion", ", ".join(f"{m}.csv" for m in MODELS))


if __name__ == "__main__":
    run_cli(app)
