"""Reading the per-task split files of the output contract.

`data/<task>/{train,dev,test}.parquet` hold columns idx, the text column(s), label (-1 where unlabelled) and
split. MNLI's two dev sets share dev.parquet, told apart by `split` (dev_matched / dev_mismatched): DVC cannot
declare a different list of outputs for one task of a `foreach` stage, so every task writes the same three files.
"""
from __future__ import annotations

import pandas as pd

from distill.io import UserError, read_parquet
from distill.layout import LABEL, SPLIT, TaskPaths
from distill.tasks import Task


def read_split(paths: TaskPaths, task: Task, split: str) -> pd.DataFrame:
    """The rows of `split` (possibly none), with the task's text columns and label checked present."""
    path = paths.split(split)
    df = read_parquet(path)
    missing = [c for c in (*task.text_columns, LABEL) if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; re-run the download stage")
    if SPLIT in df.columns:
        df = df[df[SPLIT] == split].reset_index(drop=True)
    return df


def load_split(paths: TaskPaths, task: Task, split: str) -> pd.DataFrame:
    """A split the stage cannot do without: no rows is an error naming the file."""
    df = read_split(paths, task, split)
    if df.empty:
        raise UserError(f"{paths.split(split)}: no rows for split {split!r}; re-run the download stage")
    return df


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    return df[df[LABEL] >= 0].reset_index(drop=True)


def texts_of(df: pd.DataFrame, task: Task) -> list[list[str]]:
    """One list of strings per text column (missing text as "")."""
    return [df[c].fillna("").astype(str).tolist() for c in task.text_columns]
