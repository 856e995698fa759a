"""A user's labelled text files (CSV, TSV, JSON Lines, Parquet) -> the contract's train/dev/test frames.

Every file is checked before anything is written: a missing column, an empty file, undecodable bytes, a split
without some class are one-line errors naming the file and the line (or Parquet row). Rows with empty text, an
unknown label or a broken record are dropped and counted (`bad_rows: drop`, the default) or refused
(`bad_rows: reject`). Sentences found in more than one split are reported, and with `overlap: drop_from_train`
taken out of train.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from distill.data.datasets import DatasetSpec, SourceFile, label_text
from distill.data.fetch import download
from distill.data.text import normalize
from distill.io import UserError, sha256_file
from distill.layout import IDX, LABEL, SPLIT, user_path

log = logging.getLogger(__name__)
EXAMPLES = 5  # problems and overlaps quoted in errors, logs and download.json


@dataclass
class Record:
    where: str  # "line 7" (CSV/TSV/JSONL; a CSV record's first line) or "row 7" (Parquet, 1-based)
    index: int  # the line or row number, kept as the example's idx
    values: dict | None  # column -> raw value; None = a broken record (problem says why)
    problem: str = ""


@dataclass
class FileReport:
    path: str
    rows_read: int = 0
    kept: int = 0
    dropped: dict = field(default_factory=dict)  # reason -> count
    examples: list = field(default_factory=list)  # "line N: problem"
    unknown_labels: list = field(default_factory=list)  # distinct unknown values, first seen first

    def drop(self, where: str, reason: str, detail: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {detail}")

    def as_dict(self) -> dict:
        return {"path": self.path, "rows_read": self.rows_read, "rows_kept": self.kept, "dropped": self.dropped,
                "dropped_examples": self.examples}


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise UserError(f"{path}: not a gzip file ({err})") from None
    return data


def _decode(data: bytes, display: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise UserError(f"{display}: line {line}: not UTF-8 (byte 0x{data[err.start]:02x} at column {column}); "
                        "save the file as UTF-8") from None


def check_header(header: list[str], display: str, where: str = "line 1") -> None:
    """Column names must be distinct: with a repeated one, which column a row's value comes from is a guess."""
    seen = set()
    for name in header:
        if name in seen:
            raise UserError(f"{display}: {where}: column {name!r} appears more than once in the header "
                            f"({', '.join(map(str, header))}); rename or remove one")
        seen.add(name)


def _strictly_quoted(lines: list[str], delimiter: str) -> bool:
    """Whether a multi-line record's quoting is well formed (a closing quote followed by a delimiter or the line's
    end): a stray quote that closes an unterminated one lines later usually is not."""
    try:
        list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return True


def _read_delimited(text: str, delimiter: str, display: str) -> tuple[list[str], list[Record]]:
    raw: list[str] = []  # the physical lines of the record being read (quotes counted in multi-line records)

    def lines():
        for line in io.StringIO(text, newline=""):
            raw.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise UserError(f"{display}: empty file (no header line)")
        header = [h.strip() for h in header]
        check_header(header, display)
        records, last = [], reader.line_num
        raw.clear()
        for fields in reader:
            start, last = last + 1, reader.line_num
            lines_read, raw[:] = raw[:], []
            if last > start and (sum(line.count('"') for line in lines_read) % 2 or len(fields) != len(header)
                                 or not _strictly_quoted(lines_read, delimiter)):
                # a quote opened on `start` swallowed the lines after it: never drop them silently
                closed = "is never closed (it runs to the end of the file)" if sum(
                    line.count('"') for line in lines_read) % 2 else f"runs on to line {last}"
                raise UserError(f"{display}: line {start}: a quoted field opened on this line {closed}, taking "
                                f"{last - start} more line(s) into one record; close or escape (\"\") the quote")
            if not any(f.strip() for f in fields):
                continue  # blank line
            if len(fields) != len(header):
                records.append(Record(f"line {start}", start, None,
                                      f"{len(fields)} fields, the header has {len(header)}"))
            else:
                records.append(Record(f"line {start}", start, dict(zip(header, fields))))
    except csv.Error as err:
        raise UserError(f"{display}: line {reader.line_num}: cannot parse ({err})") from None
    return header, records


def _read_jsonl(text: str, display: str) -> tuple[list[str], list[Record]]:
    records, keys = [], {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            records.append(Record(f"line {n}", n, None, f"not JSON ({err.msg})"))
            continue
        if not isinstance(obj, dict):
            records.append(Record(f"line {n}", n, None, "not a JSON object"))
            continue
        keys.update(dict.fromkeys(obj))
        records.append(Record(f"line {n}", n, obj))
    return list(keys), records


def _read_parquet(path: Path, display: str, columns: list[str]) -> tuple[list[str], list[Record]]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"{display}: not a Parquet file ({type(err).__name__}: {err})") from None
    header = list(pf.schema_arrow.names)
    check_header(header, display, "schema")
    present = [c for c in columns if c in header]
    table = pf.read(columns=present).to_pydict()
    n = pf.metadata.num_rows
    return header, [Record(f"row {i + 1}", i + 1, {c: table[c][i] for c in present}) for i in range(n)]


def read_records(path: Path, fmt: str, display: str, columns: list[str]) -> list[Record]:
    """The file's records, after checking that it has rows and every column in `columns`."""
    if not path.is_file():
        raise UserError(f"{display}: file not found")
    if fmt == "parquet":
        header, records = _read_parquet(path, display, columns)
    else:
        text = _decode(_open_bytes(path), display)
        if fmt == "jsonl":
            header, records = _read_jsonl(text, display)
        else:
            header, records = _read_delimited(text, "\t" if fmt == "tsv" else ",", display)
    if not records:
        raise UserError(f"{display}: no data rows")
    if fmt == "jsonl" and not header:
        raise UserError(f"{display}: {records[0].where}: {records[0].problem}; no JSON object in the file")
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(f"{display}: no column {missing[0]!r} (columns: {', '.join(map(str, header))})")
    return records


def to_frame(records: list[Record], spec: DatasetSpec, columns: tuple[str, ...], display: str
             ) -> tuple[pd.DataFrame, FileReport]:
    """The contract's rows of one file; bad rows dropped and counted, or refused (spec.bad_rows)."""
    report = FileReport(display, rows_read=len(records))
    ids = {value: i for i, value in enumerate(spec.label_values)}
    rows = []
    for rec in records:
        if rec.values is None:
            report.drop(rec.where, "malformed", rec.problem)
            continue
        absent = next((c for c in (*spec.text, spec.label) if c not in rec.values), None)
        if absent is not None:
            report.drop(rec.where, "malformed", f"no {absent!r}")
            continue
        raw_label = rec.values[spec.label]
        shown = "" if raw_label is None else label_text(raw_label)
        label = ids.get(shown) if raw_label is not None else None
        if label is None:
            if shown not in report.unknown_labels:
                report.unknown_labels.append(shown)
            report.drop(rec.where, "unknown_label", f"unknown label {shown!r}")
            continue
        texts = [normalize("" if rec.values[c] is None else rec.values[c], spec.lowercase, spec.tokenize)
                 for c in spec.text]
        if not all(texts):
            column = spec.text[[bool(t) for t in texts].index(False)]
            report.drop(rec.where, "empty_text", f"empty text in {column!r}")
            continue
        rows.append((rec.index, *texts, label))
    bad = sum(report.dropped.values())
    if bad and spec.bad_rows == "reject":
        first = report.examples[0]
        unknown = (f"; unknown label values: {', '.join(map(repr, report.unknown_labels[:EXAMPLES]))} "
                   f"(labels: {', '.join(spec.label_values)})" if report.unknown_labels else "")
        raise UserError(f"{display}: {first} ({bad} bad row(s) in all{unknown}); fix them, or set "
                        f"datasets.{spec.name}.bad_rows: drop")
    if bad:
        log.warning("%s: %d row(s) dropped (%s), e.g. %s", display, bad,
                    ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items())), report.examples[0])
    if not rows:
        raise UserError(f"{display}: no usable rows left ({bad} dropped, e.g. {report.examples[0]})")
    report.kept = len(rows)
    df = pd.DataFrame(rows, columns=[IDX, *columns, LABEL])
    df[IDX] = df[IDX].astype("int64")
    df[LABEL] = df[LABEL].astype("int64")
    return df, report


def stratified_split(df: pd.DataFrame, dev: float, test: float, seed: int, labels: tuple[str, ...],
                     display: str) -> dict[str, pd.DataFrame]:
    """Per class, a seeded shuffle cut into dev / test / train shares (at least one row each where the share is
    asked for); rows keep their file order within each split."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "dev": [], "test": []}
    for label, name in enumerate(labels):
        rows = np.flatnonzero(df[LABEL].to_numpy() == label)
        n_dev = max(1, int(round(dev * len(rows))))
        n_test = max(1, int(round(test * len(rows)))) if test > 0 else 0
        if len(rows) < n_dev + n_test + 1:
            raise UserError(f"{display}: class {name!r} has {len(rows)} row(s), too few for train, dev"
                            f"{' and test' if test > 0 else ''}")
        rows = rows[rng.permutation(len(rows))]
        parts["dev"].append(rows[:n_dev])
        parts["test"].append(rows[n_dev:n_dev + n_test])
        parts["train"].append(rows[n_dev + n_test:])
    return {split: df.iloc[np.sort(np.concatenate(chunks))].reset_index(drop=True)
            for split, chunks in parts.items() if split != "test" or test > 0}


def check_classes(frames: dict[str, pd.DataFrame], labels: tuple[str, ...], displays: dict[str, str]) -> None:
    for split, df in frames.items():
        missing = [name for i, name in enumerate(labels) if not (df[LABEL] == i).any()]
        if missing:
            raise UserError(f"{displays[split]}: the {split} split has no row of class {missing[0]!r}"
                            f"{f' (nor {len(missing) - 1} other(s))' if len(missing) > 1 else ''}; every split "
                            "needs every class")


def cross_split_overlap(frames: dict[str, pd.DataFrame], columns: tuple[str, ...], policy: str) -> dict:
    """Texts (pairs) present in more than one split: counted, quoted, and under drop_from_train removed from train."""
    keys = {split: set(zip(*(df[c] for c in columns))) for split, df in frames.items()}
    shared = {k for a in keys for b in keys if a < b for k in keys[a] & keys[b]}
    examples = sorted(" ||| ".join(k) for k in shared)[:EXAMPLES]
    removed = 0
    if shared and policy == "drop_from_train":
        train = frames["train"]
        keep = [k not in shared for k in zip(*(train[c] for c in columns))]
        removed = len(train) - sum(keep)
        frames["train"] = train[keep].reset_index(drop=True)
    if shared:
        log.warning("%d text(s) are in more than one split, e.g. %r; %s", len(shared), examples[0],
                    f"{removed} row(s) removed from train" if policy == "drop_from_train"
                    else "kept (overlap: drop_from_train removes them from train)")
    return {"texts_in_several_splits": len(shared), "examples": examples, "removed_from_train": removed}


def _local_copy(source: SourceFile, workdir: Path, retries: int, timeout: float) -> tuple[Path, str]:
    """(local path, display name); a URL is downloaded (sha256-checked), a local file's sha256 checked if given."""
    if source.is_url:
        name = source.location.split("?")[0].rsplit("/", 1)[-1] or "download"
        return download(source.location, workdir / name, source.sha256, retries=retries, timeout=timeout), \
            source.location
    path = user_path(source.location)
    if source.sha256 and path.is_file():
        got = sha256_file(path)
        if got != source.sha256:
            raise UserError(f"{source.location}: sha256 {got} does not match the one in params.yaml "
                            f"({source.sha256}); nothing written")
    return path, source.location


def fetch_files(spec: DatasetSpec, seed: int, retries: int, timeout: float) -> tuple[dict[str, pd.DataFrame], dict]:
    """Frames keyed by split (train/dev[/test]) with the contract's columns, and the provenance metadata."""
    task = spec.task()
    needed = [*spec.text, spec.label]
    frames, displays, reports, sha = {}, {}, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for part, source in spec.files.items():
            path, display = _local_copy(source, Path(tmp), retries, timeout)
            records = read_records(path, spec.format_of(source), display, needed)
            sha[display] = sha256_file(path)
            df, report = to_frame(records, spec, task.text_columns, display)
            reports.append(report.as_dict())
            if part == "file":
                frames = stratified_split(df, *spec.split, seed=seed, labels=spec.label_names, display=display)
                displays = dict.fromkeys(frames, display)
            else:
                frames[part], displays[part] = df, display
    for split, df in frames.items():
        df[SPLIT] = split
    check_classes(frames, spec.label_names, displays)
    overlap = cross_split_overlap(frames, task.text_columns, spec.overlap)
    if overlap["removed_from_train"]:
        check_classes({"train": frames["train"]}, spec.label_names, displays)
    meta = {"source": {part: s.location for part, s in spec.files.items()}, "sha256": sha, "files": reports,
            "overlap": overlap}
    if "file" in spec.files:
        meta["split"] = {"dev": spec.split[0], "test": spec.split[1], "seed": seed, "stratified": True}
    return frames, meta
