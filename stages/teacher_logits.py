"""teacher_logits stage: the fine-tuned teacher's logits for every row of data/<task>/transfer.parquet ->
data/<task>/teacher_logits.parquet (same rows, same order).

Resumable (a killed run continues from its last completed shard) and shardable across processes/GPUs:
`accelerate launch stages/teacher_logits.py --task sst2`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import typer

from distill.io import get_logger, run_cli
from distill.params import pick, stage_params
from distill.tasks import get_task
from distill.teacher import load_teacher, resolve_bf16
from distill.teacher_logits import assemble, compute_shards, fingerprint, prepare_work_dir, transfer_rows, \
    work_dir_for

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("teacher_logits")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    batch_size: Optional[int] = typer.Option(None, help="Rows per forward pass (batches are length-sorted)."),
    bf16: Optional[str] = typer.Option(
        None, help="bf16 autocast: auto (where the hardware has bf16: CUDA, or a CPU with AVX512-BF16/AMX), "
        "true or false. Default: teacher_logits.bf16."),
    shard_rows: Optional[int] = typer.Option(None, help="Rows per resumable shard."),
    max_length: Optional[int] = typer.Option(None, help="Truncate encoded inputs to this many tokens."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    models_dir: Path = typer.Option(Path("models"), help="Root of the per-task model folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    from accelerate import PartialState

    t = get_task(task)
    p = stage_params("teacher_logits", task, params_file)
    batch_size = int(pick(batch_size, p, "batch_size"))
    shard_rows = int(pick(shard_rows, p, "shard_rows"))
    max_length = int(pick(max_length, p, "max_length"))
    state = PartialState()
    device = state.device
    if device.type == "cpu":  # the cores are split between the processes sharing this machine
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // state.num_processes))
    use_bf16 = resolve_bf16(pick(bf16, p, "bf16"), device)
    transfer = data_dir / task / "transfer.parquet"
    out = data_dir / task / "teacher_logits.parquet"
    model_dir = models_dir / task / "teacher"
    n = transfer_rows(transfer)
    model, tokenizer = load_teacher(model_dir, device)
    log.info("read %s (%d rows) and teacher %s; device %s, bf16 %s, %d process(es)", transfer, n, model_dir,
             device, use_bf16, state.num_processes)
    if state.is_main_process:
        fp = fingerprint(transfer, model_dir, {"bf16": use_bf16, "max_length": max_length, "task": task})
        prepare_work_dir(work_dir_for(out), fp, n, shard_rows)
    state.wait_for_everyone()
    compute_shards(t, transfer, out, model, tokenizer, batch_size=batch_size, bf16=use_bf16, shard_rows=shard_rows,
                   max_length=max_length, process_index=state.process_index, num_processes=state.num_processes)
    state.wait_for_everyone()
    if state.is_main_process:
        rows = assemble(out, n, shard_rows)
        log.info("wrote %s (%d rows)", out, rows)


if __name__ == "__main__":
    run_cli(app)
