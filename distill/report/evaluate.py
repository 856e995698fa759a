"""Scoring the teacher, the baseline and the student on a task's labelled evaluation splits."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from distill.data.splits import labelled, texts_of
from distill.data.text import normalize
from distill.io import UserError, atomic_path
from distill.layout import LABEL
from distill.metrics import per_class, split_metrics
from distill.runtime import device
from distill.student.batching import Dataset, predict_logits
from distill.student.model import CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, count_parameters, load_student
from distill.tasks import TASK_FILE, Task, read_task
from distill.teacher.model import load_teacher, teacher_logits

# A predictor maps the text columns (one list per column) to (N, num_labels) logits.
Predictor = Callable[[list[list[str]]], np.ndarray]

STUDENT_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE)
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
              "pytorch_model.bin.index.json")


def model_kind(path: str | Path) -> str:
    """'student' (student/baseline dir), 'teacher' (HF save_pretrained dir), else a one-line UserError."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: model directory not found")
    if all((path / f).exists() for f in STUDENT_FILES):
        return "student"
    if (path / "config.json").exists() and any((path / f).exists() for f in HF_WEIGHTS):
        return "teacher"
    raise UserError(f"{path}: neither a student model ({', '.join(STUDENT_FILES)}) nor a Hugging Face model "
                    f"directory (config.json + weights)")


def student_predictor(path: str | Path, batch_size: int) -> tuple[Predictor, dict]:
    model, vocab = load_student(path)
    model.to(device())
    params = {"total": count_parameters(model), "without_embeddings": count_parameters(model, False)}

    def predict(columns: list[list[str]]) -> np.ndarray:
        if len(columns) != (2 if model.cfg.pair else 1):
            raise UserError(f"{path}: the model takes {2 if model.cfg.pair else 1} text field(s), "
                            f"got {len(columns)}")
        with torch.no_grad():
            return predict_logits(model, Dataset(vocab, columns), batch_size)

    return predict, {"params": params, "num_labels": model.cfg.num_labels, "pair": model.cfg.pair}


def teacher_predictor(path: str | Path, batch_size: int, max_length: int) -> tuple[Predictor, dict]:
    """fp32 always: metrics must not depend on the hardware's bf16 support."""
    model, tokenizer = load_teacher(path)

    def predict(columns: list[list[str]]) -> np.ndarray:
        second = columns[1] if len(columns) > 1 else None
        return teacher_logits(model, tokenizer, columns[0], second, batch_size=batch_size, max_length=max_length,
                              progress=False)

    return predict, {"num_labels": int(model.config.num_labels)}


def evaluate(predict: Predictor, task: Task, splits: dict[str, pd.DataFrame]) -> tuple[dict, pd.DataFrame]:
    """{"<split>": split_metrics + "per_class"} over labelled rows of each split, plus the dev split's (actual,
    predicted) label names for the confusion matrix."""
    metrics, confusion = {}, pd.DataFrame({"actual": [], "predicted": []}, dtype="object")
    for name, df in splits.items():
        df = labelled(df)
        if df.empty:
            continue
        preds = predict(texts_of(df, task)).argmax(axis=1)
        labels = df[LABEL].to_numpy(np.int64)
        metrics[name] = split_metrics(labels, preds, with_f1=task.f1, positive=task.f1_index,
                                      num_labels=task.num_labels)
        metrics[name]["per_class"] = per_class(labels, preds, task.labels)
        if name == task.dev_split:
            names = np.asarray(task.labels, dtype=object)
            confusion = pd.DataFrame({"actual": names[labels], "predicted": names[preds]})
    return metrics, confusion


def metrics_document(task: str, kind: str, scores: dict, params: dict | None = None) -> dict:
    """What metrics/<task>/<kind>.json holds: the numbers that compare runs, under the task's and the model's keys,
    so every flattened name (rotten_tomatoes.student.dev.accuracy) is unique across files and `dvc exp show` /
    `dvc metrics diff` need no file-path prefixes. Row counts and per-class figures go to reports/evaluate.json."""
    body: dict = {split: {k: v for k, v in m.items() if k not in ("n", "per_class")} for split, m in scores.items()}
    if params:
        body["params"] = params
    return {task: {kind: body}}


def write_confusion(frames: dict[str, pd.DataFrame], directory: str | Path) -> None:
    """One CSV per model (columns actual, predicted), the directory replaced whole."""
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        for name, df in frames.items():
            df.to_csv(tmp / f"{name}.csv", index=False)


def read_rows(lines: list[str], fields: int | None, lowercase: bool = True, tokenize: bool = True
              ) -> list[list[str]]:
    """Text columns from tab-separated lines, normalised as the task's data were; fields=None accepts 1 or 2
    fields, the same on every line."""
    rows = [line.rstrip("\r\n").split("\t") for line in lines if line.strip()]
    if not rows:
        raise UserError("no input lines")
    counts = {len(r) for r in rows}
    if len(counts) != 1 or (fields is not None and counts != {fields}) or not counts <= {1, 2}:
        want = f"{fields}" if fields is not None else "1 or 2 (the same on every line)"
        raise UserError(f"every input line needs {want} tab-separated field(s); got {sorted(counts)}")
    return [[normalize(r[i], lowercase, tokenize) for r in rows] for i in range(counts.pop())]


def model_task(path: str | Path, num_labels: int) -> tuple[list[str], bool, bool]:
    """(label names, lowercase, tokenize) saved with the model (task.json); a model saved before label names were
    kept gets "0", "1", ... and the default text handling."""
    file = Path(path) / TASK_FILE
    if not file.exists():
        return [str(i) for i in range(num_labels)], True, True
    task = read_task(file)
    if task.num_labels != num_labels:
        raise UserError(f"{file}: {task.num_labels} label names for a model with {num_labels} outputs")
    return list(task.labels), task.lowercase, task.tokenize
