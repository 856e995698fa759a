"""export stage: the student and the baseline as folders a service loads with onnxruntime and numpy alone (no torch)
-> models/<task>/export/{student,baseline}/ with model.onnx (the whole classifier: ids -> logits, probs),
vocab.txt and export.json (label names, single sentence or siamese pair, the text handling the pipeline applied to
raw text, the inputs' layout). Each export is checked before it is published: run through onnxruntime by
distill.inference.predictor on every row of the task's dev split, its logits must equal the torch model's within
1e-4 (the figures are kept in export.json under `check`). Serving: docs/serving.md."""
from __future__ import annotations

from pathlib import Path

import typer

from distill import config
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, TaskName
from distill.data.splits import read_split, texts_of
from distill.inference.export import TOLERANCE, add_check, compare, write_export
from distill.inference.params import ExportParams
from distill.inference.predictor import Predictor, ServingError
from distill.io import UserError, get_logger, publish, run_cli
from distill.layout import BILSTM_KINDS, TaskPaths
from distill.student.batching import Dataset, predict_logits
from distill.student.model import load_student
from distill.tasks import load_task

app = typer.Typer(add_completion=False)
log = get_logger("export")


@app.command(help=__doc__)
def main(task_name: TaskName, data_dir: DataDir = Path("data"), models_dir: ModelsDir = Path("models"),
         params_file: ParamsFile = PARAMS_FILE):
    config.load(ExportParams, task_name, params_file)  # no setting, but params.yaml is checked like every stage's
    paths = TaskPaths(task_name, data_dir, models_dir)
    task = load_task(paths)
    columns = texts_of(read_split(paths, task, task.dev_split), task)
    log.info("read %s (%d rows)", paths.split(task.dev_split), len(columns[0]))
    models = {}
    for kind in BILSTM_KINDS:
        model, vocab = load_student(paths.model(kind))
        if model.cfg.num_labels != task.num_labels or model.cfg.pair != task.is_pair:
            raise UserError(f"{paths.model(kind)}: a model with {model.cfg.num_labels} labels"
                            f"{' for pairs' if model.cfg.pair else ''}, task {task_name} has {task.num_labels}"
                            f"{' (pairs)' if task.is_pair else ''}; re-run `dvc repro -f -s train_{kind}@{task_name}`")
        models[kind] = model, vocab
    outs = [paths.model("export") / kind for kind in BILSTM_KINDS]
    with publish(*outs) as tmps:
        for (kind, (model, vocab)), tmp in zip(models.items(), tmps):
            want = predict_logits(model, Dataset(vocab, columns), 512)
            write_export(model, vocab, task, kind, tmp)
            try:
                got = Predictor.load(tmp, threads=1).predict_normalized(columns).logits
            except ServingError as err:
                raise UserError(str(err)) from None
            check = {"split": task.dev_split, **compare(got, want), "tolerance": TOLERANCE}
            if check["max_abs_logit_diff_vs_torch"] > TOLERANCE:
                raise UserError(f"{paths.model(kind)}: the ONNX export's dev logits differ from torch's by "
                                f"{check['max_abs_logit_diff_vs_torch']:.3g} > {TOLERANCE}; nothing written")
            add_check(tmp, check)
            log.info("%s: max |logit diff| vs torch %.2e on %d %s rows, argmax agreement %.4f", kind,
                     check["max_abs_logit_diff_vs_torch"], check["rows"], task.dev_split, check["argmax_agreement"])
    log.info("wrote %s", ", ".join(map(str, outs)))


if __name__ == "__main__":
    run_cli(app)
