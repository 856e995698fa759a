"""distill/data/datasets.py: the `datasets:` entries of params.yaml, validated key by key."""
import pytest
from distill.config import parse_yaml
from distill.data.datasets import SourceFile, dataset_entry, parse_dataset
from distill.io import UserError
from helpers import REPO

SHA = "ab" * 32


def entry(**kw) -> dict:
    return {"train": "raw/train.csv", "dev": "raw/dev.csv", "text": "ticket", "label": "kind",
            "labels": ["billing", "bug", "feature"], **kw}


def test_a_files_entry_becomes_a_task():
    spec = parse_dataset("tickets", entry(test="raw/test.csv", f1_label="bug", lowercase=False))
    assert (spec.reader, spec.text, spec.label, spec.bad_rows, spec.overlap) == ("files", ("ticket",), "kind",
                                                                                 "drop", "keep")
    assert set(spec.files) == {"train", "dev", "test"} and spec.files["dev"] == SourceFile("raw/dev.csv")
    task = spec.task()
    assert (task.name, task.text_columns, task.labels, task.eval_splits) == (
        "tickets", ("sentence",), ("billing", "bug", "feature"), ("dev", "test"))
    assert task.f1_index == 1 and not task.lowercase and task.tokenize


def test_one_file_pair_entry_with_a_label_mapping():
    spec = parse_dataset("pairs", {"file": {"path": "https://example.org/p.jsonl", "sha256": SHA.upper()},
                                   "split": {"dev": 0.2}, "text": ["q1", "q2"], "label": "same",
                                   "labels": {"different": 0, "same": 1.0}})
    assert spec.split == (0.2, 0.0) and spec.files["file"].sha256 == SHA and spec.files["file"].is_url
    assert spec.label_names == ("different", "same") and spec.label_values == ("0", "1")
    assert spec.task().text_columns == ("sentence1", "sentence2") and spec.task().eval_splits == ("dev",)
    assert spec.format_of(spec.files["file"]) == "jsonl"


def test_the_repository_declares_every_builtin_task():
    params = parse_yaml((REPO / "params.yaml").read_text())
    shapes = {name: (dataset_entry(params, name).reader, dataset_entry(params, name).task().num_labels)
              for name in ("rotten_tomatoes", "sst2", "qqp", "mnli")}
    assert shapes == {"rotten_tomatoes": ("rotten_tomatoes", 2), "sst2": ("glue", 2), "qqp": ("glue", 2),
                      "mnli": ("glue", 3)}
    trec = dataset_entry(params, "trec")
    assert trec.reader == "files" and trec.task().num_labels == 6


@pytest.mark.parametrize("raw, message", [
    ("not a mapping", "params.yaml: datasets.t must be a mapping"),
    (entry(reader="csv"), "datasets.t.reader must be one of rotten_tomatoes|glue|files, got 'csv'"),
    (entry(colour="red"), "datasets.t: unknown key 'colour' for reader files"),
    ({k: v for k, v in entry().items() if k != "labels"}, "datasets.t.labels is missing"),
    (entry(labels=["only"]), "datasets.t.labels needs at least 2 classes"),
    (entry(labels=["a", "b", "a"]), "label names must be distinct, 'a' repeats"),
    (entry(labels={"a": 1, "b": 1}), "label values must be distinct, '1' repeats"),
    (entry(labels="a,b"), "datasets.t.labels must be a list of label names in id order"),
    (entry(f1_label="spam"), "datasets.t.f1_label 'spam' is not one of the labels"),
    (entry(file="all.csv"), "give either file (split here) or train/dev/test files, not both"),
    ({k: v for k, v in entry().items() if k != "dev"}, "datasets.t.dev is missing"),
    (entry(split={"dev": 0.1}), "datasets.t.split applies to a single file"),
    (entry(dev={"path": "https://example.org/d.csv"}), "an http(s) source needs a sha256"),
    (entry(dev={"path": "d.csv", "sha256": "xyz"}), "datasets.t.dev.sha256 must be 64 hex digits"),
    (entry(dev={"url": "d.csv"}), "datasets.t.dev must be a path or URL"),
    (entry(text=["a", "b", "c"]), "datasets.t.text must name the text column, or two distinct columns"),
    (entry(text=["a", "a"]), "datasets.t.text must name the text column, or two distinct columns"),
    (entry(label="ticket"), "datasets.t.label must name the label column (not a text column)"),
    (entry(format="xlsx"), "datasets.t.format must be one of auto|csv|tsv|jsonl|parquet, got 'xlsx'"),
    (entry(bad_rows="ignore"), "datasets.t.bad_rows must be one of drop|reject"),
    (entry(overlap="drop"), "datasets.t.overlap must be one of keep|drop_from_train"),
    (entry(lowercase="yes"), "datasets.t.lowercase must be true or false"),
    ({"file": "a.csv", "split": {"dev": 0.6, "test": 0.5}, "text": "x", "labels": ["a", "b"]},
     "dev + test < 1; got dev=0.6, test=0.5"),
    ({"file": "a.csv", "split": {"dev": 0}, "text": "x", "labels": ["a", "b"]}, "dev in (0, 1)"),
    ({"file": "a.csv", "split": {"train": 0.8}, "text": "x", "labels": ["a", "b"]},
     "datasets.t.split must be {dev: fraction, test: fraction}"),
])
def test_entry_errors_name_the_key(raw, message):
    with pytest.raises(UserError) as err:
        parse_dataset("t", raw)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, raw, message", [
    ("imdb", {"reader": "glue", "labels": ["a", "b"]}, "reader glue reads sst2 / qqp / mnli only"),
    ("mnli", {"reader": "glue", "labels": ["a", "b"]}, "datasets.mnli.labels: mnli has 3 classes, got 2 names"),
    ("sst2", {"reader": "glue", "labels": ["a", "b"], "text": "x"}, "unknown key 'text' for reader glue"),
    ("my task", entry(), "a task name is letters, digits"),
])
def test_builtin_reader_and_name_errors(name, raw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_dataset(name, raw)


def test_missing_entry_and_unknown_format():
    with pytest.raises(UserError, match=r"datasets has no entry for task 'x' \(declared: a\)"):
        dataset_entry({"datasets": {"a": {}}}, "x")
    with pytest.raises(UserError, match="datasets must be a mapping"):
        dataset_entry({}, "x")
    spec = parse_dataset("t", entry(dev="raw/dev.data"))
    with pytest.raises(UserError, match="raw/dev.data: cannot tell the format from the name; set datasets.t.format"):
        spec.format_of(spec.files["dev"])
    assert spec.format_of(SourceFile("x/train.TSV.gz")) == "tsv"
