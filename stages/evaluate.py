"""evaluate stage: teacher, baseline and student on the task's labelled evaluation splits.

Writes, in models/<task>/runs/evaluate/ (the report stage copies it to metrics/<task>/),
{teacher,baseline,student}.json ({"<task>": {"<model>": {"<split>": {"accuracy"[, "f1"]
[, "macro_f1"]}}}}; the BiLSTMs also get "params": {"total", "without_embeddings"}),
reports/evaluate.json (row counts, per-class precision / recall / F1) and
plots/confusion/{teacher,baseline,student}.csv (actual, predicted label names over the dev split).
"""
from __future__ import annotations

from pathlib import Path

import typer

from distill import config
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.config import EvalRuntime
from distill.data.splits import load_split, read_split
from distill.io import UserError, get_logger, publish, run_cli, write_json
from distill.layout import LABEL, MODEL_KINDS, TaskPaths
from distill.report.evaluate import evaluate, metrics_document, student_predictor, teacher_predictor, write_confusion
from distill.report.params import EvaluateParams
from distill.runtime import set_threads
from distill.tasks import load_task

SETTINGS = (EvaluateParams, EvalRuntime)
app = typer.Typer(add_completion=False)
log = get_logger("evaluate")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         models_dir: ModelsDir = Path("models"), params_file: ParamsFile = PARAMS_FILE):
    cfg, run = config.load_all(SETTINGS, task_name, params_file, settings)
    set_threads(run.threads)
    paths = TaskPaths(task_name, data_dir, models_dir).for_stage("evaluate")  # reports: models/<task>/runs/evaluate/
    task = load_task(paths)
    splits = {task.dev_split: load_split(paths, task, task.dev_split)}  # model selection used it: it must be there
    for split in task.eval_splits[1:]:
        df = read_split(paths, task, split)
        if df.empty:
            log.warning("skipping split %s: no rows in %s", split, paths.split(split))
            continue
        splits[split] = df
    for split, df in splits.items():
        log.info("read split %s (%d rows, %d labelled)", split, len(df), int((df[LABEL] >= 0).sum()))
    scores, confusion, info_params = {}, {}, {}
    for kind in MODEL_KINDS:
        path = paths.model(kind)
        predict, info = (teacher_predictor(path, run.eval_batch_size, cfg.max_length) if kind == "teacher"
                         else student_predictor(path, run.eval_batch_size))
        if info["num_labels"] != task.num_labels:
            raise UserError(f"{path}: model has {info['num_labels']} labels, task {task_name} has {task.num_labels}")
        scores[kind], confusion[kind] = evaluate(predict, task, splits)
        info_params[kind] = info.get("params")
        if not scores[kind]:
            raise UserError(f"{task_name}: no labelled rows in any of {', '.join(task.eval_splits)}")
        log.info("%s: %s", kind, {s: {k: v for k, v in m.items() if k != "per_class"}
                                  for s, m in scores[kind].items()})
    report = {"task": task_name, "labels": list(task.labels), "models": scores}
    documents = {kind: metrics_document(task_name, kind, scores[kind], info_params.get(kind)) for kind in MODEL_KINDS}
    outs = [paths.scores(kind) for kind in MODEL_KINDS]
    with publish(*outs, paths.confusion, paths.report("evaluate")) as (*score_tmps, confusion_tmp, report_tmp):
        for kind, tmp in zip(MODEL_KINDS, score_tmps):
            write_json(documents[kind], tmp)
        write_confusion(confusion, confusion_tmp)
        write_json(report, report_tmp)
    log.info("wrote %s, %s and %s", ", ".join(map(str, outs)), paths.confusion, paths.report("evaluate"))


if __name__ == "__main__":
    run_cli(app)
