"""Reading the per-task Parquet files of the output contract.

`data/<task>/{train,dev,test}.parquet` hold columns idx, the text column(s), label (-1 where unlabelled) and
split. MNLI's two dev sets share dev.parquet, told apart by `split` (dev_matched / dev_mismatched): DVC cannot
declare a different list of outputs for one task of a `foreach` stage, so every task writes the same three files.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import UserError, read_parquet
from .tasks import Task

SPLIT_FILES = ("train", "dev", "test")


def task_dir(data_root: str | Path, task: str) -> Path:
    return Path(data_root) / task


def split_file(split: str) -> str:
    """dev_matched -> dev, test_mismatched -> test, train -> train."""
    return split.split("_")[0]


def load_split(data_root: str | Path, task: Task, split: str) -> pd.DataFrame:
    path = task_dir(data_root, task.name) / f"{split_file(split)}.parquet"
    df = read_parquet(path)
    if "split" in df.columns:
        df = df[df["split"] == split].reset_index(drop=True)
    if df.empty:
        raise UserError(f"{path}: no rows for split {split!r}")
    missing = [c for c in (*task.text_columns, "label") if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}")
    return df
