"""The `datasets:` entries of params.yaml: where a task's labelled text comes from and what shape it has.

Built-in entries name a reader (rotten_tomatoes, glue) whose files and columns it knows; `reader: files` takes a
user's CSV / TSV / JSON Lines / Parquet files (README: "Your own data"). Only the download stage reads these
entries; it writes the task's shape (distill/tasks.py) to data/<task>/task.json for every later stage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from distill.io import UserError
from distill.layout import PAIR_TEXT, SINGLE_TEXT
from distill.tasks import Task

READERS = ("rotten_tomatoes", "glue", "files")
FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                  ".pq": "parquet"}
BAD_ROWS = ("drop", "reject")
OVERLAP = ("keep", "drop_from_train")
FILE_SPLITS = ("train", "dev", "test")
# what the built-in readers produce: text columns, evaluation splits, number of classes
BUILTIN_SHAPES = {
    "rotten_tomatoes": (SINGLE_TEXT, ("dev", "test"), 2),
    "sst2": (SINGLE_TEXT, ("dev",), 2),
    "qqp": (PAIR_TEXT, ("dev",), 2),
    "mnli": (PAIR_TEXT, ("dev_matched", "dev_mismatched"), 3),
}
GLUE_TASKS = ("sst2", "qqp", "mnli")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

COMMON_KEYS = {"reader", "labels", "f1_label"}
FILE_KEYS = COMMON_KEYS | {"train", "dev", "test", "file", "split", "format", "text", "label", "lowercase",
                           "tokenize", "bad_rows", "overlap"}


@dataclass(frozen=True)
class SourceFile:
    location: str  # a local path (relative to the repository root) or an http(s) URL
    sha256: str = ""  # required for URLs; optional (checked when given) for local files

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    def suffix_format(self) -> str | None:
        name = self.location.split("?")[0].lower()
        for suffix, fmt in SUFFIX_FORMATS.items():
            if name.endswith(suffix) or name.endswith(suffix + ".gz"):
                return fmt
        return None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    reader: str
    label_names: tuple[str, ...]
    label_values: tuple[str, ...]  # the label as written in the files (text), in id order
    f1_label: str | None = None
    files: dict[str, SourceFile] = field(default_factory=dict)  # train/dev/test, or "file" (one, split here)
    split: tuple[float, float] = (0.0, 0.0)  # dev and test fractions of "file"
    format: str = "auto"
    text: tuple[str, ...] = ()  # the text column(s) in the files
    label: str = "label"
    lowercase: bool = True
    tokenize: bool = True
    bad_rows: str = "drop"
    overlap: str = "keep"

    def task(self) -> Task:
        if self.reader != "files":
            columns, eval_splits, _ = BUILTIN_SHAPES[self.name]
        else:
            columns = SINGLE_TEXT if len(self.text) == 1 else PAIR_TEXT
            has_test = "test" in self.files or self.split[1] > 0
            eval_splits = ("dev", "test") if has_test else ("dev",)
        return Task(self.name, columns, self.label_names, eval_splits, self.f1_label, self.lowercase, self.tokenize)

    def format_of(self, source: SourceFile) -> str:
        if self.format != "auto":
            return self.format
        fmt = source.suffix_format()
        if fmt is None:
            raise UserError(f"{source.location}: cannot tell the format from the name; set datasets.{self.name}.format "
                            f"({'|'.join(FORMATS[1:])})")
        return fmt


def _where(source: str, name: str, key: str | None = None) -> str:
    return f"{source}: datasets.{name}{'.' + key if key else ''}"


def label_text(value) -> str:
    """A label as the files compare it: 1, 1.0 and "1" are the same label."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _labels(raw, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """labels: [a, b, c] (names = values in the files) or {name: value_in_file, ...}, in id order."""
    if isinstance(raw, list):
        names = values = tuple(label_text(v) for v in raw)
    elif isinstance(raw, dict):
        names = tuple(str(k) for k in raw)
        values = tuple(label_text(v) for v in raw.values())
    else:
        raise UserError(f"{where} must be a list of label names in id order, or a mapping name: value-in-file")
    if len(names) < 2:
        raise UserError(f"{where} needs at least 2 classes, got {len(names)}")
    for what, items in (("names", names), ("values", values)):
        dupes = sorted({x for x in items if items.count(x) > 1})
        if dupes:
            raise UserError(f"{where}: label {what} must be distinct, {dupes[0]!r} repeats")
    if any(not n for n in names):
        raise UserError(f"{where}: empty label name")
    return names, values


def _source_file(raw, where: str) -> SourceFile:
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict) or set(raw) - {"path", "sha256"} or not isinstance(raw.get("path"), str) \
            or not raw["path"]:
        raise UserError(f"{where} must be a path or URL, or {{path: ..., sha256: ...}}")
    sha = str(raw.get("sha256") or "").lower()
    if sha and not _SHA256.fullmatch(sha):
        raise UserError(f"{where}.sha256 must be 64 hex digits, got {raw.get('sha256')!r}")
    source = SourceFile(raw["path"], sha)
    if source.is_url and not sha:
        raise UserError(f"{where}: an http(s) source needs a sha256 ({{path: {raw['path']}, sha256: ...}})")
    return source


def _choice(raw: dict, key: str, options: tuple[str, ...], default: str, where: str) -> str:
    value = raw.get(key, default)
    if value not in options:
        raise UserError(f"{where}.{key} must be one of {'|'.join(options)}, got {value!r}")
    return value


def _flag(raw: dict, key: str, where: str) -> bool:
    value = raw.get(key, True)
    if not isinstance(value, bool):
        raise UserError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def parse_dataset(name: str, raw, source: str = "params.yaml") -> DatasetSpec:
    """One `datasets.<name>` entry, validated; every problem is a one-line error naming the key."""
    where = _where(source, name)
    if not _NAME.fullmatch(name):
        raise UserError(f"{where}: a task name is letters, digits, _ . - (it names folders)")
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping (reader, labels, ...)")
    reader = raw.get("reader", "files")
    if reader not in READERS:
        raise UserError(f"{where}.reader must be one of {'|'.join(READERS)}, got {reader!r}")
    allowed = FILE_KEYS if reader == "files" else COMMON_KEYS
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} for reader {reader} (known: {', '.join(sorted(allowed))})")
    if "labels" not in raw:
        raise UserError(f"{where}.labels is missing: the label names in id order")
    names, values = _labels(raw["labels"], f"{where}.labels")
    f1_label = raw.get("f1_label")
    if f1_label is not None and str(f1_label) not in names:
        raise UserError(f"{where}.f1_label {f1_label!r} is not one of the labels {list(names)}")
    f1_label = None if f1_label is None else str(f1_label)
    if reader != "files":
        builtin = {"rotten_tomatoes": ("rotten_tomatoes",), "glue": GLUE_TASKS}[reader]
        if name not in builtin:
            raise UserError(f"{where}: reader {reader} reads {' / '.join(builtin)} only; use reader: files for "
                            "your own data")
        classes = BUILTIN_SHAPES[name][2]
        if len(names) != classes:
            raise UserError(f"{where}.labels: {name} has {classes} classes, got {len(names)} names")
        return DatasetSpec(name, reader, names, values, f1_label)

    files: dict[str, SourceFile] = {}
    split = (0.0, 0.0)
    if "file" in raw:
        if any(k in raw for k in FILE_SPLITS):
            raise UserError(f"{where}: give either file (split here) or train/dev/test files, not both")
        files["file"] = _source_file(raw["file"], f"{where}.file")
        fractions = raw.get("split", {"dev": 0.1, "test": 0.1})
        if not isinstance(fractions, dict) or set(fractions) - {"dev", "test"}:
            raise UserError(f"{where}.split must be {{dev: fraction, test: fraction}}")
        dev, test = fractions.get("dev", 0.0), fractions.get("test", 0.0)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (dev, test)) \
                or not 0 < dev < 1 or not 0 <= test < 1 or dev + test >= 1:
            raise UserError(f"{where}.split: dev in (0, 1), test in [0, 1), dev + test < 1; got dev={dev!r}, "
                            f"test={test!r}")
        split = (float(dev), float(test))
    else:
        if "split" in raw:
            raise UserError(f"{where}.split applies to a single file (file: ...), not to train/dev files")
        for part in ("train", "dev"):
            if part not in raw:
                raise UserError(f"{where}.{part} is missing: give train and dev (and optionally test) files, or "
                                "one file plus split")
        for part in FILE_SPLITS:
            if part in raw:
                files[part] = _source_file(raw[part], f"{where}.{part}")
    text = raw.get("text")
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or len(text) not in (1, 2) or not all(isinstance(c, str) and c for c in text) \
            or len(set(text)) != len(text):
        raise UserError(f"{where}.text must name the text column, or two distinct columns for a sentence pair")
    label = raw.get("label", "label")
    if not isinstance(label, str) or not label or label in text:
        raise UserError(f"{where}.label must name the label column (not a text column), got {label!r}")
    return DatasetSpec(
        name, reader, names, values, f1_label, files, split,
        format=_choice(raw, "format", FORMATS, "auto", where), text=tuple(text), label=label,
        lowercase=_flag(raw, "lowercase", where), tokenize=_flag(raw, "tokenize", where),
        bad_rows=_choice(raw, "bad_rows", BAD_ROWS, "drop", where),
        overlap=_choice(raw, "overlap", OVERLAP, "keep", where))


def dataset_entry(params: dict, task: str, source: str = "params.yaml") -> DatasetSpec:
    entries = params.get("datasets")
    if not isinstance(entries, dict):
        raise UserError(f"{source}: datasets must be a mapping of task name -> entry (see the README)")
    if task not in entries:
        raise UserError(f"{source}: datasets has no entry for task {task!r} (declared: {', '.join(entries)})")
    return parse_dataset(task, entries[task], source)
