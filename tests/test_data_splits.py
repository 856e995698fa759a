"""distill/data/splits.py: reading a task's split files (MNLI's two dev sets share dev.parquet)."""
import pandas as pd
import pytest

from distill.data.splits import labelled, load_split, read_split, texts_of
from distill.io import UserError
from distill.layout import TaskPaths
from helpers import builtin_task

MNLI = builtin_task("mnli")


@pytest.fixture
def mnli_paths(tmp_path):
    paths = TaskPaths("mnli", tmp_path / "data")
    paths.data.mkdir(parents=True)
    pd.DataFrame({"idx": [0, 1, 2, 0, 1], "sentence1": ["a", "b", "c", "d", "e"],
                  "sentence2": ["f", "g", None, "h", "i"], "label": [0, 2, -1, 1, 1],
                  "split": ["dev_matched", "dev_matched", "dev_matched", "dev_mismatched", "dev_mismatched"]}
                 ).to_parquet(paths.split("dev"))
    pd.DataFrame({"idx": [], "sentence1": [], "sentence2": [], "label": [], "split": []}).astype(
        {"idx": "int64", "label": "int64"}).to_parquet(paths.split("test"))
    return paths


def test_read_split_selects_rows_of_the_split(mnli_paths):
    matched = read_split(mnli_paths, MNLI, "dev_matched")
    assert matched["sentence1"].tolist() == ["a", "b", "c"] and matched.index.tolist() == [0, 1, 2]
    mismatched = read_split(mnli_paths, MNLI, "dev_mismatched")
    assert mismatched["sentence1"].tolist() == ["d", "e"] and mismatched.index.tolist() == [0, 1]
    assert read_split(mnli_paths, MNLI, "test_matched").empty  # absent test sets are allowed here


def test_load_split_requires_rows(mnli_paths):
    assert len(load_split(mnli_paths, MNLI, "dev_mismatched")) == 2
    with pytest.raises(UserError) as err:
        load_split(mnli_paths, MNLI, "test_matched")
    assert str(err.value) == (f"{mnli_paths.split('test')}: no rows for split 'test_matched'; "
                              "re-run the download stage")


def test_missing_text_column_names_the_file(tmp_path):
    paths = TaskPaths("qqp", tmp_path)
    paths.data.mkdir(parents=True)
    pd.DataFrame({"sentence1": ["a"], "label": [1]}).to_parquet(paths.split("dev"))
    with pytest.raises(UserError) as err:
        read_split(paths, builtin_task("qqp"), "dev")
    assert str(err.value) == f"{paths.split('dev')}: missing column(s) ['sentence2']; re-run the download stage"
    with pytest.raises(UserError, match="file not found"):
        read_split(paths, builtin_task("qqp"), "train")


def test_file_without_split_column_is_read_whole(tmp_path):
    paths = TaskPaths("sst2", tmp_path)
    paths.data.mkdir(parents=True)
    pd.DataFrame({"sentence": ["x", "y"], "label": [1, 0]}).to_parquet(paths.split("dev"))
    assert read_split(paths, builtin_task("sst2"), "dev")["sentence"].tolist() == ["x", "y"]


def test_labelled_and_texts_of(mnli_paths):
    dev = read_split(mnli_paths, MNLI, "dev_matched")
    kept = labelled(dev)
    assert kept["sentence1"].tolist() == ["a", "b"] and kept.index.tolist() == [0, 1]
    assert texts_of(dev, MNLI) == [["a", "b", "c"], ["f", "g", ""]]  # missing text becomes ""
    assert texts_of(pd.DataFrame({"sentence": [1, "b"]}), builtin_task("sst2")) == [["1", "b"]]
