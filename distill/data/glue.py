"""GLUE TSV readers (quoting disabled) for SST-2, QQP and MNLI.

Malformed rows — a wrong number of fields, or a label that is not one of the task's labels — are reported with
file and line, counted, and left out; they are never silently kept or silently lost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from distill.io import UserError
from distill.layout import IDX, LABEL, PAIR_TEXT, SINGLE_TEXT, SPLIT
from distill.data.text import clean_pretokenized, normalize

log = logging.getLogger(__name__)

# Official GLUE archives, sha256 pinned as in Hugging Face datasets' glue/dataset_infos.json (SST-2 and MNLI also
# agree with TensorFlow Datasets). A download that does not match is refused and nothing is written.
GLUE_ARCHIVES = {
    "sst2": {"dir": "SST-2", "url": "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
             "sha256": "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa"},
    "qqp": {"dir": "QQP", "url": "https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip",
            "sha256": "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0"},
    "mnli": {"dir": "MNLI", "url": "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip",
             "sha256": "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633"},
}

# MNLI's gold_label strings in id order (GLUE's baseline order); params.yaml's datasets.mnli.labels names them
MNLI_LABELS = ("contradiction", "entailment", "neutral")

# split name -> file in the task's GLUE folder
GLUE_FILES = {
    "sst2": {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"},
    "qqp": {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"},
    "mnli": {
        "train": "train.tsv",
        "dev_matched": "dev_matched.tsv",
        "dev_mismatched": "dev_mismatched.tsv",
        "test_matched": "test_matched.tsv",
        "test_mismatched": "test_mismatched.tsv",
    },
}
# Splits without which a task cannot run (test sets are optional: GLUE's are unlabelled anyway).
REQUIRED_SPLITS = {"sst2": ("train", "dev"), "qqp": ("train", "dev"), "mnli": ("train", "dev_matched", "dev_mismatched")}


@dataclass
class ReadReport:
    path: str
    rows: int = 0
    malformed: list[str] = field(default_factory=list)  # "line N: reason"

    def as_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "malformed": len(self.malformed),
                "malformed_examples": self.malformed[:20]}


def _iter_rows(path: Path, report: ReadReport):
    """Yield (line_no, header, fields) for each data row; rows with bad bytes or a wrong field count go to the
    report (GLUE files are UTF-8; a bad byte costs its row, not the file)."""
    with open(path, "rb") as fh:
        raw_header = fh.readline()
        if not raw_header:
            raise UserError(f"{path}: empty file")
        try:
            header = raw_header.decode("utf-8-sig").rstrip("\r\n").split("\t")
        except UnicodeDecodeError as err:
            raise UserError(f"{path}:1: header is not UTF-8 ({err.reason} at byte {err.start})") from None
        for line_no, raw in enumerate(fh, start=2):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                report.malformed.append(f"line {line_no}: not UTF-8 ({err.reason} at byte {err.start})")
                continue
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                report.malformed.append(f"line {line_no}: {len(fields)} fields, expected {len(header)}")
                continue
            yield line_no, header, fields


def _text(raw: str, clean, line_no: int, report: ReadReport) -> str | None:
    """The normalised text, or None (counted as malformed) when nothing is left of it."""
    text = clean(raw)
    if not text:
        report.malformed.append(f"line {line_no}: empty text")
        return None
    return text


def _col(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise UserError(f"{path}: missing column {name!r} in header {header}")
    return header.index(name)


def _parse_label(raw: str, allowed: dict[str, int], line_no: int, report: ReadReport) -> int | None:
    label = allowed.get(raw.strip())
    if label is None:
        report.malformed.append(f"line {line_no}: label {raw[:40]!r} not in {sorted(allowed)}")
    return label


def read_glue_split(task: str, split: str, path: str | Path) -> tuple[pd.DataFrame, ReadReport]:
    """Read one GLUE TSV into the contract's columns: idx, sentence / sentence1+sentence2, label, split."""
    path = Path(path)
    report = ReadReport(str(path))
    labelled = not split.startswith("test")
    records = []
    if task == "sst2":
        binary = {"0": 0, "1": 1}
        for line_no, header, f in _iter_rows(path, report):
            if labelled:
                label = _parse_label(f[_col(header, "label", path)], binary, line_no, report)
                if label is None:
                    continue
                idx = line_no - 2
            else:
                label, idx = -1, int(f[_col(header, "index", path)])
            sentence = _text(f[_col(header, "sentence", path)], clean_pretokenized, line_no, report)
            if sentence is not None:
                records.append((idx, sentence, label))
        df = pd.DataFrame(records, columns=[IDX, *SINGLE_TEXT, LABEL])
    elif task in ("qqp", "mnli"):
        if task == "qqp":
            s1, s2, label_col, allowed = "question1", "question2", "is_duplicate", {"0": 0, "1": 1}
        else:
            s1, s2, label_col = "sentence1", "sentence2", "gold_label"
            allowed = {name: i for i, name in enumerate(MNLI_LABELS)}
        for line_no, header, f in _iter_rows(path, report):
            label = -1
            if labelled:
                label = _parse_label(f[_col(header, label_col, path)], allowed, line_no, report)
                if label is None:
                    continue
            id_col = "id" if task == "qqp" else "index"
            idx_raw = f[_col(header, id_col, path)] if id_col in header else str(line_no - 2)
            try:
                idx = int(idx_raw)
            except ValueError:
                report.malformed.append(f"line {line_no}: {id_col} {idx_raw[:40]!r} is not an integer")
                continue
            first = _text(f[_col(header, s1, path)], normalize, line_no, report)
            second = _text(f[_col(header, s2, path)], normalize, line_no, report) if first is not None else None
            if second is not None:
                records.append((idx, first, second, label))
        df = pd.DataFrame(records, columns=[IDX, *PAIR_TEXT, LABEL])
    else:
        raise UserError(f"task {task!r} is not a GLUE task this reader knows")
    df[LABEL] = df[LABEL].astype("int64")
    df[IDX] = df[IDX].astype("int64")
    df[SPLIT] = split
    report.rows = len(df)
    if report.malformed:
        log.warning("%s: %d malformed row(s) left out, e.g. %s", path, len(report.malformed), report.malformed[0])
    return df, report
