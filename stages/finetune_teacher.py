"""finetune_teacher stage: fine-tune the BERT teacher on a task's training split (§4) -> models/<task>/teacher/,
its dev accuracy and training loss per lr (plots/teacher_curve.csv, teacher_loss.csv) and the run details
(reports/teacher_finetune.json: precision, hardware, timings) in models/<task>/runs/finetune_teacher/, which the
report stage copies to metrics/<task>/. The teacher folder's training.json records the precision, the hardware
and the max_length it was trained with (what predict truncates its input to).

Runs unchanged on several GPUs: `accelerate launch -m stages.finetune_teacher --task sst2` (or torchrun -m)."""
from __future__ import annotations

from pathlib import Path

import typer
from accelerate import PartialState

from distill import config, runtime
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.data.splits import load_split
from distill.io import get_logger, publish, run_cli, write_csv, write_json
from distill.layout import TRAINING_FILE, TaskPaths
from distill.tasks import TASK_FILE, load_task, write_task
from distill.teacher.finetune import finetune_teacher
from distill.teacher.params import TeacherParams

SETTINGS = (TeacherParams,)
app = typer.Typer(add_completion=False)
log = get_logger("finetune_teacher")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         models_dir: ModelsDir = Path("models"), params_file: ParamsFile = PARAMS_FILE):
    (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
    # fail before any data is read: bf16 asked for where it would be emulated
    runtime.resolve_bf16(cfg.bf16, runtime.device(), TeacherParams.key("bf16"))
    paths = TaskPaths(task_name, data_dir, models_dir).for_stage("finetune_teacher")  # reports: models/<task>/runs/
    task = load_task(paths)
    train_df = load_split(paths, task, "train")
    dev_df = load_split(paths, task, task.dev_split)
    log.info("read %s (%d rows) and %s split %s (%d rows)", paths.train, len(train_df), paths.split(task.dev_split),
             task.dev_split, len(dev_df))
    model_obj, tokenizer, report, dev_curve, loss_curve = finetune_teacher(task, train_df, dev_df, cfg)
    if not PartialState().is_main_process:
        return  # one writer under accelerate launch / torchrun
    outs = (paths.model("teacher"), paths.report("teacher_finetune"), paths.curve("teacher"),
            paths.plots / "teacher_loss.csv")
    with publish(*outs) as (model_tmp, report_tmp, curve_tmp, loss_tmp):
        model_obj.save_pretrained(model_tmp)
        tokenizer.save_pretrained(model_tmp)
        write_task(task, model_tmp / TASK_FILE)  # label names and text handling travel with the model (predict)
        write_json({"precision": report["precision"], "hardware": report["hardware"], "max_length": cfg.max_length},
                   model_tmp / TRAINING_FILE)
        write_json(report, report_tmp)
        write_csv(dev_curve, curve_tmp)
        write_csv(loss_curve, loss_tmp)
    log.info("wrote %s (best lr %g, dev %s), %s, %s and %s", outs[0], report["best_lr"], report["dev"], *outs[1:])


if __name__ == "__main__":
    run_cli(app)
