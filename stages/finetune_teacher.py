"""finetune_teacher stage: fine-tune the BERT teacher on a task's training split (§4) -> models/<task>/teacher/,
its dev accuracy and training loss per lr (plots/teacher_curve.csv, teacher_loss.csv) and the run details
(reports/teacher_finetune.json: precision, hardware, timings) in models/<task>/runs/finetune_teacher/, which the
report stage copies to metrics/<task>/. The teacher folder's training.json records the precision and hardware.

Runs unchanged on several GPUs: `accelerate launch stages/finetune_teacher.py --task sst2` (or torchrun)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import torch
import typer
from accelerate import PartialState

from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.teacher.params import TeacherParams as P
from distill.data.splits import load_split
from distill.io import get_logger, publish, run_cli, write_csv, write_json
from distill.layout import TRAINING_FILE, TaskPaths
from distill.runtime import resolve_bf16
from distill.tasks import TASK_FILE, load_task, write_task
from distill.teacher.finetune import finetune_teacher

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("finetune_teacher")


@app.command()
def main(
    task: TaskName,
    model: Optional[str] = typer.Option(None, help=P.help("model")),
    learning_rates: Optional[str] = typer.Option(None, help=P.help("learning_rates")),
    epochs: Optional[float] = typer.Option(None, help=P.help("epochs")),
    batch_size: Optional[int] = typer.Option(None, help=P.help("batch_size")),
    warmup_ratio: Optional[float] = typer.Option(None, help=P.help("warmup_ratio")),
    weight_decay: Optional[float] = typer.Option(None, help=P.help("weight_decay")),
    max_length: Optional[int] = typer.Option(None, help=P.help("max_length")),
    max_train_examples: Optional[int] = typer.Option(None, help=P.help("max_train_examples")),
    evals_per_epoch: Optional[int] = typer.Option(None, help=P.help("evals_per_epoch")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    bf16: Optional[str] = typer.Option(None, metavar="auto|true|false", help=P.help("bf16")),
    fused_adamw: Optional[bool] = typer.Option(None, "--fused-adamw/--op-by-op-adamw", help=P.help("fused_adamw")),
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, model=model, learning_rates=learning_rates, epochs=epochs,
                      batch_size=batch_size, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                      max_length=max_length, max_train_examples=max_train_examples,
                      evals_per_epoch=evals_per_epoch, seed=seed, bf16=bf16, fused_adamw=fused_adamw)
    # fail before any data is read: bf16 asked for where it would be emulated
    resolve_bf16(cfg.bf16, torch.device("cuda" if torch.cuda.is_available() else "cpu"), P.key("bf16"))
    paths = TaskPaths(task, data_dir, models_dir).for_stage("finetune_teacher")  # reports: models/<task>/runs/
    t = load_task(paths)
    train = load_split(paths, t, "train")
    dev = load_split(paths, t, t.dev_split)
    log.info("read %s (%d rows) and %s split %s (%d rows)", paths.train, len(train), paths.split(t.dev_split),
             t.dev_split, len(dev))
    model_obj, tokenizer, report, dev_curve, loss_curve = finetune_teacher(t, train, dev, cfg)
    if not PartialState().is_main_process:
        return  # one writer under accelerate launch / torchrun
    outs = (paths.model("teacher"), paths.report("teacher_finetune"), paths.curve("teacher"),
            paths.plots / "teacher_loss.csv")
    with publish(*outs) as (model_tmp, report_tmp, curve_tmp, loss_tmp):
        model_obj.save_pretrained(model_tmp)
        tokenizer.save_pretrained(model_tmp)
        write_task(t, model_tmp / TASK_FILE)  # label names and text handling travel with the model (predict)
        write_json({k: report[k] for k in ("precision", "hardware")}, model_tmp / TRAINING_FILE)
        write_json(report, report_tmp)
        write_csv(dev_curve, curve_tmp)
        write_csv(loss_curve, loss_tmp)
    log.info("wrote %s (best lr %g, dev %s), %s, %s and %s", outs[0], report["best_lr"], report["dev"], *outs[1:])


if __name__ == "__main__":
    run_cli(app)
