"""distill/data/files.py and the download stage on your own files: CSV / TSV / JSON Lines / Parquet, checked
before anything is written; every bad file a one-line error naming the file and line, and no output left."""
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import one_line_error, run_stage
from distill.data.datasets import parse_dataset
from distill.data.files import cross_split_overlap, fetch_files, read_records, stratified_split, to_frame
from distill.io import UserError
from distill.layout import TaskPaths
from helpers import cli_dirs, ticket_texts, write_params

LABELS = ["billing", "bug", "feature"]


def spec_for(**kw):
    return parse_dataset("t", {"text": "ticket", "label": "kind", "labels": LABELS, **kw})


def write_csv(path: Path, rows, header=("ticket", "kind")) -> Path:
    pd.DataFrame(rows, columns=list(header)).to_csv(path, index=False)
    return path


def good_rows(n=30, seed=0):
    return ticket_texts(n, LABELS, seed)


# ---- reading -------------------------------------------------------------------------------------------------
def test_csv_line_numbers_follow_multiline_quoted_records(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('ticket,kind\n"two\nlines, one record",bug\nplain,billing\n\n"last",feature\n')
    records = read_records(path, "csv", "a.csv", ["ticket", "kind"])
    assert [(r.where, r.values["ticket"]) for r in records] == [("line 2", "two\nlines, one record"),
                                                                 ("line 4", "plain"), ("line 6", "last")]
    df, report = to_frame(records, spec_for(train="x.csv", dev="y.csv"), ("sentence",), "a.csv")
    assert df["sentence"].tolist() == ["two lines , one record", "plain", "last"]
    assert df["label"].tolist() == [1, 0, 2] and df["idx"].tolist() == [2, 4, 6] and report.kept == 3


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet", "csv.gz"])
def test_every_format_reads_the_same_rows(tmp_path, fmt):
    rows = good_rows(9)
    frame = pd.DataFrame(rows, columns=["ticket", "kind"])
    path = tmp_path / f"data.{fmt}"
    if fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    spec = spec_for(train=str(path), dev=str(path))
    records = read_records(path, spec.format_of(spec.files["train"]), str(path), ["ticket", "kind"])
    df, _ = to_frame(records, spec, ("sentence",), str(path))
    assert df["label"].tolist() == [LABELS.index(y) for _, y in rows]
    assert df["idx"].tolist() == list(range(2, 11) if fmt in ("tsv", "csv.gz") else range(1, 10))


def test_bad_rows_are_dropped_and_counted(tmp_path):
    path = write_csv(tmp_path / "a.csv", [("fine", "bug"), ("", "bug"), ("odd", "spam"), ("odd2", "ham"),
                                           ("ok", "billing")])
    with open(path, "a") as fh:
        fh.write("too,many,fields\n")
    spec = spec_for(train="a.csv", dev="a.csv")
    df, report = to_frame(read_records(path, "csv", "a.csv", ["ticket", "kind"]), spec, ("sentence",), "a.csv")
    assert df["sentence"].tolist() == ["fine", "ok"]
    assert report.dropped == {"empty_text": 1, "unknown_label": 2, "malformed": 1}
    assert report.examples == ["line 3: empty text in 'ticket'", "line 4: unknown label 'spam'",
                               "line 5: unknown label 'ham'", "line 7: 3 fields, the header has 2"]
    with pytest.raises(UserError) as err:
        to_frame(read_records(path, "csv", "a.csv", ["ticket", "kind"]), spec_for(train="a", dev="b",
                                                                                 bad_rows="reject"),
                 ("sentence",), "a.csv")
    assert str(err.value) == ("a.csv: line 3: empty text in 'ticket' (4 bad row(s) in all; unknown label values: "
                              "'spam', 'ham' (labels: billing, bug, feature)); fix them, or set "
                              "datasets.t.bad_rows: drop")


def test_stratified_split_is_seeded_and_keeps_every_class(tmp_path):
    rows = good_rows(60)
    df = pd.DataFrame({"idx": range(60), "sentence": [t for t, _ in rows],
                       "label": [LABELS.index(y) for _, y in rows]})
    a = stratified_split(df, 0.2, 0.1, seed=13, labels=tuple(LABELS), display="f")
    b = stratified_split(df, 0.2, 0.1, seed=13, labels=tuple(LABELS), display="f")
    assert all(a[s].equals(b[s]) for s in a)
    assert [len(a[s]) for s in ("train", "dev", "test")] == [42, 12, 6]
    for part in a.values():
        assert sorted(part["label"].value_counts().tolist()) == [len(part) // 3] * 3
        assert part["idx"].is_monotonic_increasing
    assert sorted(np.concatenate([p["idx"] for p in a.values()])) == list(range(60))
    with pytest.raises(UserError, match="f: class 'feature' has 2 row"):
        stratified_split(df.iloc[:8], 0.2, 0.1, seed=1, labels=tuple(LABELS), display="f")


def test_cross_split_overlap_is_reported_and_optionally_removed():
    frames = {"train": pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0, 1, 0]}),
              "dev": pd.DataFrame({"sentence": ["b", "d"], "label": [1, 1]}),
              "test": pd.DataFrame({"sentence": ["c", "d"], "label": [0, 1]})}
    kept = cross_split_overlap(dict(frames), ("sentence",), "keep")
    assert kept == {"texts_in_several_splits": 3, "examples": ["b", "c", "d"], "removed_from_train": 0}
    out = dict(frames)
    assert cross_split_overlap(out, ("sentence",), "drop_from_train")["removed_from_train"] == 2
    assert out["train"]["sentence"].tolist() == ["a"] and out["dev"]["sentence"].tolist() == ["b", "d"]


def test_local_sha256_is_checked(tmp_path):
    train = write_csv(tmp_path / "train.csv", good_rows(12))
    spec = parse_dataset("t", {"train": {"path": str(train), "sha256": "0" * 64}, "dev": str(train),
                               "text": "ticket", "label": "kind", "labels": LABELS})
    with pytest.raises(UserError, match=r"train.csv: sha256 [0-9a-f]{64} does not match the one in params.yaml"):
        fetch_files(spec, 13, 1, 5)


# ---- the download stage: errors before any work, nothing written ---------------------------------------------
def run_download(tmp_path, entry: dict, check: bool = True):
    write_params(tmp_path, datasets={"t": {"text": "ticket", "label": "kind", "labels": LABELS, **entry}})
    return run_stage("download.py", "--task", "t", *cli_dirs(tmp_path, "data", "params"), check=check)


def bad_file_cases(tmp_path):
    good = write_csv(tmp_path / "good.csv", good_rows(30))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("ticket,kind\n")
    no_bug = write_csv(tmp_path / "nobug.csv", [r for r in good_rows(30, 1) if r[1] != "bug"])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("ticket,kind\nfine,bug\ncaf\xe9 crashed,bug\n".encode("latin-1"))
    unknown = write_csv(tmp_path / "unknown.csv", good_rows(12) + [("hello", "spam"), ("hi", "ham")])
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"ticket": "ok", "kind": "bug"}\n[1, 2]\n')
    return {
        "missing column": ({"train": str(good), "dev": str(good), "label": "category"},
                           "good.csv: no column 'category' (columns: ticket, kind)"),
        "empty file": ({"train": str(empty), "dev": str(good)}, "empty.csv: empty file (no header line)"),
        "header only": ({"train": str(header_only), "dev": str(good)}, "header.csv: no data rows"),
        "class missing": ({"train": str(good), "dev": str(no_bug)},
                          "nobug.csv: the dev split has no row of class 'bug'; every split needs every class"),
        "undecodable": ({"train": str(latin), "dev": str(good)},
                        "latin.csv: line 3: not UTF-8 (byte 0xe9 at column 4); save the file as UTF-8"),
        "unknown labels, reject": ({"train": str(unknown), "dev": str(good), "bad_rows": "reject"},
                                   "unknown.csv: line 14: unknown label 'spam' (2 bad row(s) in all; unknown label "
                                   "values: 'spam', 'ham' (labels: billing, bug, feature))"),
        "missing file": ({"train": str(tmp_path / "nope.csv"), "dev": str(good)}, "nope.csv: file not found"),
        "not json": ({"train": str(jsonl), "dev": str(good), "bad_rows": "reject"},
                     "bad.jsonl: line 2: not a JSON object (1 bad row(s) in all)"),
        "bad entry": ({"train": str(good), "dev": str(good), "labels": ["x"]},
                      "params.yaml: datasets.t.labels needs at least 2 classes, got 1"),
    }


@pytest.mark.parametrize("case", ["missing column", "empty file", "header only", "class missing", "undecodable",
                                  "unknown labels, reject", "missing file", "not json", "bad entry"])
def test_bad_files_are_one_line_errors_and_write_nothing(tmp_path, case):
    entry, message = bad_file_cases(tmp_path)[case]
    proc = run_download(tmp_path, entry, check=False)
    assert message in one_line_error(proc)
    data = tmp_path / "data"
    assert not data.exists() or not any(p.is_file() for p in data.rglob("*"))


def test_download_stage_drops_reports_and_describes_the_task(tmp_path):
    rows = good_rows(45, 2)
    train = write_csv(tmp_path / "train.csv", rows[:30] + [("", "bug"), ("what", "spam")])
    dev = write_csv(tmp_path / "dev.csv", rows[30:] + [rows[0]])  # one training text also in dev
    run_download(tmp_path, {"train": str(train), "dev": str(dev), "overlap": "drop_from_train"})
    paths = TaskPaths("t", tmp_path / "data")
    meta = json.loads(paths.download_report.read_text())
    assert meta["files"][0]["dropped"] == {"empty_text": 1, "unknown_label": 1}
    assert meta["overlap"]["texts_in_several_splits"] == 1 and meta["overlap"]["removed_from_train"] == 1
    assert meta["rows"] == {"train": 29, "dev": 16, "test": 0}
    task = json.loads(paths.task_file.read_text())
    assert task == {"name": "t", "text_columns": ["sentence"], "labels": LABELS, "eval_splits": ["dev"],
                    "f1_label": None, "lowercase": True, "tokenize": True}
    assert pd.read_parquet(paths.split("test")).empty


def test_download_stage_fetches_a_url_with_its_sha256(glue_server, tmp_path):
    url, _, _ = glue_server
    good = write_csv(tmp_path / "www" / "tickets.csv", good_rows(30))
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    run_download(tmp_path, {"file": {"path": f"{url}/tickets.csv", "sha256": sha}, "split": {"dev": 0.2}})
    meta = json.loads(TaskPaths("t", tmp_path / "data").download_report.read_text())
    assert meta["sha256"] == {f"{url}/tickets.csv": sha} and meta["rows"]["dev"] == 6
    proc = run_download(tmp_path, {"file": {"path": f"{url}/tickets.csv", "sha256": "0" * 64}}, check=False)
    assert "sha256 mismatch" in one_line_error(proc)
