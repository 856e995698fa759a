"""teacher_logits stage: the fine-tuned teacher's logits for every row of data/<task>/transfer.parquet ->
data/<task>/teacher_logits.parquet (same rows, same order), and models/<task>/runs/teacher_logits/reports/
teacher_logits.json (rows, precision, hardware, time), which the report stage copies to metrics/<task>/reports/.

Resumable (a killed run continues from its last completed shard) and shardable across processes/GPUs:
`accelerate launch stages/teacher_logits.py --task sst2`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import torch
import typer
from accelerate import PartialState

from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.config import RuntimeParams as R
from distill.teacher.params import LogitsParams as P
from distill.io import get_logger, publish, run_cli, write_json
from distill.layout import TaskPaths
from distill.runtime import hardware_record, resolve_bf16, usable_cores
from distill.tasks import load_task
from distill.teacher.logits import assemble_into, compute_shards, drop_parts, fingerprint, prepare_work_dir, \
    transfer_rows, work_dir_for
from distill.teacher.model import load_teacher

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("teacher_logits")


@app.command()
def main(
    task: TaskName,
    bf16: Optional[str] = typer.Option(None, metavar="auto|true|false", help=P.help("bf16")),
    max_length: Optional[int] = typer.Option(None, help=P.help("max_length")),
    logits_batch_size: Optional[int] = typer.Option(None, help=R.help("logits_batch_size")),
    logits_shard_rows: Optional[int] = typer.Option(None, help=R.help("logits_shard_rows")),
    data_dir: DataDir = Path("data"),
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, bf16=bf16, max_length=max_length)
    run = config.load(R, task, params_file, logits_batch_size=logits_batch_size,
                      logits_shard_rows=logits_shard_rows)
    paths = TaskPaths(task, data_dir, models_dir).for_stage("teacher_logits")  # report: models/<task>/runs/
    # one process, or one per `accelerate launch --num_processes N` rank; without CUDA the ranks talk over gloo
    state = PartialState(cpu=not torch.cuda.is_available())
    device = state.device
    if device.type == "cpu":  # the cores are split between the processes sharing this machine
        torch.set_num_threads(max(1, (run.threads or usable_cores()) // state.num_processes))
    use_bf16 = resolve_bf16(cfg.bf16, device, P.key("bf16"))  # auto: bf16 where native; before any data is read
    t = load_task(paths)
    n = transfer_rows(paths.transfer)
    model, tokenizer = load_teacher(paths.model("teacher"), device)
    log.info("read %s (%d rows) and teacher %s; device %s, bf16 %s, %d process(es)", paths.transfer, n,
             paths.model("teacher"), device, use_bf16, state.num_processes)
    if state.is_main_process:
        fp = fingerprint(paths.transfer, paths.model("teacher"),
                         {"bf16": use_bf16, "max_length": cfg.max_length, "task": task})
        prepare_work_dir(work_dir_for(paths.logits), fp, n, run.logits_shard_rows)
    state.wait_for_everyone()
    start = time.perf_counter()
    compute_shards(t, paths.transfer, paths.logits, model, tokenizer, batch_size=run.logits_batch_size, bf16=use_bf16,
                   shard_rows=run.logits_shard_rows, max_length=cfg.max_length, process_index=state.process_index,
                   num_processes=state.num_processes)
    state.wait_for_everyone()
    if state.is_main_process:
        # the logits and their report switch together; the parts go only once both are in place
        with publish(paths.logits, paths.report("teacher_logits")) as (logits_tmp, report_tmp):
            rows = assemble_into(logits_tmp, paths.logits, n, run.logits_shard_rows)
            wall = time.perf_counter() - start  # this run's share: shards a killed run left are not recomputed
            write_json({"task": task, "rows": rows, "precision": "bf16" if use_bf16 else "fp32",
                        "processes": state.num_processes, "hardware": hardware_record(device),
                        "wall_s": round(wall, 2)}, report_tmp)
        drop_parts(paths.logits)
        log.info("wrote %s (%d rows) and %s", paths.logits, rows, paths.report("teacher_logits"))


if __name__ == "__main__":
    run_cli(app)
