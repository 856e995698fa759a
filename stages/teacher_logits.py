"""teacher_logits stage: the fine-tuned teacher's logits for every row of data/<task>/transfer.parquet ->
data/<task>/teacher_logits.parquet (same rows, same order), and models/<task>/runs/teacher_logits/reports/
teacher_logits.json (rows, precision, hardware, wall time, rows/s and teacher tokens/s), which the report stage
copies to metrics/<task>/reports/.

Resumable (a killed run continues from its last completed shard) and shardable across processes/GPUs:
`accelerate launch -m stages.teacher_logits --task sst2`."""
from __future__ import annotations

import time
from pathlib import Path

import torch
import typer
from accelerate import PartialState
from accelerate.utils import gather_object

from distill import config
from distill.cli import DataDir, ModelsDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.config import LogitsRuntime
from distill.io import get_logger, publish, run_cli, write_json
from distill.layout import TaskPaths
from distill.runtime import hardware_record, resolve_bf16, usable_cores
from distill.tasks import load_task
from distill.teacher.logits import ShardWork, assemble_into, compute_shards, drop_parts, fingerprint, \
    prepare_work_dir, transfer_rows, work_dir_for
from distill.teacher.model import load_teacher, throughput
from distill.teacher.params import LogitsParams

SETTINGS = (LogitsParams, LogitsRuntime)
app = typer.Typer(add_completion=False)
log = get_logger("teacher_logits")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         models_dir: ModelsDir = Path("models"), params_file: ParamsFile = PARAMS_FILE):
    cfg, run = config.load_all(SETTINGS, task_name, params_file, settings)
    paths = TaskPaths(task_name, data_dir, models_dir).for_stage("teacher_logits")  # report: models/<task>/runs/
    # one process, or one per `accelerate launch --num_processes N` rank; without CUDA the ranks talk over gloo
    state = PartialState(cpu=not torch.cuda.is_available())
    device = state.device
    if device.type == "cpu":  # the cores are split between the processes sharing this machine
        torch.set_num_threads(max(1, (run.threads or usable_cores()) // state.num_processes))
    # auto: bf16 where native; decided before any data is read
    use_bf16 = resolve_bf16(cfg.bf16, device, LogitsParams.key("bf16"))
    task = load_task(paths)
    n = transfer_rows(paths.transfer)
    model, tokenizer = load_teacher(paths.model("teacher"), device)
    log.info("read %s (%d rows) and teacher %s; device %s, bf16 %s, %d process(es)", paths.transfer, n,
             paths.model("teacher"), device, use_bf16, state.num_processes)
    if state.is_main_process:
        fp = fingerprint(paths.transfer, paths.model("teacher"),
                         {"bf16": use_bf16, "max_length": cfg.max_length, "task": task_name})
        prepare_work_dir(work_dir_for(paths.logits), fp, n, run.logits_shard_rows)
    state.wait_for_everyone()
    start = time.perf_counter()
    work = compute_shards(task, paths.transfer, paths.logits, model, tokenizer, batch_size=run.logits_batch_size,
                          bf16=use_bf16, shard_rows=run.logits_shard_rows, max_length=cfg.max_length,
                          process_index=state.process_index, num_processes=state.num_processes)
    if state.num_processes > 1:
        work = sum(gather_object([work]), ShardWork())
    state.wait_for_everyone()
    if state.is_main_process:
        # the logits and their report switch together; the parts go only once both are in place
        with publish(paths.logits, paths.report("teacher_logits")) as (logits_tmp, report_tmp):
            rows = assemble_into(logits_tmp, paths.logits, n, run.logits_shard_rows)
            wall = time.perf_counter() - start  # this run's share: shards a killed run left are not recomputed
            write_json({"task": task_name, "rows": rows, "precision": "bf16" if use_bf16 else "fp32",
                        "processes": state.num_processes, "hardware": hardware_record(device),
                        "wall_s": round(wall, 2), "rows_computed": work.rows,  # < rows when a killed run left shards
                        "tokens_computed": work.tokens, **throughput(work.rows, work.tokens, wall)}, report_tmp)
        drop_parts(paths.logits)
        log.info("wrote %s (%d rows) and %s", paths.logits, rows, paths.report("teacher_logits"))


if __name__ == "__main__":
    run_cli(app)
